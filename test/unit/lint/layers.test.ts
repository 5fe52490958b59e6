// The lint keeps the layers apart (eslint.config.mjs): these lint a few lines placed, in
// memory, in a file of each layer, and check which imports it reports.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { ESLint } from 'eslint';

const root = path.resolve(__dirname, '..', '..', '..', '..');
const eslint = new ESLint({ cwd: root });

/** The messages of the `no-restricted-imports` errors for `code` as if it were at `file`. */
async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  assert.equal(result.fatalErrorCount, 0, result.messages.map((m) => m.message).join('\n'));
  return result.messages.filter((message) => message.ruleId === 'no-restricted-imports').map((message) => message.message);
}

test('core/ may not import vscode', async () => {
  const errors = await layerErrors('src/core/chat/layerProbe.ts', "import * as vscode from 'vscode';\nexport const probe = vscode;\n");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /Only src\/vscode\/ imports `vscode`/);
});

test('core/ may not import from vscode/, host/ or serve/, even types', async () => {
  const code = [
    "import { activate } from '../../vscode/extension';",
    "import type { ModelSession } from '../../host/modelSession';",
    "export * from '../../serve/httpServer';",
    'export const probe: [typeof activate, ModelSession?] = [activate];',
  ].join('\n');
  const errors = await layerErrors('src/core/chat/layerProbe.ts', code);
  assert.equal(errors.length, 3);
  for (const error of errors) assert.match(error, /src\/core\/ may import only src\/native\/, itself/);
});

test('core/ starts no process', async () => {
  const errors = await layerErrors('src/core/models/layerProbe.ts', "import { spawn } from 'node:child_process';\nexport const probe = spawn;\n");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /starts no process/);
});

test('host/ may import core/, webgpu/ and native/, not vscode/', async () => {
  const allowed =
    "import { buildFimPrompt } from '../core/prompt/fimPrompt';\nimport type { NativeAddon } from '../native/addon';\nexport const probe: [unknown, NativeAddon?] = [buildFimPrompt];\n";
  assert.deepEqual(await layerErrors('src/host/layerProbe.ts', allowed), []);
  const errors = await layerErrors('src/host/layerProbe.ts', "import { activate } from '../vscode/extension';\nexport const probe = activate;\n");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /src\/host\/ may import only src\/core\/, src\/webgpu\/, src\/native\/, itself/);
});

test('vscode/ may import vscode and every layer under it', async () => {
  const code = [
    "import * as vscode from 'vscode';",
    "import { startEngineHost } from '../host/hostProcess';",
    "import { buildFimPrompt } from '../core/prompt/fimPrompt';",
    'export const probe = [vscode, startEngineHost, buildFimPrompt];',
  ].join('\n');
  assert.deepEqual(await layerErrors('src/vscode/layerProbe.ts', code), []);
});

test("the chat panel's script (a browser) may import core/, not the extension or Node", async () => {
  const code = [
    "import { parseMentions } from '../../core/chat/mentions';",
    "import { activate } from '../extension';",
    "import * as fs from 'node:fs';",
    'export const probe = [parseMentions, activate, fs];',
  ].join('\n');
  const errors = await layerErrors('src/vscode/webview/layerProbe.ts', code);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /imports only core\//);
  assert.match(errors[1], /runs in a browser/);
});

test('webgpu/ may import only native/', async () => {
  const code = [
    "import { ModelSession } from '../host/modelSession';",
    "import type { NativeAddon } from '../native/addon';",
    'export const probe: [typeof ModelSession, NativeAddon?] = [ModelSession];',
  ].join('\n');
  const errors = await layerErrors('src/webgpu/layerProbe.ts', code);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /src\/webgpu\/ may import only src\/native\/, itself/);
});
