// The Select Model flow with a scripted VS Code: the embedded default, a local folder with
// validation errors and warnings (read by the engine's inspectModel), a machine without the
// engine, and a recommended model downloaded from the loopback hub under a progress
// notification, cancelled and resumed.
import './fakeVscode';

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';

import { registerModelPicker, selectModel } from '../../../src/vscode/modelPicker';
import { CATALOGUE } from '../../../src/core/models/catalogue';
import { loadAddon } from '../../../src/native/addon';
import { fake } from './fakeVscode';
import { FixtureHub } from './fixtureHub';
import { folderTensors, ggufImage, qwen2FixtureMetadata } from './ggufImage';

const reader = loadAddon(path.resolve('dist'));
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-picker-'));
const context = { globalStorageUri: { fsPath: path.join(scratch, 'storage') }, subscriptions: [] } as never;
const logged: string[] = [];
const log = {
  info: (m: string) => logged.push(`info ${m}`),
  warn: (m: string) => logged.push(`warn ${m}`),
  error: (m: string) => logged.push(`error ${m}`),
  show: () => {},
} as never;

// The smallest catalogue entry, served by the fixture hub from the shipped model's files.
const model = CATALOGUE[0];
const shipped = 'models/tidal-code-mini';
// Its Q4_K_M variant, from the GGUF repository: a .gguf of the qwen2 fixture model (F32 inside:
// the flow is what is tested), beside files the picker must leave (another quantisation, split
// parts, a README).
const q4Model = CATALOGUE.find((m) => m.id === `${model.id}-q4_k_m`)!;
const q4File = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
function fixtureGguf(): Buffer {
  const folder = 'test/fixtures/models/qwen2-tied-sharded-f32';
  return ggufImage(qwen2FixtureMetadata(folder, 'test/fixtures/tokenizers/chatml-byte-bpe', 'gpt-2'), folderTensors(folder));
}
const ggufFiles = new Map([
  [q4File, { content: fixtureGguf(), lfs: true }],
  ['qwen2.5-coder-0.5b-instruct-q5_k_m.gguf', { content: Buffer.from('another quantisation'), lfs: true }],
  ['qwen2.5-coder-0.5b-instruct-q8_0-00001-of-00002.gguf', { content: Buffer.from('part one'), lfs: true }],
  ['qwen2.5-coder-0.5b-instruct-q8_0-00002-of-00002.gguf', { content: Buffer.from('part two'), lfs: true }],
  ['README.md', { content: Buffer.from('# GGUF'), lfs: false }],
]);

