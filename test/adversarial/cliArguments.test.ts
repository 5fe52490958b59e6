// The native `tidal` command line (reliability issue, cause 15): it validated less than the
// addon, taking --temperature -1, --seed -1 and --threads 5000, and read a file that is not
// GGUF as a folder ("cannot open .../config.json: Not a directory"). Each numeric option is now
// checked against the addon's range (exit code 2, the option and its range named), and a model
// path that is neither a GGUF file nor a folder is named as such. Spawns the built binary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const CLI = path.resolve('native/build/tidal');
const skip = existsSync(CLI) ? false : `the native CLI is not built (${CLI}); build it with cmake --build native/build`;
const MODEL = path.resolve('test/fixtures/models/llama3-gqa-f32');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function tidal(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(CLI, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const generate = (...options: string[]) => tidal('generate', '--model', MODEL, '--prompt-tokens', '1,2,3', '--max-tokens', '2', ...options);

test('cause 15: generate refuses numbers outside the addon ranges with exit code 2, naming the option and range', { skip }, () => {
  const cases: [string[], RegExp][] = [
    [['--temperature', '-1'], /option --temperature must be in \[0, 100\], got '-1'/],
    [['--seed', '-1'], /option --seed must be in \[0, 9007199254740991\], got '-1'/],
    [['--threads', '5000'], /option --threads must be in \[0, 1024\], got '5000'/],
    [['--temperature', 'nan'], /option --temperature must be in \[0, 100\], got 'nan'/],
    [['--top-p', '1.5'], /option --top-p must be in \[0, 1\], got '1.5'/],
    [['--top-k', '-5'], /option --top-k must be in \[0, 16777216\], got '-5'/],
    [['--seed', '99999999999999999999'], /option --seed must be in \[0, 9007199254740991\]/],
    [['--max-tokens', '2000000'], /option --max-tokens must be in \[0, 1048576\], got '2000000'/],
    [['--max-context', '-1'], /option --max-context must be in \[0, 16777216\], got '-1'/],
    [['--budget', '0'], /option --budget must be in \[1, 16777216\], got '0'/],
    [['--dense-layers', '-1'], /option --dense-layers must be in \[0, 4096\], got '-1'/],
    [['--selection-layers', '2,-1'], /option --selection-layers must be in \[0, 4095\], got '-1'/],
    [['--correction', '-3'], /option --correction must be in \[0, 1048576\], got '-3'/],
    [['--stop-tokens', '-2'], /option --stop-tokens must be in \[0, 2147483647\], got '-2'/],
    [['--threads', 'many'], /option --threads expects an integer in \[0, 1024\], got 'many'/],
  ];
  for (const [options, pattern] of cases) {
    const result = generate(...options);
    assert.equal(result.status, 2, `${options.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
    assert.match(result.stderr, /usage: tidal generate/);
    assert.equal(result.stdout, '', `${options.join(' ')} generated output`);
  }
  const prompt = tidal('generate', '--model', MODEL, '--prompt-tokens', '1,-2');
  assert.equal(prompt.status, 2);
  assert.match(prompt.stderr, /option --prompt-tokens must be in \[0, 2147483647\], got '-2'/);
});

test('cause 15: the other commands check their numbers too', { skip }, () => {
  const cases: [string[], RegExp][] = [
    [['info', '--model', MODEL, '--threads', '5000'], /option --threads must be in \[0, 1024\]/],
    [['bench-cpu', '--decode-tokens', '0'], /option --decode-tokens must be in \[1, 1048576\], got '0'/],
    [['bench-cpu', '--contexts', '256,-1'], /option --contexts must be in \[1, 16777216\], got '-1'/],
  ];
  for (const [args, pattern] of cases) {
    const result = tidal(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
  }
});

// `tidal eval` moved to a Node entry (it tokenizes with the host's tokenizer); its numbers are
// checked the same way.
const EVAL = path.resolve('dist/tidal-eval.js');
test('cause 15: the eval entry checks its numbers too', { skip: existsSync(EVAL) ? false : `${EVAL} is not built` }, () => {
  const cases: [string[], RegExp][] = [
    [['--trials', '-1'], /option --trials must be in \[0, 1048576\], got '-1'/],
    [['--seed', '-1'], /option --seed must be in \[0, 9007199254740991\], got '-1'/],
    [['--threads', '5000'], /option --threads must be in \[0, 1024\], got '5000'/],
  ];
  for (const [args, pattern] of cases) {
    const result = spawnSync(process.execPath, [EVAL, '--model', MODEL, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
  }
  const moved = tidal('eval', '--model', MODEL);
  assert.equal(moved.status, 2);
  assert.match(moved.stderr, /tidal-eval\.js/);
});

test('cause 15: numbers inside the ranges still run', { skip }, () => {
  const result = generate('--temperature', '0.7', '--seed', '7', '--threads', '2', '--top-p', '0.9', '--top-k', '40');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^\d+,\d+\n$/);
});

test('cause 15: a model path that is not GGUF nor a folder is named as such, not read as a folder', { skip }, () => {
  const notGguf = path.join(scratch, 'model.gguf');
  writeFileSync(notGguf, 'hello, this is no model');
  const result = tidal('info', '--model', notGguf);
  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      `'${notGguf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is not a GGUF file \\(bad magic: expected the magic "GGUF", found "hell"\\) nor a model folder`,
    ),
  );
  assert.doesNotMatch(result.stderr, /Not a directory/);

  const safetensors = tidal('info', '--model', path.join(MODEL, 'model.safetensors'));
  assert.equal(safetensors.status, 1);
  assert.match(safetensors.stderr, /is not a GGUF file \(bad magic: .*this looks like a safetensors file.*\) nor a model folder/);

  const missing = tidal('info', '--model', path.join(scratch, 'no-such-model'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /model path '.*no-such-model' does not exist; give a model folder/);
});
