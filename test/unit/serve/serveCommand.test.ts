// The built `tidal serve` program (dist/tidal-serve.js): arguments are checked with a usage
// message, the key comes from a file or TIDAL_API_KEY, and the process serves on loopback
// until SIGTERM.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { exposureWarning, parseServeArgs } from '../../../src/serve/serveArgs';

const script = path.resolve('dist/tidal-serve.js');

test('arguments: defaults, key from a file or the environment, clear errors', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidal-serve-args-'));
  try {
    const defaults = parseServeArgs(['--model', 'models/tidal-code-mini'], {});
    assert.equal(defaults.host, '127.0.0.1');
    assert.equal(defaults.port, 8765);
    assert.equal(defaults.apiKey, undefined);
    assert.equal(defaults.modelName, 'tidal-code-mini');
    assert.equal(defaults.maxBodyBytes, 4 * 1024 * 1024);
    assert.equal(defaults.maxTokens, 4096);
    assert.equal(defaults.requestTimeoutMs, 300_000);
    assert.equal(defaults.maxQueue, 16);
    assert.equal(defaults.maxConnections, 64);
    assert.deepEqual([defaults.allowedHosts, defaults.allowedOrigins], [[], []]);
    const repeated = parseServeArgs(
      ['--model', 'm', '--allow-host', 'box.lan', '--allow-host=10.0.0.5', '--allow-origin', 'https://App.example/', '--max-tokens', '512'],
      {},
    );
    assert.deepEqual(repeated.allowedHosts, ['box.lan', '10.0.0.5']);
    assert.deepEqual(repeated.allowedOrigins, ['https://app.example']);
    assert.equal(repeated.maxTokens, 512);
    assert.throws(() => parseServeArgs(['--model', 'm', '--allow-origin', 'app.example'], {}), /--allow-origin takes an origin/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--allow-host', 'http://box.lan/'], {}), /--allow-host takes a host name/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--max-queue', '-1'], {}), /--max-queue must be an integer/);
    const keyFile = path.join(dir, 'key');
    writeFileSync(keyFile, 'from-file\n');
    assert.equal(parseServeArgs(['--model', 'm', `--api-key-file=${keyFile}`], { TIDAL_API_KEY: 'from-env' }).apiKey, 'from-file');
    assert.equal(parseServeArgs(['--model', 'm'], { TIDAL_API_KEY: 'from-env' }).apiKey, 'from-env');
    assert.throws(() => parseServeArgs([], {}), /--model DIR is required/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--port', '70000'], {}), /--port must be an integer/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--api-key', 'x'], {}), /Unknown option --api-key/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--api-key-file', path.join(dir, 'none')], {}), /Cannot read the API key file/);
    writeFileSync(keyFile, '  \n');
    assert.throws(() => parseServeArgs(['--model', 'm', '--api-key-file', keyFile], {}), /is empty/);
    assert.throws(() => parseServeArgs(['--model', 'm', '--backend', 'metal'], {}), /cpu, cuda or webgpu/);
    assert.match(exposureWarning(parseServeArgs(['--model', 'm', '--host', '0.0.0.0'], {})) ?? '', /without an API key/);
    assert.equal(exposureWarning(parseServeArgs(['--model', 'm', '--host', '0.0.0.0'], { TIDAL_API_KEY: 'k' })), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the built server starts, answers with the key from TIDAL_API_KEY, and exits on SIGTERM', { timeout: 60_000 }, async () => {
  assert.ok(existsSync(script), 'dist/tidal-serve.js is missing: run `npm run build` first');
  const usage = spawnSync(process.execPath, [script, '--port', '1'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--model DIR is required[\s\S]*usage: tidal-serve/);

  const child = spawn(process.execPath, [script, '--model', 'models/tidal-code-mini', '--port', '0', '--threads', '2'], {
    env: { ...process.env, TIDAL_API_KEY: 'cli-key' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        const match = /at (http:\/\/127\.0\.0\.1:\d+\/v1) \(API key required\)/.exec(stderr);
        if (match) resolve(match[1]);
      });
      child.on('exit', () => reject(new Error(`tidal-serve exited: ${stderr}`)));
    });
    assert.equal((await fetch(`${url}/models`)).status, 401);
    const response = await fetch(`${url}/completions`, {
      method: 'POST',
      headers: { Authorization: 'Bearer cli-key', 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'const answer = ', max_tokens: 3, temperature: 0 }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { usage: { completion_tokens: number } };
    assert.ok(body.usage.completion_tokens >= 1);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});