const hub = new FixtureHub(
  new Map([
    [q4Model.repo, ggufFiles],
    [
      model.repo,
      FixtureHub.filesFrom(
        Object.fromEntries(
          ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'MODEL_CARD.md'].map((n) => [
            n,
            path.join(shipped, n),
          ]),
        ),
        (name) => name.endsWith('.safetensors'),
      ),
    ],
  ]),
);
before(() => hub.start());
after(async () => {
  await hub.stop();
  rmSync(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  fake.reset();
  fake.settings.set('tidal.models.hubUrl', hub.url);
  hub.faults = {};
  hub.requests.length = 0;
});

type Item = { label: string; description?: string; action?: string; model?: { id: string } };
const pickAction =
  (action: string, id?: string) =>
  ({ items }: { items?: unknown[] }) =>
    (items as Item[]).find((i) => i.action === action && (id === undefined || i.model?.id === id));

test('the command is registered as tidal.selectModel', () => {
  const [disposable] = registerModelPicker(context, log) as unknown as { id: string }[];
  assert.equal(disposable.id, 'tidal.selectModel');
});

test('the embedded default writes an empty tidal.modelPath; dismissing changes nothing', async () => {
  fake.answers.push(pickAction('embedded'));
  assert.equal(await selectModel(context, log, { reader }), '');
  assert.deepEqual(fake.updates, [['tidal.modelPath', '']]);
  fake.updates.length = 0;
  fake.answers.push(() => undefined);
  assert.equal(await selectModel(context, log, { reader }), undefined);
  assert.deepEqual(fake.updates, []);
});

test('a folder without a tokenizer is refused with an error; Pick Another Model goes back to the list', async () => {
  const broken = path.join(scratch, 'no-tokenizer');
  cpSync('test/fixtures/models/mistral-gqa-f16', broken, { recursive: true });
  fake.answers.push(
    pickAction('folder'),
    () => [{ fsPath: broken }],
    ({ message, actions }) => {
      assert.match(message!, /cannot use no-tokenizer: .*no tokenizer\.json/);
      return actions!.includes('Pick Another Model') ? 'Pick Another Model' : undefined;
    },
    () => undefined, // the list again, dismissed
  );
  assert.equal(await selectModel(context, log, { reader }), undefined);
  assert.deepEqual(fake.updates, []);
  assert.deepEqual(
    fake.shown.map((s) => s.kind),
    ['quickPick', 'openDialog', 'error', 'quickPick'],
  );
});

test('a folder that does not fit memory asks first; Use Anyway applies it', async () => {
  fake.settings.set('tidal.context.maxTokens', 16384);
  const options = { gpuFreeBytes: async () => 1000, reader };
  fake.answers.push(
    pickAction('folder'),
    () => [{ fsPath: path.resolve(shipped) }],
    ({ message }) => {
      assert.match(message!, /needs about .* the GPU has 1\.0 KB free/);
      return 'Use Anyway';
    },
  );
  assert.equal(await selectModel(context, log, options), path.resolve(shipped));
  assert.deepEqual(fake.updates, [['tidal.modelPath', path.resolve(shipped)]]);
});

test('without the native engine beside the extension a folder is applied after a warning', async () => {
  // The bundle this test runs from has no addon beside it: the picker's default reader is missing.
  fake.answers.push(
    pickAction('folder'),
    () => [{ fsPath: path.resolve(shipped) }],
    ({ kind, message, actions }) => {
      assert.equal(kind, 'warning');
      assert.match(message!, /could not check this model here \(The Tidal native engine is missing .*\); the engine checks it when it loads/);
      assert.deepEqual(actions, ['Use Anyway', 'Pick Another Model']);
      return 'Use Anyway';
    },
  );
  assert.equal(await selectModel(context, log), path.resolve(shipped));
  assert.deepEqual(fake.updates, [['tidal.modelPath', path.resolve(shipped)]]);
});

test('a recommended model downloads under progress, can be cancelled, resumes, and is applied when verified', async () => {
  const destination = path.join(scratch, 'storage', 'models', model.id);
  // The list shows it as not downloaded, with its size.
  let listed: Item | undefined;
  fake.answers.push(({ items }) => {
    listed = (items as Item[]).find((i) => i.model?.id === model.id);
    return listed;
  });
  fake.answers.push(({ message }) => {
    assert.match(message!, /Download Qwen2\.5-Coder 0\.5B Instruct \(about 995 MB\) from 127\.0\.0\.1/);
    return 'Download';
  });
  fake.answers.push(({ message }) => {
    assert.match(message!, /paused/);
    return undefined;
  });
  hub.faults.stallAfterBytes = new Map([['model.safetensors', 1_000_000]]);
  fake.cancelProgress = (report) => /model\.safetensors/.test(report.message ?? '');
  assert.equal(await selectModel(context, log, { reader }), undefined);
  assert.match(listed!.description!, /494M · 995 MB download · needs ~/);
  assert.equal(existsSync(destination), false);
  assert.deepEqual(fake.updates, []);

  // Picked again: listed as partial, resumes without asking, verifies, validates, applies.
  fake.progress.length = 0;
  fake.cancelProgress = undefined;
  fake.answers.push(({ items }) => {
    listed = (items as Item[]).find((i) => i.model?.id === model.id);
    return listed;
  });
  assert.equal(await selectModel(context, log, { reader }), destination);
  assert.match(listed!.description!, /of 995 MB downloaded, resumes/);
  assert.deepEqual(fake.updates, [['tidal.modelPath', destination]]);
  assert.ok(existsSync(path.join(destination, 'model.safetensors')));
  assert.equal(existsSync(path.join(destination, 'MODEL_CARD.md')), false); // only model files
  const total = fake.progress.reduce((sum, p) => sum + (p.increment ?? 0), 0);
  assert.ok(Math.abs(total - 100) < 1e-6, `progress adds up to ${total}%`);
  assert.ok(hub.requests.some((r) => r.url.startsWith('/cdn/') && r.range !== undefined));

  // Third time it is marked downloaded and applies without fetching.
  hub.requests.length = 0;
  fake.answers.push(({ items }) => {
    listed = (items as Item[]).find((i) => i.model?.id === model.id);
    return listed;
  });
  assert.equal(await selectModel(context, log, { reader }), destination);
  assert.match(listed!.description!, /downloaded ·/);
  assert.match(listed!.label, /^\$\(check\)/);
  assert.equal(hub.requests.length, 0);
});

test('a Q4_K_M model downloads only its .gguf file, which becomes tidal.modelPath; a quantisation only in split parts is refused', async () => {
  const destination = path.join(scratch, 'storage', 'models', q4Model.id);
  let listed: Item | undefined;
  fake.answers.push(({ items }) => {
    listed = (items as Item[]).find((i) => i.model?.id === q4Model.id);
    return listed;
  });
  fake.answers.push(({ message }) => {
    assert.match(message!, /Download Qwen2\.5-Coder 0\.5B Instruct Q4_K_M \(about \d+ MB\) from 127\.0\.0\.1/);
    return 'Download';
  });
  const file = path.join(destination, q4File);
  assert.equal(await selectModel(context, log, { reader }), file);
  assert.match(listed!.label, /Qwen2\.5-Coder 0\.5B Instruct Q4_K_M$/);
  assert.match((listed as { detail?: string }).detail!, /^Qwen\/Qwen2\.5-Coder-0\.5B-Instruct-GGUF \(Q4_K_M GGUF\): /);
  assert.deepEqual(fake.updates, [['tidal.modelPath', file]]);
  assert.deepEqual(readdirSync(destination), [q4File]);
  assert.ok(readFileSync(file).equals(ggufFiles.get(q4File)!.content));
  // Listed again: downloaded, current, and applied without fetching.
  hub.requests.length = 0;
  fake.updates.length = 0;
  fake.answers.push(({ items }) => {
    listed = (items as Item[]).find((i) => i.model?.id === q4Model.id);
    return listed;
  });
  assert.equal(await selectModel(context, log, { reader }), file);
  assert.match(listed!.label, /^\$\(check\) \$\(pass-filled\) /);
  assert.equal(hub.requests.length, 0);

  // The Q8_0 of the same repository is there only in split parts: the download says so, nothing is written.
  const q8Model = CATALOGUE.find((m) => m.id === `${model.id}-q8_0`)!;
  fake.updates.length = 0;
  fake.answers.push(
    pickAction('catalogue', q8Model.id),
    () => 'Download',
    ({ message, actions }) => {
      assert.match(message!, /could not download Qwen2\.5-Coder 0\.5B Instruct Q8_0: .*has Q8_0 only in 2 split parts, which Tidal does not read yet/);
      assert.deepEqual(actions, ['Retry', 'Open Hub Setting']);
      return undefined;
    },
  );
  assert.equal(await selectModel(context, log, { reader }), undefined);
  assert.deepEqual(fake.updates, []);
  assert.equal(existsSync(path.join(scratch, 'storage', 'models', q8Model.id)), false);
});

test('a hub that is down shows the error with Retry and a way to the hub setting', async () => {
  fake.settings.set('tidal.models.hubUrl', 'http://127.0.0.1:9');
  fake.settings.set('tidal.models.folder', path.join(scratch, 'elsewhere'));
  fake.answers.push(
    pickAction('catalogue', CATALOGUE[1].id),
    () => 'Download',
    ({ message, actions }) => {
      assert.match(message!, /could not download .*Could not connect/);
      assert.deepEqual(actions, ['Retry', 'Open Hub Setting']);
      return 'Open Hub Setting';
    },
  );
  assert.equal(await selectModel(context, log, { reader }), undefined);
  assert.deepEqual(fake.executed, [['workbench.action.openSettings', 'tidal.models.hubUrl']]);
  assert.deepEqual(fake.updates, []);
});
