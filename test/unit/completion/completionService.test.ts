// The completion pipeline over a scripted backend that streams chunks and honours its
// AbortSignal: typing pause, supersession (the previous request's signal aborts), stop rules
// that cancel the generation, the cache, de-duplication, completions off, failures.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CompletionService, distinctCompletions, type CompletionConfig } from '../../../src/core/completion/completionService';
import type { GenerateParams, GenerateResult } from '../../../src/core/protocol/protocol';
import type { GenerationBackend } from '../../../src/core/backend/generationBackend';
import { completionParams } from '../paramsOfKind';

const baseConfig: CompletionConfig = {
  enabled: true,
  debounceMs: 0,
  mode: 'auto',
  maxPrefixChars: 1000,
  maxSuffixChars: 200,
  maxLines: 16,
  maxTokens: { singleLine: 48, multiLine: 128 },
};

interface Call {
  params: GenerateParams;
  signal?: AbortSignal;
  chunksSent: number;
  aborted: boolean;
}

// Streams `chunks` one per macrotask; stops at once when aborted (as the engine does).
function scriptedBackend(chunks: string[] | ((params: GenerateParams) => string[]), options: { fail?: Error } = {}) {
  const calls: Call[] = [];
  const backend: GenerationBackend = {
    kind: 'local',
    async generate(params, onText, signal) {
      const call: Call = { params, signal, chunksSent: 0, aborted: false };
      calls.push(call);
      if (options.fail) throw options.fail;
      let text = '';
      for (const chunk of typeof chunks === 'function' ? chunks(params) : chunks) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (signal?.aborted) {
          call.aborted = true;
          return result(params.requestId, text, 'cancelled');
        }
        text += chunk;
        call.chunksSent++;
        onText(chunk);
      }
      return result(params.requestId, text, 'stop');
    },
  };
  return { backend, calls };
}

function result(requestId: string, text: string, finishReason: GenerateResult['finishReason']): GenerateResult {
  return {
    requestId,
    text,
    finishReason,
    tokens: text.length,
    promptTokens: 100,
    reusedTokens: 90,
    recomputedTokens: 10,
    timings: { queuedMs: 0, prefillMs: 1, decodeMs: 1, totalMs: 2 },
  };
}

function service(backend: GenerationBackend, config: Partial<CompletionConfig> = {}) {
  let id = 0;
  return new CompletionService({
    backend: () => backend,
    config: () => ({ ...baseConfig, ...config }),
    repositoryPart: async (excludePath) => ({ files: [{ path: 'other.ts', content: `export const notThe = '${excludePath}';\n` }], tokens: 12 }),
    newRequestId: () => `c${++id}`,
  });
}

const at = (text: string, marker = '|') => ({ documentKey: 'file:///a.ts', filePath: 'a.ts', text: text.replace(marker, ''), offset: text.indexOf(marker) });

test('the request carries the prompt window, the repository files and the path; the text is the backend output after stop rules', async () => {
  const { backend, calls } = scriptedBackend(['add', '(1, 2);', '\nconsole', '.log(total);\n']);
  const completions = service(backend);
  const outcome = await completions.complete(at('import { add } from "./math";\nconst total = |\n'));
  assert.equal(outcome?.text, 'add(1, 2);');
  assert.equal(outcome.mode, 'single-line');
  assert.equal(outcome.source, 'engine');
  assert.equal(outcome.stoppedEarly, true);
  assert.equal(calls.length, 1);
  const params = calls[0].params;
  assert.equal(params.kind, 'completion');
  assert.equal(params.prefix, 'import { add } from "./math";\nconst total = ');
  assert.equal(params.suffix, '\n');
  assert.equal(params.filePath, 'a.ts');
  assert.deepEqual(params.repositoryContext, [{ path: 'other.ts', content: "export const notThe = 'a.ts';\n" }]);
  assert.equal(params.repository, undefined);
  assert.equal(params.maxTokens, 48);
  assert.deepEqual(params.sampling, { temperature: 0 });
  // The stop rule cancelled the generation: the last chunk was never produced.
  assert.equal(calls[0].aborted, true);
  assert.equal(calls[0].chunksSent, 3);
  assert.deepEqual({ ...completions.counters }, { started: 1, finished: 1, cancelled: 0, failed: 0, cacheHits: 0, inFlight: 0 });
});

test('the same prefix again is answered from the cache without a request', async () => {
  const { backend, calls } = scriptedBackend(['x + 1']);
  const completions = service(backend);
  const request = at('let y = |;\n');
  assert.equal((await completions.complete(request))?.text, 'x + 1');
  const again = await completions.complete(request);
  assert.equal(again?.text, 'x + 1');
  assert.equal(again?.source, 'cache');
  assert.equal(calls.length, 1);
  assert.equal(completions.counters.cacheHits, 1);
});

