// Typing replay benchmark for inline completions: a scripted editing session (insertions,
// typos deleted with backspace, line rewrites, file switches) over a real TypeScript library,
// replayed against the engine through the same CompletionService the editor uses, in-process
// with ModelSession on the CPU.
//
// Timing model: keystrokes come with the gaps a person leaves (within a word 60-140 ms,
// between words 180-450 ms, at the end of a line 1.2 s). A request starts only where the gap
// is longer than the debounce; it then has (gap - debounce) to finish before the next
// keystroke supersedes it (it is cancelled into the engine, and the time the cancellation
// takes is measured). Times are from the request leaving the debounce.
//
//   node bench/completions/run.mjs [--workspace DIR] [--files a.ts,b.ts] [--edits N] [--threads N]
//                                  [--paused-edits N] [--phases typing,pauses] [--context-tokens N] [--prefill-chunk N]
//                                  [--model DIR] [--verbose 1]
import * as path from 'node:path';

import { NodeFileSystem, RepositoryContext } from '../../src/core/context';
import { CompletionService, type CompletionOutcome } from '../../src/core/completion/completionService';
import { ModelSession } from '../../src/host/modelSession';
import type { GenerateParams, GenerateResult } from '../../src/core/protocol/protocol';
import { completionBudget } from '../../src/vscode/inlineCompletionConfig';
import type { GenerationBackend } from '../../src/core/backend/generationBackend';
import { DEFAULT_SETTINGS } from '../../src/vscode/settings';
import { loadAddon } from '../../src/native/addon';
import { promises as fs } from 'node:fs';

const root = process.cwd(); // run from the repository root
const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const workspace = path.resolve(args.get('workspace') ?? path.join(root, 'node_modules', '@huggingface', 'jinja'));
const files = (args.get('files') ?? 'src/lexer.ts,src/parser.ts,src/runtime.ts,src/utils.ts').split(',');
const editsPerFile = Number(args.get('edits') ?? 6);
const pausedEditsPerFile = Number(args.get('paused-edits') ?? 2);
const phases = (args.get('phases') ?? 'typing,pauses').split(',');
const threads = Number(args.get('threads') ?? 2);
// The prompt size: 0 is the model's whole context. The default keeps a CPU run to minutes.
const contextTokens = Number(args.get('context-tokens') ?? 4096);
// Tokens per prefill pass (the engine checks cancellation between passes); 0: the engine's default.
const prefillChunk = Number(args.get('prefill-chunk') ?? 0);
const modelDir = args.get('model') ?? path.join(root, 'models', 'tidal-code-mini');
const DEBOUNCE_MS = DEFAULT_SETTINGS.inlineCompletions.debounceMs;

// mulberry32: the session is the same on every run.
let seed = 20261201;
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo: number, hi: number) => lo + random() * (hi - lo);

interface Keystroke {
  file: string;
  text: string;
  offset: number;
  /** Milliseconds until the next keystroke. */
  gapMs: number;
  kind: 'insert' | 'delete';
}

// For each file: pick lines of code, delete their second half, retype it with the occasional
// typo (a wrong letter, then backspace).
function scriptSession(contents: Map<string, string>, editsPerFile: number): Keystroke[] {
  const strokes: Keystroke[] = [];
  for (const file of files) {
    let text = contents.get(file)!;
    const lines = text.split('\n');
    const candidates = lines.map((line, index) => ({ line, index })).filter(({ line }) => line.trim().length >= 24 && !line.trim().startsWith('//') && !line.trim().startsWith('*'));
    for (let edit = 0; edit < editsPerFile; edit++) {
      const { index } = candidates[Math.floor(random() * candidates.length)];
      const lineStart = text.split('\n').slice(0, index).join('\n').length + (index > 0 ? 1 : 0);
      const line = text.split('\n')[index];
      const indent = line.length - line.trimStart().length;
      const cut = indent + Math.floor((line.length - indent) * between(0.3, 0.6));
      const removed = line.slice(cut);
      // Deleting the tail: one backspace-word at a time, quickly.
      let offset = lineStart + line.length;
      text = text.slice(0, lineStart + cut) + text.slice(offset);
      offset = lineStart + cut;
      strokes.push({ file, text, offset, gapMs: 900, kind: 'delete' });
      for (let i = 0; i < removed.length; i++) {
        const ch = removed[i];
        if (random() < 0.04 && /[a-z]/.test(ch)) {
          const wrong = String.fromCharCode(97 + Math.floor(random() * 26));
          text = text.slice(0, offset) + wrong + text.slice(offset);
          strokes.push({ file, text, offset: offset + 1, gapMs: between(250, 500), kind: 'insert' });
          text = text.slice(0, offset) + text.slice(offset + 1);
          strokes.push({ file, text, offset, gapMs: between(80, 160), kind: 'delete' });
        }
        text = text.slice(0, offset) + ch + text.slice(offset);
        offset++;
        const next = removed[i + 1];
        const gapMs = next === undefined ? 1200 : /\w/.test(ch) && /\w/.test(next) ? between(60, 140) : between(180, 450);
        strokes.push({ file, text, offset, gapMs, kind: 'insert' });
      }
    }
  }
  return strokes;
}

