// The hub client and downloader against a loopback hub that serves the fixture model files:
// complete downloads byte for byte, resume after a dropped connection and after a cancel,
// checksum and size mismatches that leave nothing corrupt in place, 404s, a hub that is down.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';

import { discardPartialDownload, DownloadProgress, downloadModel, stagingFolder } from '../../../src/core/models/downloader';
import { TidalError } from '../../../src/native/errors';
import { listRepoFiles, nextPageUrl, parseTreeListing } from '../../../src/core/models/hubClient';
import { FixtureHub } from './fixtureHub';

const REPO = 'tidal-test/tiny-coder';
const SOURCES = {
  'config.json': 'test/fixtures/models/mistral-gqa-f16/config.json',
  'generation_config.json': 'test/fixtures/models/mistral-gqa-f16/generation_config.json',
  'model.safetensors': 'test/fixtures/models/mistral-gqa-f16/model.safetensors',
  'tokenizer.json': 'test/fixtures/tokenizers/chatml-byte-bpe/tokenizer.json',
  'tokenizer_config.json': 'test/fixtures/tokenizers/chatml-byte-bpe/tokenizer_config.json',
};
const hub = new FixtureHub(new Map([[REPO, FixtureHub.filesFrom(SOURCES, (name) => name.endsWith('.safetensors') || name === 'tokenizer.json')]]));
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-download-'));
let destination = '';
let runs = 0;

before(() => hub.start());
after(async () => {
  await hub.stop();
  rmSync(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  hub.faults = {};
  hub.requests.length = 0;
  destination = path.join(scratch, `model-${runs++}`);
});

const location = () => ({ hubUrl: hub.url, repo: REPO });
const MODEL_SIZE = statSync(SOURCES['model.safetensors']).size;

function assertComplete(folder: string): void {
  assert.deepEqual(readdirSync(folder).sort(), Object.keys(SOURCES).sort());
  for (const [name, source] of Object.entries(SOURCES)) assert.ok(readFileSync(path.join(folder, name)).equals(readFileSync(source)), `${name} differs`);
  assert.equal(existsSync(stagingFolder(folder)), false);
}

test('the tree listing parser keeps safe file paths, LFS sha256 and sizes, git blob ids', () => {
  const files = parseTreeListing(JSON.parse(readFileSync('test/fixtures/hub/tree-listing.json', 'utf8')));
  assert.deepEqual(
    files.map((f) => f.path),
    ['.gitattributes', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx_data'],
  );
  const weights = files.find((f) => f.path === 'model.safetensors')!;
  assert.equal(weights.size, 988097824);
  assert.equal(weights.sha256, '3c0b8a5d3f0e6b1a9c2d4e7f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b');
  assert.equal(weights.gitBlobSha1, undefined);
  assert.equal(files.find((f) => f.path === 'config.json')!.gitBlobSha1, '0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6');
  assert.throws(() => parseTreeListing({ error: 'x' }), { code: 'ERR_TIDAL_HUB' });
});

test('a download fetches every listed file through the redirect, verified, with progress to the total', async () => {
  const progress: DownloadProgress[] = [];
  let clock = 0;
  const folder = await downloadModel({ location: location(), destination, onProgress: (p) => progress.push(p), now: () => (clock += 10) });
  assert.equal(folder, destination);
  assertComplete(destination);
  const total = Object.values(SOURCES).reduce((sum, source) => sum + statSync(source).size, 0);
  const last = progress.at(-1)!;
  assert.equal(last.totalBytes, total);
  assert.equal(last.receivedBytes, total);
  assert.equal(last.etaSeconds, 0);
  assert.ok(progress.some((p) => p.file === 'model.safetensors' && p.receivedBytes < total && p.bytesPerSecond > 0));
  for (const p of progress) if (p.bytesPerSecond > 0) assert.ok(Math.abs(p.etaSeconds! - (p.totalBytes - p.receivedBytes) / p.bytesPerSecond) < 1e-6);
  assert.ok(hub.requests.some((r) => r.url === `/cdn/${REPO}/model.safetensors`));
  // A second call finds the folder and fetches nothing.
  hub.requests.length = 0;
  await downloadModel({ location: location(), destination });
  assert.equal(hub.requests.length, 0);
});

test('a connection dropped mid-file is resumed with a Range request and the file verifies', async () => {
  hub.faults.dropAfterBytes = new Map([['model.safetensors', 200_000]]);
  await downloadModel({ location: location(), destination });
  assertComplete(destination);
  const ranged = hub.requests.filter((r) => r.url.startsWith('/cdn/') && r.url.endsWith('/model.safetensors') && r.range);
  assert.equal(ranged.length, 1);
  const start = Number(/bytes=(\d+)-/.exec(ranged[0].range!)![1]);
  assert.ok(start > 0 && start <= 200_000, `resumed at ${start}`);
});

test('a hub that ignores Range starts the file over and still verifies', async () => {
  hub.faults.dropAfterBytes = new Map([['model.safetensors', 100_000]]);
  hub.faults.ignoreRange = true;
  await downloadModel({ location: location(), destination });
  assertComplete(destination);
});

test('a cancelled download leaves no model folder, keeps its part file, and the next one resumes', async () => {
  hub.faults.stallAfterBytes = new Map([['model.safetensors', 300_000]]);
  const controller = new AbortController();
  let partBytes = 0;
  await assert.rejects(
    downloadModel({
      location: location(),
      destination,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.file === 'model.safetensors' && p.receivedBytes >= 300_000) controller.abort();
      },
    }),
    { code: 'ERR_TIDAL_CANCELLED' },
  );
  assert.equal(existsSync(destination), false);
  const part = path.join(stagingFolder(destination), 'model.safetensors.part');
  partBytes = statSync(part).size;
  assert.ok(partBytes > 0 && partBytes < MODEL_SIZE);
  hub.requests.length = 0;
  await downloadModel({ location: location(), destination });
  assertComplete(destination);
  const ranged = hub.requests.filter((r) => r.url.startsWith('/cdn/') && r.url.endsWith('/model.safetensors'));
  assert.deepEqual(
    ranged.map((r) => r.range),
    [`bytes=${partBytes}-`],
  );
  // Files finished before the cancel were not fetched again.
  assert.equal(hub.requests.filter((r) => r.url.endsWith('/config.json')).length, 0);
});