test('a newer request supersedes the running one: its signal aborts and it reports nothing', async () => {
  const { backend, calls } = scriptedBackend(Array.from({ length: 50 }, () => 'a'));
  const completions = service(backend);
  const first = completions.complete(at('const a = |'));
  await new Promise((resolve) => setTimeout(resolve, 10));
  const second = completions.complete(at('const ab = |'));
  assert.equal(await first, undefined);
  assert.equal((await second)?.text, 'a'.repeat(50));
  assert.equal(calls[0].signal?.aborted, true);
  assert.equal(calls[0].aborted, true);
  assert.ok(calls[0].chunksSent < 50);
  assert.deepEqual({ ...completions.counters }, { started: 2, finished: 1, cancelled: 1, failed: 0, cacheHits: 0, inFlight: 0 });
});

test('the typing pause: a request cancelled during it never reaches the backend', async () => {
  const { backend, calls } = scriptedBackend(['z']);
  const completions = service(backend, { debounceMs: 200 });
  const controller = new AbortController();
  const pending = completions.complete(at('x = |'), controller.signal);
  setTimeout(() => controller.abort(), 20);
  assert.equal(await pending, undefined);
  assert.equal(calls.length, 0);
  assert.equal(completions.counters.started, 0);
  // Cancelled by the editor while running: counted as cancelled, aborted in the backend.
  const slow = scriptedBackend(Array.from({ length: 100 }, () => 'b'));
  const running = service(slow.backend);
  const editor = new AbortController();
  const result = running.complete(at('y = |'), editor.signal);
  setTimeout(() => editor.abort(), 15);
  assert.equal(await result, undefined);
  assert.equal(slow.calls[0].aborted, true);
  assert.equal(running.counters.cancelled, 1);
});

test('completions off: no request at all', async () => {
  const { backend, calls } = scriptedBackend(['q']);
  const completions = service(backend, { enabled: false });
  assert.equal(await completions.complete(at('x = |')), undefined);
  assert.equal(calls.length, 0);
  assert.equal(completions.counters.started, 0);
});

test('text already after the cursor is not repeated; a multi-line block keeps its body', async () => {
  const { backend } = scriptedBackend(['a, b', ')']);
  assert.equal((await service(backend).complete(at('print(|)\n')))?.text, 'a, b');
  const block = scriptedBackend(['\n  return a', ' + b;\n}', '\n\nfunction next() {\n']);
  const outcome = await service(block.backend).complete(at('function sum(a, b) {|\n}\n'));
  assert.equal(outcome?.mode, 'multi-line');
  assert.equal(outcome?.text, '\n  return a + b;');
  assert.equal(block.calls[0].params.maxTokens, 128);
});

test('a failing backend is reported through lastError and counters, not thrown', async () => {
  const { backend } = scriptedBackend([], { fail: new Error('The Tidal engine is not running right now') });
  const completions = service(backend);
  assert.equal(await completions.complete(at('x = |')), undefined);
  assert.equal(completions.counters.failed, 1);
  assert.match(completions.lastError ?? '', /not running/);
});

test("with the engine host's own repository part the request says `repository: true`, carries no files, and the outcome counts the host's repository tokens", async () => {
  const { backend, calls } = scriptedBackend(['x + 1']);
  const asked: (string | undefined)[] = [];
  const completions = new CompletionService({
    backend: () => ({
      kind: 'local',
      generate: async (params, onText, signal) => ({ ...(await backend.generate(params, onText, signal)), repositoryTokens: 5000 }),
    }),
    config: () => baseConfig,
    repositoryPart: async (excludePath) => (asked.push(excludePath), { source: 'host', files: 40, tokens: 4800 }),
    newRequestId: () => 'c1',
  });
  const outcome = await completions.complete(at('let y = |;\n'));
  assert.equal(outcome?.text, 'x + 1');
  assert.deepEqual(asked, ['a.ts']);
  const params = completionParams(calls[0].params);
  assert.equal(params.repository, true);
  assert.equal('repositoryContext' in params, false, 'no repositoryContext field at all');
  assert.equal(params.filePath, 'a.ts');
  assert.equal(outcome.repositoryTokens, 5000, "the host's count for this prompt, not its last status");
});

