// Starts the built engine host (dist/engine-host.js) as the extension does and talks
// JSON-RPC to it: proves the chain TypeScript → child process → N-API → C++ engine.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { startEngineHost } from '../../../src/host/hostProcess';
import { echoRequest, engineInfoRequest, loadModelRequest, NO_LOCAL_ENGINE_CODE, shutdownRequest } from '../../../src/core/protocol/protocol';

const hostScript = path.resolve('dist/engine-host.js');

test('engine host answers engine/info with the native engine facts and shuts down on request', { timeout: 30_000 }, async () => {
  assert.ok(existsSync(hostScript), 'dist/engine-host.js is missing: run `npm run build` first');
  const { child, connection } = startEngineHost(hostScript);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  connection.listen();
  try {
    const info = await connection.sendRequest(engineInfoRequest);
    assert.match(info.engineVersion, /^\d+\.\d+\.\d+$/);
    assert.equal(info.compiledBackends.at(-1), 'cpu');
    assert.equal(info.pid, child.pid);
    assert.equal(typeof info.cuda.usable, 'boolean');
    if (!info.cuda.usable) assert.ok(info.cuda.message.length > 10, 'an unusable GPU must say why');
    const text = `héllo ${Math.random()} 🌊`;
    assert.deepEqual(await connection.sendRequest(echoRequest, { text }), { text });
    await connection.sendRequest(shutdownRequest);
    connection.dispose();
    child.stdin.end();
    assert.equal(await exited, 0, stderr);
  } finally {
    connection.dispose();
    child.kill();
  }
});

test(
  'an addon that does not load leaves the host answering: engine/info and loadModel say there is no local engine, and why',
  { timeout: 30_000 },
  async () => {
    assert.ok(existsSync(hostScript), 'dist/engine-host.js is missing: run `npm run build` first');
    // The host bundle beside a file that is no shared library, as an addon of another platform is.
    const bundleDir = mkdtempSync(path.join(os.tmpdir(), 'tidal-no-engine-'));
    const copied = path.join(bundleDir, 'engine-host.js');
    copyFileSync(hostScript, copied);
    mkdirSync(path.join(bundleDir, 'native'));
    writeFileSync(path.join(bundleDir, 'native', 'tidal_native.node'), 'not a shared library');
    const { child, connection } = startEngineHost(copied);
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    connection.listen();
    try {
      for (const request of [() => connection.sendRequest(engineInfoRequest), () => connection.sendRequest(loadModelRequest, { modelDir: bundleDir })]) {
        await assert.rejects(request(), (error: Error & { data?: { code?: string; kind?: string } }) => {
          assert.equal(error.data?.code, NO_LOCAL_ENGINE_CODE);
          assert.equal(error.data?.kind, 'unloadable');
          assert.match(error.message, /could not be loaded on \S+ \(Node [\d.]+\)/);
          return true;
        });
      }
      assert.deepEqual(await connection.sendRequest(echoRequest, { text: 'still here' }), { text: 'still here' });
      assert.match(stderr, /could not be loaded/);
      await connection.sendRequest(shutdownRequest);
      connection.dispose();
      child.stdin.end();
      assert.equal(await exited, 0, stderr);
    } finally {
      connection.dispose();
      child.kill();
      rmSync(bundleDir, { recursive: true, force: true });
    }
  },
);
