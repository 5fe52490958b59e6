// Starts the built engine host (dist/engine-host.js) as the extension does and talks
// JSON-RPC to it: proves the chain TypeScript → child process → N-API → C++ engine.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { startEngineHost } from '../../../src/engine/hostProcess';
import { echoRequest, engineInfoRequest, shutdownRequest } from '../../../src/engine/protocol';

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