test('prefetch hands the backend the prompt a completion at the same cursor would send, without generating', async () => {
  const { backend, calls } = scriptedBackend(['x']);
  const prefetched: GenerateParams[] = [];
  const completions = service({ ...backend, prefetch: (params) => prefetched.push(params) });
  const cursor = at('import { add } from "./math";\nconst total = |\n');
  await completions.prefetch(cursor);
  assert.equal(calls.length, 0, 'nothing generated');
  assert.equal(prefetched.length, 1);
  await completions.complete(cursor);
  const sent = completionParams(calls[0].params);
  const ahead = completionParams(prefetched[0]);
  for (const key of ['kind', 'prefix', 'suffix', 'filePath', 'repositoryContext', 'repository', 'attention'] as const)
    assert.deepEqual(ahead[key], sent[key], key);
  // A backend without a KV cache (remote) has no prefetch: nothing happens.
  await service(backend).prefetch(cursor);
  assert.equal(calls.length, 1);
});

// ---- alternatives on a manual trigger ----

test('a manual trigger asks for the greedy completion, then sampled ones with their own seeds, one after another; the distinct ones come back in order', async () => {
  const seeds = Array.from({ length: 4 }, () => 1 + Math.floor(Math.random() * 2 ** 30));
  const words = Array.from({ length: 4 }, () => `v${Math.random().toString(36).slice(2, 7)}`);
  // Seed 0 and 1 give the same text but for trailing white space, seed 2 an empty one.
  const bySeed = new Map<number | undefined, string[]>([
    [undefined, [words[0], ' + 1;']],
    [seeds[0], [words[1], ';']],
    [seeds[1], [words[1], ';   ']],
  ]);
  let running = 0;
  let overlapped = false;
  const { backend, calls } = scriptedBackend((params) => {
    running++;
    if (running > 1) overlapped = true;
    setTimeout(() => running--, 0);
    return bySeed.get(params.sampling?.seed) ?? [];
  });
  let seedIndex = 0;
  let id = 0;
  const completions = new CompletionService({
    backend: () => backend,
    config: () => ({ ...baseConfig, debounceMs: 60_000 }),
    newRequestId: () => `c${++id}`,
    seed: () => seeds[seedIndex++],
  });
  // A typing pause of a minute: a manual trigger does not wait for it.
  const outcome = await completions.complete({ ...at('const total = |\n'), candidates: 3 });
  assert.ok(outcome);
  assert.equal(calls.length, 3);
  assert.deepEqual(calls[0].params.sampling, { temperature: 0 });
  for (const [i, call] of calls.slice(1).entries()) {
    assert.equal(call.params.sampling?.seed, seeds[i]);
    assert.ok((call.params.sampling?.temperature ?? 0) > 0, 'an alternative is sampled with a temperature');
  }
  assert.equal(overlapped, false, 'the requests ran one after another');
  assert.equal(outcome.text, `${words[0]} + 1;`);
  assert.deepEqual(outcome.alternatives, [`${words[0]} + 1;`, `${words[1]};`]);
  assert.deepEqual({ ...completions.counters }, { started: 3, finished: 3, cancelled: 0, failed: 0, cacheHits: 0, inFlight: 0 });

  // While typing (one candidate) the greedy text comes from the cache; nothing is sampled.
  const typing = await completions.complete(at('const total = |\n'));
  assert.equal(typing?.source, 'cache');
  assert.deepEqual(typing?.alternatives, [`${words[0]} + 1;`]);
  assert.equal(calls.length, 3);
});

test('a manual trigger after typing reuses the cached greedy completion and asks only for the sampled ones', async () => {
  const word = `w${Math.random().toString(36).slice(2, 8)}`;
  const { backend, calls } = scriptedBackend((params) => ((params.sampling?.temperature ?? 0) > 0 ? [`${word}_${params.sampling?.seed}`] : [word]));
  let seed = 100 + Math.floor(Math.random() * 1000);
  let id = 0;
  const completions = new CompletionService({ backend: () => backend, config: () => baseConfig, newRequestId: () => `c${++id}`, seed: () => seed++ });
  const request = at('let x = |\n');
  assert.deepEqual((await completions.complete(request))?.alternatives, [word]);
  const manual = await completions.complete({ ...request, candidates: 3 });
  assert.equal(calls.length, 3);
  assert.deepEqual(
    calls.slice(1).map((call) => call.params.sampling?.temperature && call.params.sampling.seed),
    [seed - 2, seed - 1],
  );
  assert.deepEqual(manual?.alternatives, [word, `${word}_${seed - 2}`, `${word}_${seed - 1}`]);
  assert.equal(completions.counters.cacheHits, 1);
});

