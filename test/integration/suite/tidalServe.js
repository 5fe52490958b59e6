// `tidal serve` from this repository (dist/tidal-serve.js, with the native engine built here) on
// a loopback port the OS picks, serving the embedded model on one CPU thread: the server the
// remote-backend tests point the extension at.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..', '..');

/** Starts dist/tidal-serve.js on a port the OS picks; resolves with its base URL and process. */
function startServer() {
  const script = path.join(repoRoot, 'dist', 'tidal-serve.js');
  assert.ok(fs.existsSync(script), `${script} is missing: build with \`node esbuild.mjs\``);
  const child = spawn(
    process.execPath,
    [script, '--model', path.join(repoRoot, 'models', 'tidal-code-mini'), '--port', '0', '--threads', '1', '--backend', 'cpu'],
    {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', TIDAL_API_KEY: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`tidal-serve did not start within 120 s: ${stderr}`)), 120_000);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const match = /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], child });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tidal-serve exited with ${code}: ${stderr}`));
    });
  });
}

module.exports = { startServer };