// GenerationBackend over an in-process ModelSession: abort cancels the engine request. The
// last result is kept, cancelled ones included, for the verbose log.
let lastResult: GenerateResult | undefined;
function sessionBackend(session: ModelSession): GenerationBackend {
  return {
    kind: 'local',
    async generate(params: GenerateParams, onText, signal) {
      const onAbort = () => session.cancel(params.requestId);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        lastResult = await session.generate(params, onText);
        return lastResult;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },
  };
}
const verbose = args.has('verbose');

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main(): Promise<void> {
  const addon = loadAddon(path.join(root, 'dist'));
  const session = await ModelSession.load(addon, { modelDir, options: { threads, ...(prefillChunk > 0 ? { prefillChunk } : {}) } });
  const info = session.info();
  const maxContext = info.model.maxContext;
  // tidal.context.maxTokens for the replay: the whole prompt (repository + file window + answer).
  const settings = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, maxTokens: contextTokens } };
  const budget = completionBudget(settings, 'auto', maxContext, path.basename(workspace));

  const repo = new RepositoryContext({
    fileSystem: new NodeFileSystem(workspace),
    countTokens: (text) => session.tokenizer.encode(text).length,
    include: ['src/**/*.ts', 'README.md', 'package.json'],
  });
  await repo.scan();
  const contents = new Map<string, string>();
  for (const file of files) contents.set(file, await fs.readFile(path.join(workspace, file), 'utf8'));
  const strokes = scriptSession(contents, editsPerFile);
  const pausedStrokes = scriptSession(contents, pausedEditsPerFile);

  let activeFile = '';
  const completions = new CompletionService({
    backend: () => sessionBackend(session),
    config: () => ({ ...budget.config, debounceMs: 0 }),
    repositoryPart: async (excludePath) => repo.renderFiles(budget.repositoryTokens, excludePath),
    newRequestId: (() => {
      let id = 0;
      return () => `bench-${++id}`;
    })(),
  });

  interface Row { outcome: CompletionOutcome; result: GenerateResult; fileSwitch: boolean; file: string }
  const fmt = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '-');
  const m = info.model;
  console.log(`model ${path.relative(root, modelDir) || modelDir}: ${m.architecture} ${m.numLayers} layers, backend ${m.backend} (${m.threads} threads), prefill chunk ${prefillChunk || 'default'}, prompt limit ${contextTokens || maxContext} of ${maxContext} tokens`);
  console.log(`workspace ${path.relative(root, workspace)}: ${repo.paths.length} files in context; edited ${files.join(', ')}; debounce ${DEBOUNCE_MS} ms`);

  // 'typing': each request has until the next keystroke; 'pauses': each runs to the end (as if
  // the person stopped after every word), which gives the cost of every request.
  async function replay(phase: 'typing' | 'pauses', session$: Keystroke[]): Promise<void> {
    const finished: Row[] = [];
    const cancelInPrefill: number[] = [];
    const cancelInDecode: number[] = [];
    let requests = 0;
    let cancelled = 0;
    let cacheHits = 0;
    const wallStart = performance.now();
    activeFile = '';
    for (const stroke of session$) {
      const fileSwitch = stroke.file !== activeFile;
      if (fileSwitch) {
        activeFile = stroke.file;
        repo.setActiveFile(stroke.file);
      }
      // Every keystroke updates the repository's copy of the file (the editor does the same).
      await repo.applyChange({ path: stroke.file, kind: 'changed', text: stroke.text });
      if (stroke.gapMs <= DEBOUNCE_MS && !fileSwitch) continue;
      const hitsBefore = completions.counters.cacheHits;
      const controller = new AbortController();
      let abortedAt = 0;
      // The first request in a file (the repository part of the prompt changed) runs to the
      // end: it stands for opening the file and waiting; it is reported on its own.
      const timer = fileSwitch || phase === 'pauses'
        ? undefined
        : setTimeout(() => {
            abortedAt = performance.now();
            controller.abort();
          }, stroke.gapMs - DEBOUNCE_MS);
      const outcome = await completions.complete({ documentKey: stroke.file, filePath: stroke.file, text: stroke.text, offset: stroke.offset }, controller.signal);
      const settledAt = performance.now();
      clearTimeout(timer);
      const result = lastResult;
      lastResult = undefined;
      if (verbose) {
        console.error(`${phase} ${stroke.file}@${stroke.offset} ${stroke.kind} gap ${stroke.gapMs.toFixed(0)}: ${outcome ? 'done' : 'cancelled'} ` +
          `prompt ${result?.promptTokens} recomputed ${result?.recomputedTokens} tokens ${result?.tokens} prefill ${result?.timings.prefillMs.toFixed(0)} decode ${result?.timings.decodeMs.toFixed(0)} ms ${JSON.stringify(outcome?.text ?? '')}`);
      }
      if (completions.counters.cacheHits > hitsBefore) {
        cacheHits++;
        continue;
      }
      requests++;
      if (outcome === undefined) {
        cancelled++;
        if (abortedAt > 0) (result !== undefined && result.tokens > 0 ? cancelInDecode : cancelInPrefill).push(settledAt - abortedAt);
        continue;
      }
      if (outcome.result) finished.push({ outcome, result: outcome.result, fileSwitch, file: stroke.file });
    }
    const wallSeconds = (performance.now() - wallStart) / 1000;

    const warm = finished.filter((row) => !row.fileSwitch);
    const ttft = warm.map((row) => row.outcome.firstTokenMs).filter((value): value is number => value !== undefined);
    const total = warm.map((row) => row.outcome.totalMs);
    const recomputed = warm.map((row) => row.result.recomputedTokens);
    const prompt = warm.map((row) => row.result.promptTokens);
    const decodePerToken = warm.filter((row) => row.result.tokens > 1).map((row) => row.result.timings.decodeMs / row.result.tokens);
    const row = (name: string, values: number[]) => console.log(`| ${name} | ${fmt(percentile(values, 50))} | ${fmt(percentile(values, 95))} | ${values.length} |`);
    console.log('');
    console.log(`### ${phase === 'typing' ? 'typing with real gaps: a request has until the next keystroke' : 'a pause after every word: every request runs to the end'}`);
    console.log('');
    console.log(`${session$.length} keystrokes, ${requests} engine requests (${finished.length} finished, ${cancelled} superseded), ${cacheHits} cache hits, ${wallSeconds.toFixed(0)} s`);
    console.log('');
    console.log('| measure (warm requests, from the end of the debounce) | p50 | p95 | n |');
    console.log('|---|---|---|---|');
    row('time to first token, ms', ttft);
    row('time to full completion, ms', total);
    row('tokens recomputed per request', recomputed);
    row('prompt tokens per request', prompt);
    row('decode time per generated token, ms', decodePerToken);
    if (phase === 'typing') {
      row('cancellation while decoding, abort to settled, ms', cancelInDecode);
      row('cancellation while prefilling, abort to settled, ms', cancelInPrefill);
    }
    console.log('');
    for (const first of finished.filter((candidate) => candidate.fileSwitch)) {
      console.log(`- first request in ${first.file}: first token ${fmt(first.outcome.firstTokenMs ?? NaN)} ms, full ${fmt(first.outcome.totalMs)} ms, ${first.result.recomputedTokens} of ${first.result.promptTokens} prompt tokens recomputed`);
    }
    const stopped = warm.filter((candidate) => candidate.outcome.stoppedEarly).length;
    console.log(`- completions ended by a stop rule (engine request cancelled early): ${stopped} of ${warm.length}`);
  }

  if (phases.includes('typing')) await replay('typing', strokes);
  if (phases.includes('pauses')) await replay('pauses', pausedStrokes);
  await session.unload();
}

main().catch((error) => {
  console.error(`typing replay failed: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