test('cancelling a manual trigger during the alternatives aborts the running request and reports nothing; no further one starts', async () => {
  const { backend, calls } = scriptedBackend((params) => ((params.sampling?.temperature ?? 0) > 0 ? Array.from({ length: 200 }, () => 'z') : ['greedy']));
  const completions = service(backend);
  const editor = new AbortController();
  const pending = completions.complete({ ...at('const q = |\n'), candidates: 3 }, editor.signal);
  while (calls.length < 2 || calls[1].chunksSent < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  editor.abort();
  assert.equal(await pending, undefined);
  assert.equal(calls.length, 2, 'no alternative started after the cancel');
  assert.equal(calls[1].signal?.aborted, true);
  assert.equal(calls[1].aborted, true);
  assert.ok(calls[1].chunksSent < 200);
  assert.deepEqual({ ...completions.counters }, { started: 2, finished: 1, cancelled: 1, failed: 0, cacheHits: 0, inFlight: 0 });
});

test('a newer keystroke supersedes a manual trigger still looking for alternatives', async () => {
  const { backend, calls } = scriptedBackend((params) => ((params.sampling?.temperature ?? 0) > 0 ? Array.from({ length: 200 }, () => 'y') : ['g']));
  const completions = service(backend);
  const manual = completions.complete({ ...at('const r = |\n'), candidates: 3 });
  while (calls.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  const typed = await completions.complete(at('const rs = |\n'));
  assert.equal(await manual, undefined);
  assert.equal(typed?.text, 'g');
  assert.equal(calls[1].aborted, true);
  assert.equal(calls.length, 3);
});

test('a failing alternative keeps the ones found; the candidate count is capped', async () => {
  let n = 0;
  const failing: GenerationBackend = {
    kind: 'local',
    async generate(params, onText) {
      n++;
      if (n === 2) throw new Error('engine busy');
      onText(`t${n}`);
      return result(params.requestId, `t${n}`, 'stop');
    },
  };
  const completions = service(failing);
  const outcome = await completions.complete({ ...at('a = |\n'), candidates: 1000 });
  assert.equal(n, 5, 'at most MAX_CANDIDATES requests');
  assert.deepEqual(outcome?.alternatives, ['t1', 't3', 't4', 't5']);
  assert.equal(completions.counters.failed, 1);
});

test('distinctCompletions drops empty ones and repeats that differ only in trailing white space, keeping the first', () => {
  const words = Array.from({ length: 5 }, () => Math.random().toString(36).slice(2, 8));
  assert.deepEqual(distinctCompletions([words[0], '', `${words[0]}  \n`, '   ', words[1], `${words[0]}x`, words[1]]), [words[0], words[1], `${words[0]}x`]);
  // Leading white space is part of the completion (indentation): not a repeat.
  assert.deepEqual(distinctCompletions([words[2], ` ${words[2]}`]), [words[2], ` ${words[2]}`]);
});

test('every engine request started ends as finished, cancelled or failed, also when requests are superseded while the repository part is read', async () => {
  const { backend } = scriptedBackend((params) => ((params.sampling?.temperature ?? 0) > 0 ? ['s', 't'] : ['g', 'h']));
  let id = 0;
  const waiting: (() => void)[] = [];
  /** Lets the reads finish, all but the newest `keep`. */
  const release = (keep = 0) => waiting.splice(0, waiting.length - keep).forEach((resolve) => resolve());
  const completions = new CompletionService({
    backend: () => backend,
    config: () => baseConfig,
    newRequestId: () => `c${++id}`,
    // Slow repository part: the next keystroke lands while it is read.
    repositoryPart: () => new Promise((resolve) => waiting.push(() => resolve({ files: [], tokens: 0 }))),
  });
  const runs: Promise<unknown>[] = [];
  const rounds = 3 + Math.floor(Math.random() * 5);
  for (let i = 0; i < rounds; i++) {
    // The previous request is still reading the repository part when this one supersedes it.
    const before = waiting.length;
    runs.push(completions.complete({ ...at(`const v${i} = |\n`), candidates: Math.random() < 0.5 ? 3 : 1 }));
    while (waiting.length === before) await new Promise((resolve) => setTimeout(resolve, 1));
    release(1);
    await new Promise((resolve) => setTimeout(resolve, Math.random() < 0.5 ? 0 : 3));
  }
  release();
  await Promise.all(runs);
  const c = completions.counters;
  assert.equal(c.inFlight, 0);
  assert.ok(c.started > 0);
  assert.equal(c.started, c.finished + c.cancelled + c.failed, JSON.stringify(c));
});

test("forgetFigures drops the last outcome's figures (a model change) and tells the listeners", async () => {
  const { backend } = scriptedBackend(['x + 1']);
  const completions = service(backend);
  let told = 0;
  completions.onDidChange(() => told++);
  await completions.complete(at('let y = |;\n'));
  assert.equal(completions.lastFromEngine?.result?.promptTokens, 100);
  const before = told;
  completions.forgetFigures();
  assert.equal(completions.last, undefined);
  assert.equal(completions.lastFromEngine, undefined);
  assert.equal(completions.lastError, undefined);
  assert.equal(told, before + 1);
});