test('a wrong sha256 removes the file and leaves no model folder; the error says what to do', async () => {
  hub.faults.wrongSha256 = new Set(['model.safetensors']);
  await assert.rejects(
    downloadModel({ location: location(), destination }),
    (e: Error) => e instanceof TidalError && e.code === 'ERR_TIDAL_CHECKSUM' && /sha256.*removed.*Try the download again/.test(e.message),
  );
  assert.equal(existsSync(destination), false);
  const staged = readdirSync(stagingFolder(destination));
  assert.ok(!staged.some((name) => name.startsWith('model.safetensors')), staged.join());
  // Once the hub serves the right data, the retry completes.
  hub.faults = {};
  await downloadModel({ location: location(), destination });
  assertComplete(destination);
});

test('a wrong git blob id or more bytes than listed are refused too', async () => {
  hub.faults.wrongBlobOid = new Set(['config.json']);
  await assert.rejects(downloadModel({ location: location(), destination }), { code: 'ERR_TIDAL_CHECKSUM' });
  assert.equal(existsSync(destination), false);
  discardPartialDownload(destination);
  assert.equal(existsSync(stagingFolder(destination)), false);
  hub.faults = { extraBytes: new Set(['model.safetensors']) };
  await assert.rejects(
    downloadModel({ location: location(), destination }),
    (e: Error) => e instanceof TidalError && e.code === 'ERR_TIDAL_CHECKSUM' && /larger than/.test(e.message),
  );
  assert.equal(existsSync(destination), false);
  assert.ok(!readdirSync(stagingFolder(destination)).some((name) => name.startsWith('model.safetensors')));
});

test('404s: an unknown repository and a listed file the hub does not serve', async () => {
  await assert.rejects(
    listRepoFiles({ hubUrl: hub.url, repo: 'nobody/nothing' }),
    (e: Error) => e instanceof TidalError && e.code === 'ERR_TIDAL_HUB' && e.status === 404 && /not found/.test(e.message),
  );
  hub.faults.missingFile = new Set(['tokenizer.json']);
  await assert.rejects(
    downloadModel({ location: location(), destination }),
    (e: Error) => e instanceof TidalError && e.code === 'ERR_TIDAL_HUB' && e.status === 404,
  );
  assert.equal(existsSync(destination), false);
});

test('a hub that is down, and bad hub settings, give errors that name the setting', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(
    downloadModel({ location: { hubUrl: `http://127.0.0.1:${port}`, repo: REPO }, destination }),
    (e: Error) => e instanceof TidalError && e.code === 'ERR_TIDAL_HUB' && /Could not connect.*tidal\.models\.hubUrl/.test(e.message),
  );
  await assert.rejects(listRepoFiles({ hubUrl: 'ftp://example', repo: REPO }), /not http or https/);
  await assert.rejects(listRepoFiles({ hubUrl: hub.url, repo: '../etc' }), /not a model repository id/);
  assert.equal(existsSync(destination), false);
});

test('include picks the files to fetch', async () => {
  await downloadModel({ location: location(), destination, include: (f) => f.path.endsWith('.json') });
  assert.deepEqual(readdirSync(destination).sort(), ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
});

test('a stale part file longer than the listed size is discarded, not resumed', async () => {
  mkdirSync(stagingFolder(destination), { recursive: true });
  writeFileSync(path.join(stagingFolder(destination), 'config.json.part'), Buffer.alloc(100_000, 1));
  await downloadModel({ location: location(), destination });
  assertComplete(destination);
});

test('a tree listing split over pages (Link rel="next") is read to the end', async () => {
  hub.faults.pageSize = 2;
  const files = await listRepoFiles(location());
  assert.deepEqual(files.map((f) => f.path).sort(), Object.keys(SOURCES).sort());
  assert.equal(hub.requests.filter((r) => r.url.startsWith('/api/')).length, 3);
  assert.equal(nextPageUrl('<https://elsewhere.example/api/x?cursor=2>; rel="next"', new URL('http://127.0.0.1/api/x')), undefined);
});
