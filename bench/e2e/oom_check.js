// GPU out-of-memory, end to end through the native addon (what the engine host runs): each case
// must end in a clear ERR_TIDAL_OUT_OF_MEMORY error that says what did not fit, leave the
// process and the loaded model usable, and a smaller request right after must work. Another
// process (a Python holder with PyTorch) takes the GPU memory the cases need taken. Run on the
// GPU machine by bench/e2e/oom_gpu.sh:
//
//   node oom_check.js ADDON MODEL_DIR OUT_JSON
//
// Cases:
//   1. the holder leaves the weights and about 3 GB: a 64K-token prompt runs out of KV memory
//      part of the way; the sequence keeps its length and a 512-token request then works;
//   2. the holder takes nearly everything: loading the model fails with the error, the process
//      goes on;
//   3. the holder lets go: the model loads again and a request works.
'use strict';
const childProcess = require('node:child_process');
const fs = require('node:fs');
const readline = require('node:readline');

const [addonPath, modelDir, outPath] = process.argv.slice(2);
if (!addonPath || !modelDir || !outPath) {
  console.error('usage: node oom_check.js ADDON MODEL_DIR OUT_JSON');
  process.exit(2);
}
const addon = require(addonPath);
const results = [];

function record(name, ok, detail) {
  results.push({ name, ok, ...detail });
  console.log(`${ok ? 'pass' : 'FAIL'} ${name}: ${JSON.stringify(detail)}`);
}

function randomTokens(count, vocab, seed) {
  let state = seed >>> 0 || 1;
  const tokens = new Int32Array(count);
  for (let i = 0; i < count; ++i) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    tokens[i] = (state >>> 0) % vocab;
  }
  return tokens;
}

function finite(logits) {
  for (let i = 0; i < logits.length; ++i) if (!Number.isFinite(logits[i])) return false;
  return logits.length > 0;
}

async function expectOom(name, promise) {
  const started = Date.now();
  try {
    await promise;
    record(name, false, { error: 'no error: the request succeeded' });
    return undefined;
  } catch (error) {
    const ok = error.code === 'ERR_TIDAL_OUT_OF_MEMORY' && /memory/i.test(error.message);
    record(name, ok, { code: error.code, message: error.message, ms: Date.now() - started });
    return error;
  }
}

async function smallRequestWorks(name, engine, vocab) {
  const sequence = await engine.createSequence();
  try {
    const logits = await engine.prefill(sequence, randomTokens(512, vocab, 99));
    const decoded = await engine.decode(sequence, 17);
    record(name, finite(logits) && finite(decoded), { length: await engine.sequenceLength(sequence) });
  } catch (error) {
    record(name, false, { code: error.code, message: error.message });
  } finally {
    await engine.releaseSequence(sequence);
  }
}

// The holder: `hold N` makes it hold N bytes of GPU memory (freeing what it held first) and
// answer `held N FREE` with the bytes the GPU has free afterwards.
const HOLDER = `
import sys, torch
held = None
free, total = torch.cuda.mem_get_info()
print(f"ready {free} {total}", flush=True)
for line in sys.stdin:
    want = int(line.split()[1])
    held = None
    torch.cuda.empty_cache()
    if want > 0:
        held = torch.empty(want, dtype=torch.uint8, device="cuda")
    free, total = torch.cuda.mem_get_info()
    print(f"held {want} {free}", flush=True)
`;

function startHolder() {
  const child = childProcess.spawn('python3', ['-c', HOLDER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.(line.split(' ').map(Number).slice(1)));
  const next = () => new Promise((resolve) => waiting.push(resolve));
  const ready = next();
  return {
    ready,
    async hold(bytes) {
      const answer = next();
      child.stdin.write(`hold ${Math.max(0, Math.floor(bytes))}\n`);
      return answer;
    },
    stop() {
      child.stdin.end();
      child.kill();
    },
  };
}

async function main() {
  const GiB = 1 << 30;
  const holder = startHolder();
  const [free] = await holder.ready;
  record('holder started', true, { freeGiB: +(free / GiB).toFixed(1) });

  // 1. KV memory runs out part of the way through a long prompt.
  const probe = await addon.loadModel(modelDir, { backend: 'cuda', maxContext: 4096 });
  const { weightBytes, kvBytesPerToken, vocabSize: vocab } = probe.modelInfo;
  await probe.unload();
  // The weights, the engine's scratch and cuBLAS's workspace, and about 3 GB of KV.
  const [, freeWhileHeld] = await holder.hold(free - weightBytes - 6 * GiB);
  record('holder leaves room for the weights and ~3 GB of KV', true, { freeGiB: +(freeWhileHeld / GiB).toFixed(1) });
  let engine = await addon.loadModel(modelDir, { backend: 'cuda', maxContext: 131072 });
  const prompt = 65536;
  {
    const sequence = await engine.createSequence();
    const before = randomTokens(1024, vocab, 5);
    await engine.prefill(sequence, before);
    const started = Date.now();
    let failure;
    try {
      await engine.prefill(sequence, randomTokens(prompt, vocab, 6), { chunk: 4096 });
    } catch (error) {
      failure = error;
    }
    record(`a ${prompt}-token prompt (${((prompt * kvBytesPerToken) / GiB).toFixed(1)} GB of KV) fails with ERR_TIDAL_OUT_OF_MEMORY`,
      failure?.code === 'ERR_TIDAL_OUT_OF_MEMORY' && /memory/i.test(failure.message), {
        code: failure?.code,
        message: failure?.message,
        ms: Date.now() - started,
      });
    const length = await engine.sequenceLength(sequence);
    record('the sequence keeps the tokens it had before the failed prompt', length === before.length, { length, expected: before.length });
    // The sequence still decodes (its KV and logits are the ones from before the prompt).
    try {
      const logits = await engine.decode(sequence, 42);
      record('the sequence decodes after the failure', finite(logits), {});
    } catch (error) {
      record('the sequence decodes after the failure', false, { code: error.code, message: error.message });
    }
    await engine.releaseSequence(sequence);
  }
  await smallRequestWorks('a 512-token request after the KV out-of-memory', engine, vocab);
  await engine.unload();
  engine = undefined;

  // 2. Loading while almost all of the GPU's memory is taken.
  const [, freeNow] = await holder.hold(free - 2 * GiB);
  record('holder takes all but ~2 GB', true, { freeGiB: +(freeNow / GiB).toFixed(1) });
  await expectOom('loading the model while the GPU memory is taken', addon.loadModel(modelDir, { backend: 'cuda', maxContext: 4096 }));

  // 3. The memory comes back: the model loads and a request works.
  await holder.hold(0);
  holder.stop();
  engine = await addon.loadModel(modelDir, { backend: 'cuda', maxContext: 32768 });
  await smallRequestWorks('load and a request once the memory is back', engine, vocab);
  await engine.unload();
}

main()
  .catch((error) => record('unexpected failure', false, { code: error.code, message: String(error.stack || error) }))
  .finally(() => {
    fs.writeFileSync(outPath, JSON.stringify(results, null, 2));
    const failed = results.filter((r) => !r.ok).length;
    console.log(`oom_check: ${results.length - failed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
