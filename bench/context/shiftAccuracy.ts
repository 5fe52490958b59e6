// What shifted KV reuse (tidal.context.reuseShiftedKv) costs in accuracy. When a file in the
// middle of the repository layout is saved, it moves to the end and the files after its old
// place keep their KV by compaction: moved down, keys re-rotated to the new positions. That KV
// was computed attending to the old version of the saved file, so it is approximate. This bench
// measures the approximation against a fresh prefill of the same prompt, on the embedded model
// with the CPU backend.
//
// One ModelSession owns a copy of a real code folder (reuseShiftedKv on). Each trial saves one
// file from the middle of the layout (an identifier renamed, a function inserted, or a few lines
// deleted), sends the 'changed' event, waits for the warm-up, and completes at a cursor in the
// saved file, one in a file after it (moved) and one in a file before it (unmoved). Beside the
// session, the same engine is driven directly, so every prompt is run several ways:
//
//   fresh    the new layout prefilled from its first changed token (what reuseShiftedKv=false
//            does); the KV before that token is what a prefill from position 0 computes (the
//            first trial checks it against a prefill from position 0).
//   floor    the same, prefilled in calls of --floor-chunk tokens instead of the engine's
//            passes: the rounding noise between two exact prefills (first --floor-trials trials).
//   shifted  the previous layout's exact KV compacted with planReuse's ranges (as prefixCache
//            does) and the saved file prefilled at the end: the approximation of one save.
//   carried  like shifted, but kept from trial to trial as the session's slot is: the
//            approximation after k saves, never refreshed.
//   stale    the previous layout as it was, the save not seen at all: the scale of the save.
//   session  the completion ModelSession.generate returns, with its own stop rules.
//
// Each way prefills the cursor window with every position's logits, generates greedily, and
// scores the true rest of the cursor's line (left out of the window) teacher-forced. Compared
// with fresh: the next-token distribution at the end of the prompt (KL(fresh || other), max
// |Δlogit|, top-1 agreement), the same over every position of the window, the greedy completion
// (identical or not, length of the common prefix) and the change in the true line's NLL.
//
//   node bench/context/run.mjs [--trials N] [--cursors-per-trial N] [--repo-tokens N] [--threads N]
//                              [--source DIR] [--prefix-chars N] [--suffix-chars N] [--max-tokens N]
//                              [--prefill-chunk N] [--floor-chunk N] [--floor-trials N] [--model DIR] [--json FILE]
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ModelSession } from '../../src/host/modelSession';
import { commonPrefixLength, planReuse, type PromptBlock, type PromptLayout } from '../../src/host/prefixCache';
import type { GenerateParams } from '../../src/core/protocol/protocol';
import { RepositoryLayout } from '../../src/host/repositoryLayout';
import { loadAddon, type NativeAddon, type NativeEngine } from '../../src/native/addon';
import { logProbability, mean, pathOfBlock, seededRandom, shuffle as shuffleWith } from './common';

const root = process.cwd(); // run from the repository root
const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const number = (name: string, fallback: number) => Number(args.get(name) ?? fallback);
const trials = number('trials', 30);
const cursorsPerTrial = number('cursors-per-trial', 3);
const repoTokens = number('repo-tokens', 3000);
const threads = number('threads', 2);
const prefixChars = number('prefix-chars', 1000);
const suffixChars = number('suffix-chars', 300);
const maxTokens = number('max-tokens', 32);
const floorChunk = number('floor-chunk', 96);
// Trials that also run the floor (it costs a second recomputation; on the CPU backend it is 0).
const floorTrials = number('floor-trials', 3);
// Tokens per engine prefill pass (EngineOptions.prefillChunk) for the direct runs.
const prefillPasses = number('prefill-chunk', 256);
const source = path.resolve(args.get('source') ?? path.join(root, 'node_modules', '@azure', 'msal-common', 'src', 'error'));
const modelDir = path.resolve(args.get('model') ?? path.join(root, 'models', 'tidal-code-mini'));
const jsonOut = args.get('json');

// mulberry32: the same trials on every run.
const random = seededRandom(20261204);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
const shuffle = <T>(items: T[]): T[] => shuffleWith(items, random);

// ---- the workspace: a copy of a code folder, modification times set by a seeded order ----

const FIRST_MTIME = 1_760_000_000; // seconds; one minute apart, then each save later still
const SOURCE_FILE = /\.(ts|js|mjs|cjs)$/;
const NOT_SOURCE = /(\.d\.ts|\.min\.js|\.map)$/;

async function copyWorkspace(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tidal-shift-accuracy-'));
  const names = (await fs.readdir(source)).filter((name) => SOURCE_FILE.test(name) && !NOT_SOURCE.test(name)).sort();
  if (names.length < 4) throw new Error(`${source} has ${names.length} source files; the bench needs at least 4 (pass --source DIR).`);
  shuffle(names);
  for (const [index, name] of names.entries()) {
    const file = path.join(dir, name);
    await fs.copyFile(path.join(source, name), file);
    await fs.utimes(file, FIRST_MTIME + index * 60, FIRST_MTIME + index * 60);
  }
  return dir;
}

// The files the layout keeps within `repoTokens` (the newest, up to the first that does not fit);
// the others are deleted from the copy, so a file that grows later never pushes the oldest one
// out (that would move every block: another experiment than a save in the middle). Files over a
// quarter of the budget are left out first, so the layout has several files.
async function keepWhatFits(session: ModelSession, dir: string): Promise<string[]> {
  const layout = new RepositoryLayout(
    { root: dir, include: ['**/*'], exclude: [], maxTokens: repoTokens },
    {
      format: session.fimFormat,
      encode: (text) => session.tokenizer.encode(text),
      tokenId: (token) => session.tokenizer.tokenId(token),
      bos: undefined,
    },
  );
  for (const name of await fs.readdir(dir)) {
    const tokens = session.tokenizer.encode(await fs.readFile(path.join(dir, name), 'utf8')).length;
    if (tokens > repoTokens / 4) await fs.rm(path.join(dir, name));
  }
  await layout.scan();
  const kept = layout.layout().blocks.map((block) => pathOfBlock(block));
  for (const name of await fs.readdir(dir)) if (!kept.includes(name)) await fs.rm(path.join(dir, name));
  if (kept.length < 5) throw new Error(`only ${kept.length} files of ${source} fit in ${repoTokens} tokens; the bench needs 5 or more (raise --repo-tokens).`);
  return kept;
}


// ---- saved edits ----

type EditKind = 'rename' | 'insert function' | 'delete lines';
const EDIT_KINDS: EditKind[] = ['rename', 'insert function', 'delete lines'];

const NOT_RENAMED = new Set(
  ('function return const export import string number boolean undefined this from class extends constructor super static ' +
    'readonly private public protected interface type throw async await null true false void typeof instanceof else case ' +
    'break default switch catch finally while require module exports Object Error Promise Array length prototype ' +
    'License Licensed Copyright Microsoft Corporation').split(' '),
);

// Helpers a person might add, in TypeScript and in JavaScript; `Name` becomes a seeded suffix so
// two inserts differ.
const INSERTED_FUNCTIONS: { ts: string; js: string }[] = [
  {
    ts: 'export function isBlankName(value: string | undefined): boolean {\n    return value === undefined || value.trim().length === 0;\n}\n',
    js: 'function isBlankName(value) {\n    return value === undefined || value.trim().length === 0;\n}\n',
  },
  {
    ts: 'export function errorCodeName(error: unknown): string {\n    if (error instanceof Error && "errorCode" in error) {\n        return String((error as { errorCode: unknown }).errorCode);\n    }\n    return "unknown_error";\n}\n',
    js: 'function errorCodeName(error) {\n    if (error instanceof Error && "errorCode" in error) {\n        return String(error.errorCode);\n    }\n    return "unknown_error";\n}\n',
  },
  {
    ts: 'function joinMessagesName(messages: string[], separator = ", "): string {\n    return messages.filter((message) => message.length > 0).join(separator);\n}\n',
    js: 'function joinMessagesName(messages, separator = ", ") {\n    return messages.filter((message) => message.length > 0).join(separator);\n}\n',
  },
  {
    ts: 'export function withRetryName<T>(run: () => T, attempts: number): T {\n    let last: unknown;\n    for (let attempt = 0; attempt < attempts; attempt++) {\n        try {\n            return run();\n        } catch (error) {\n            last = error;\n        }\n    }\n    throw last;\n}\n',
    js: 'function withRetryName(run, attempts) {\n    let last;\n    for (let attempt = 0; attempt < attempts; attempt++) {\n        try {\n            return run();\n        } catch (error) {\n            last = error;\n        }\n    }\n    throw last;\n}\n',
  },
];
const SUFFIXES = ['Value', 'Next', 'Local', 'Checked', 'V2', 'Safe'];

function applyEdit(content: string, kind: EditKind, javascript: boolean): { content: string; what: string } | undefined {
  const lines = content.split('\n');
  if (kind === 'rename') {
    const counts = new Map<string, number>();
    for (const name of content.match(/\b[A-Za-z_][\w]{3,}\b/g) ?? []) if (!NOT_RENAMED.has(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
    const candidates = [...counts].filter(([, count]) => count >= 2).map(([name]) => name).sort();
    if (candidates.length === 0) return undefined;
    const name = pick(candidates);
    const renamed = name + pick(SUFFIXES);
    return { content: content.replace(new RegExp(`\\b${name}\\b`, 'g'), renamed), what: `rename ${name} -> ${renamed} (${counts.get(name)}x)` };
  }
  if (kind === 'insert function') {
    // After a blank line followed by a line at the top level.
    const places = lines.map((line, index) => index).filter((index) => index > 0 && lines[index - 1].trim() === '' && /^\S/.test(lines[index]) && !lines[index].startsWith('}'));
    const at = places.length > 0 ? pick(places) : lines.length;
    const template = pick(INSERTED_FUNCTIONS);
    const code = (javascript ? template.js : template.ts).replace(/Name\b/, pick(SUFFIXES));
    lines.splice(at, 0, ...code.split('\n'));
    return { content: lines.join('\n'), what: `insert function at line ${at + 1}` };
  }
  // Delete 2-4 consecutive lines of code (not blank, not comments).
  const isCode = (line: string) => line.trim().length > 0 && !/^\s*(\/\/|\/?\*)/.test(line);
  const count = 2 + Math.floor(random() * 3);
  const starts = lines.map((line, index) => index).filter((index) => index + count <= lines.length && lines.slice(index, index + count).every(isCode));
  if (starts.length === 0) return undefined;
  const at = pick(starts);
  lines.splice(at, count);
  return { content: lines.join('\n'), what: `delete lines ${at + 1}-${at + count}` };
}

// ---- cursors ----

type CursorPlace = 'saved' | 'moved' | 'unmoved';

interface Cursor {
  place: CursorPlace;
  file: string;
  prefix: string;
  suffix: string;
  /** The rest of the cursor's line, left out of the window: what a person is about to type. */
  middle: string;
}

// Inside a line of code, 30-70% of the way along it, with the rest of the line left out of the
// window, like a person typing it; the saved file on disk (in the repository part) has the line
// whole, so a completion can find it there.
function cursorIn(file: string, content: string, place: CursorPlace): Cursor | undefined {
  const lines = content.split('\n');
  const offsets: number[] = [];
  let offset = 0;
  for (const line of lines) {
    offsets.push(offset);
    offset += line.length + 1;
  }
  const candidates = lines.map((line, index) => index).filter((index) => lines[index].trim().length >= 16 && !/^\s*(\/\/|\/?\*)/.test(lines[index]));
  if (candidates.length === 0) return undefined;
  const index = pick(candidates);
  const line = lines[index];
  const indent = line.length - line.trimStart().length;
  const at = offsets[index] + indent + Math.floor((line.length - indent) * (0.3 + 0.4 * random()));
  const lineEnd = offsets[index] + line.length;
  return {
    place,
    file,
    prefix: content.slice(Math.max(0, at - prefixChars), at),
    middle: content.slice(at, lineEnd),
    suffix: content.slice(lineEnd, lineEnd + suffixChars),
  };
}

// ---- comparing two runs of one prompt ----

interface Run {
  windowLogits: Float32Array; // [window tokens][vocab]
  completion: number[];
  /** Mean negative log-likelihood (nats per token) of the true rest of the line, teacher-forced. */
  middleNll: number;
}

interface Comparison {
  nextKl: number;
  nextMaxAbs: number;
  nextTop1: boolean;
  windowKl: number;
  windowTop1: number;
  exact: boolean;
  commonPrefix: number;
  /** The other run's middleNll minus the reference's: > 0 when the true text became less likely. */
  deltaNll: number;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

// KL(p || q) of the softmaxes of two logit rows, in nats, in float64.
function klDivergence(p: Float32Array, q: Float32Array): number {
  let pMax = -Infinity;
  let qMax = -Infinity;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > pMax) pMax = p[i];
    if (q[i] > qMax) qMax = q[i];
  }
  let pSum = 0;
  let qSum = 0;
  for (let i = 0; i < p.length; i++) {
    pSum += Math.exp(p[i] - pMax);
    qSum += Math.exp(q[i] - qMax);
  }
  const pLog = pMax + Math.log(pSum);
  const qLog = qMax + Math.log(qSum);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const logP = p[i] - pLog;
    kl += Math.exp(logP) * (logP - (q[i] - qLog));
  }
  return Math.max(0, kl);
}

function compare(reference: Run, other: Run, vocab: number): Comparison {
  const rows = reference.windowLogits.length / vocab;
  const row = (run: Run, index: number) => run.windowLogits.subarray(index * vocab, (index + 1) * vocab);
  let windowKl = 0;
  let windowTop1 = 0;
  for (let index = 0; index < rows; index++) {
    windowKl += klDivergence(row(reference, index), row(other, index));
    if (argmax(row(reference, index)) === argmax(row(other, index))) windowTop1++;
  }
  const last = rows - 1;
  let nextMaxAbs = 0;
  const a = row(reference, last);
  const b = row(other, last);
  for (let i = 0; i < vocab; i++) nextMaxAbs = Math.max(nextMaxAbs, Math.abs(a[i] - b[i]));
  const commonPrefix = commonPrefixLength(reference.completion, other.completion);
  return {
    nextKl: klDivergence(a, b),
    nextMaxAbs,
    nextTop1: argmax(a) === argmax(b),
    windowKl: windowKl / rows,
    windowTop1: windowTop1 / rows,
    exact: commonPrefix === reference.completion.length && commonPrefix === other.completion.length,
    commonPrefix,
    deltaNll: other.middleNll - reference.middleNll,
  };
}

// ---- the engine, driven beside the session ----

class Problems {
  readonly found: string[] = [];
  note(message: string): void {
    this.found.push(message);
    console.error(`PROBLEM: ${message}`);
  }
}
const problems = new Problems();
let vocabSize = 0;
// Fresh (from the first changed token) against a prefill from position 0, on the first trial.
const scratchChecks: Comparison[] = [];

/** An engine sequence and the layout it holds. */
interface Held {
  sequence: number;
  tokens: Int32Array;
  blocks: PromptBlock[];
}

/**
 * Prefills `tokens` in calls of `piece` tokens (0: one call), so the forward passes are cut
 * elsewhere than the engine's own chunks; with allLogits the rows of every call, in order.
 */
async function prefillInPieces(engine: NativeEngine, sequence: number, tokens: Int32Array, piece: number, allLogits: boolean): Promise<Float32Array> {
  if (piece <= 0 || piece >= tokens.length) return engine.prefill(sequence, tokens, { allLogits });
  const parts: Float32Array[] = [];
  for (let start = 0; start < tokens.length; start += piece) parts.push(await engine.prefill(sequence, tokens.slice(start, start + piece), { allLogits }));
  if (!allLogits) return parts[parts.length - 1];
  const all = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

async function expectTokens(engine: NativeEngine, sequence: number, expected: Int32Array, what: string): Promise<void> {
  const held = await engine.sequenceTokens(sequence);
  const same = held.length === expected.length && commonPrefixLength(held, expected) === expected.length;
  if (!same) problems.note(`${what}: the sequence holds ${held.length} tokens, ${commonPrefixLength(held, expected)} of them as expected, of ${expected.length}`);
}

function expectFinite(logits: Float32Array, what: string): void {
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      problems.note(`${what}: logit ${i} (row-major over the vocabulary) is ${logits[i]}`);
      return;
    }
  }
}

/** Mirrors PrefixCache.prepare with holdAll: compaction (or trim) by planReuse, then prefill. */
async function bringTo(engine: NativeEngine, held: Held, layout: PromptLayout, shifted: boolean, what: string): Promise<{ kept: number; moved: number; compacted: boolean }> {
  const plan = planReuse(held.tokens, held.blocks, layout, layout.tokens.length, shifted);
  if (plan.ranges !== undefined) {
    await engine.compactSequence(held.sequence, plan.ranges);
    await expectTokens(engine, held.sequence, layout.tokens.slice(0, plan.kept), `${what} after compactSequence`);
  } else if (plan.exact < held.tokens.length) {
    await engine.trimSequence(held.sequence, plan.exact);
  }
  if (plan.kept < layout.tokens.length) {
    const logits = await engine.prefill(held.sequence, layout.tokens.slice(plan.kept));
    expectFinite(logits, `${what} prefill after reuse`);
  }
  held.tokens = layout.tokens.slice();
  held.blocks = [...layout.blocks];
  await expectTokens(engine, held.sequence, layout.tokens, `${what} after prefill`);
  return { kept: plan.kept, moved: plan.shifted, compacted: plan.ranges !== undefined };
}

/**
 * The cursor window on a fork of a repository sequence: all its logits, the greedy completion,
 * then (trimmed back to the window) the true rest of the line teacher-forced, for its likelihood.
 */
async function runWindow(engine: NativeEngine, repository: number, window: Int32Array, middle: number[], piece: number, what: string): Promise<Run> {
  const sequence = await engine.forkSequence(repository);
  try {
    const windowLogits = await prefillInPieces(engine, sequence, window, piece, true);
    expectFinite(windowLogits, `${what} window`);
    const held = await engine.sequenceLength(sequence);
    const result = await engine.generate(sequence, [], { maxTokens, stopAtEos: false, sampling: { temperature: 0 }, attention: { mode: 'full' } });
    let nll = -logProbability(windowLogits.subarray(windowLogits.length - vocabSize), middle[0]);
    if (middle.length > 1) {
      await engine.trimSequence(sequence, held);
      const rows = await engine.prefill(sequence, middle.slice(0, -1), { allLogits: true });
      for (let i = 1; i < middle.length; i++) nll -= logProbability(rows.subarray((i - 1) * vocabSize, i * vocabSize), middle[i]);
    }
    return { windowLogits, completion: Array.from(result.tokens), middleNll: nll / middle.length };
  } finally {
    await engine.releaseSequence(sequence);
  }
}

// ---- the run ----

interface CursorRecord {
  trial: number;
  edit: string;
  savedFile: string;
  savedIndex: number;
  files: number;
  movedTokens: number;
  repositoryTokens: number;
  place: CursorPlace;
  cursorFile: string;
  windowTokens: number;
  /** Fresh's NLL of the true rest of the line (nats per token). */
  freshNll: number;
  floor?: Comparison;
  shifted: Comparison;
  carried: Comparison;
  /** The previous layout (the save not seen at all) against fresh: the scale of the save itself. */
  stale: Comparison;
  carriedSaves: number;
  middle: string;
  sessionMatchesFresh: boolean;
  sessionMatchesCarried: boolean;
  freshText: string;
  shiftedText: string;
  sessionText: string;
}

async function main(): Promise<void> {
  const started = performance.now();
  const addon = loadAddon(path.dirname(__filename)); // run.mjs puts a copy of the addon beside the bundle
  let engine: NativeEngine | undefined;
  // The session loads the engine; the bench keeps a handle to drive the same engine beside it.
  const capturing: NativeAddon = {
    ...addon,
    CancelToken: addon.CancelToken,
    loadModel: async (dir, options) => (engine = await addon.loadModel(dir, options)),
  };
  const session = await ModelSession.load(capturing, { modelDir, options: { backend: 'cpu', threads, prefillChunk: prefillPasses } });
  if (!engine) throw new Error('the session did not load its engine through the bench');
  if (typeof engine.compactSequence !== 'function') throw new Error('this native addon has no compactSequence: rebuild it (node scripts/build-native.mjs && node esbuild.mjs).');
  const vocab = engine.modelInfo.vocabSize;
  vocabSize = vocab;
  const dir = await copyWorkspace();
  const contents = new Map<string, string>();
  try {
    await keepWhatFits(session, dir);
    for (const name of await fs.readdir(dir)) contents.set(name, await fs.readFile(path.join(dir, name), 'utf8'));

    // Room for the files to grow: nothing is dropped by the budget during the run.
    const status = await session.openWorkspace({ root: dir, include: ['**/*'], exclude: [], maxTokens: repoTokens * 2, repoName: path.basename(source), reuseShiftedKv: true });
    await session.whenRepositoryReady();
    const request = (cursor: Cursor, id: string): GenerateParams => ({
      requestId: id,
      kind: 'completion',
      repository: true,
      filePath: cursor.file,
      prefix: cursor.prefix,
      suffix: cursor.suffix,
      maxTokens,
      sampling: { temperature: 0 },
      attention: { mode: 'full' },
    });
    const layoutOf = (params: GenerateParams): PromptLayout & { window: Int32Array; stopTokens: number[] } => {
      const built = session.buildPrompt(params);
      const tokens = Int32Array.from(built.tokens);
      return { tokens: tokens.slice(0, built.repositoryTokens), blocks: [...built.blocks], window: tokens.slice(built.repositoryTokens), stopTokens: built.stopTokens };
    };
    const probe = layoutOf(request({ place: 'unmoved', file: [...contents.keys()][0], prefix: 'x', middle: '', suffix: '' }, 'probe'));
    console.error(`workspace: ${status.files} files of ${source}, repository part ${probe.tokens.length} tokens; model max context ${engine.modelInfo.maxContext}`);

    // The fresh chain: always the exact KV of the current layout.
    const fresh: Held = { sequence: await engine.createSequence(), tokens: new Int32Array(0), blocks: [] };
    await bringTo(engine, fresh, probe, false, 'fresh (first layout)');
    // The carried chain: compacted on every save, like the session's slot.
    const carried: Held = { sequence: await engine.forkSequence(fresh.sequence), tokens: probe.tokens.slice(), blocks: [...probe.blocks] };

    const records: CursorRecord[] = [];
    let previous: PromptLayout = probe;
    let shiftedTotal = session.stats().prefixCache.tokensShifted ?? 0;
    let saves = 0;
    for (let trial = 1; trial <= trials; trial++) {
      // A file from the middle of the layout (not the first, not the last two).
      const order = previous.blocks.map(pathOfBlock);
      const savedIndex = 1 + Math.floor(random() * Math.max(1, order.length - 3));
      const savedFile = order[savedIndex];
      const kind = EDIT_KINDS[(trial - 1) % EDIT_KINDS.length];
      const edit = applyEdit(contents.get(savedFile)!, kind, /\.[mc]?js$/.test(savedFile)) ?? applyEdit(contents.get(savedFile)!, 'insert function', /\.[mc]?js$/.test(savedFile))!;
      contents.set(savedFile, edit.content);
      const file = path.join(dir, savedFile);
      await fs.writeFile(file, edit.content);
      const mtime = FIRST_MTIME + 100_000 + trial * 60;
      await fs.utimes(file, mtime, mtime);
      await session.workspaceEvents([{ path: savedFile, kind: 'changed' }]);
      await session.whenRepositoryReady();
      saves++;

      // Cursors: in the saved file, in a file after it (moved), in a file before it (unmoved).
      const places: [CursorPlace, string[]][] = [
        ['saved', [savedFile]],
        ['moved', order.slice(savedIndex + 1)],
        ['unmoved', order.slice(0, savedIndex)],
      ];
      const cursors: Cursor[] = [];
      for (let i = 0; cursors.length < cursorsPerTrial && i < cursorsPerTrial * 3; i++) {
        const [place, files] = places[i % places.length];
        if (files.length === 0) continue;
        const name = pick(files);
        const cursor = cursorIn(name, contents.get(name)!, place);
        if (cursor) cursors.push(cursor);
      }
      const prompts = cursors.map((cursor, index) => layoutOf(request(cursor, `t${trial}c${index}`)));
      const layout: PromptLayout = { tokens: prompts[0].tokens, blocks: prompts[0].blocks };
      for (const prompt of prompts) {
        if (commonPrefixLength(prompt.tokens, layout.tokens) !== layout.tokens.length || prompt.tokens.length !== layout.tokens.length) {
          problems.note(`trial ${trial}: two completions of one layout have different repository parts`);
        }
      }
      const newOrder = layout.blocks.map(pathOfBlock);
      if (newOrder[newOrder.length - 1] !== savedFile) problems.note(`trial ${trial}: the saved file ${savedFile} is not last in the layout`);

      // The four ways, for the repository part.
      const exact = commonPrefixLength(previous.tokens, layout.tokens);
      let floor: number | undefined;
      if (trial <= floorTrials) {
        floor = await engine.forkSequence(fresh.sequence, exact);
        expectFinite(await prefillInPieces(engine, floor, layout.tokens.slice(exact), floorChunk, false), `trial ${trial} floor`);
      }
      const shifted: Held = { sequence: await engine.forkSequence(fresh.sequence), tokens: previous.tokens.slice(), blocks: [...previous.blocks] };
      const once = await bringTo(engine, shifted, layout, true, `trial ${trial} shifted`);
      if (!once.compacted) problems.note(`trial ${trial}: planReuse found nothing to move after ${savedFile} (kept ${once.kept})`);
      const carriedPlan = await bringTo(engine, carried, layout, true, `trial ${trial} carried`);
      const stale = await engine.forkSequence(fresh.sequence); // the previous layout: the save not seen
      await bringTo(engine, fresh, layout, false, `trial ${trial} fresh`);
      let scratch: number | undefined;
      if (trial === 1) {
        scratch = await engine.createSequence();
        expectFinite(await engine.prefill(scratch, layout.tokens), `trial ${trial} from position 0`);
      }
      const sessionShifted = (session.stats().prefixCache.tokensShifted ?? 0) - shiftedTotal;
      shiftedTotal += sessionShifted;
      if (sessionShifted !== carriedPlan.moved) problems.note(`trial ${trial}: the session moved ${sessionShifted} tokens, planReuse on the carried chain ${carriedPlan.moved}`);

      for (const [index, cursor] of cursors.entries()) {
        const window = prompts[index].window;
        const what = `trial ${trial} cursor ${index}`;
        const middle = session.tokenizer.encode(cursor.middle);
        const reference = await runWindow(engine, fresh.sequence, window, middle, 0, `${what} fresh`);
        const floorRun = floor !== undefined ? await runWindow(engine, floor, window, middle, floorChunk, `${what} floor`) : undefined;
        const shiftedRun = await runWindow(engine, shifted.sequence, window, middle, 0, `${what} shifted`);
        const carriedRun = await runWindow(engine, carried.sequence, window, middle, 0, `${what} carried`);
        const staleRun = await runWindow(engine, stale, window, middle, 0, `${what} stale`);
        if (scratch !== undefined) scratchChecks.push(compare(reference, await runWindow(engine, scratch, window, middle, 0, `${what} from position 0`), vocab));
        const result = await session.generate(request(cursor, `t${trial}c${index}`));
        // The session stops at its stop tokens; cut the engine's completions the same way.
        const stops = new Set(prompts[index].stopTokens);
        const textOf = (tokens: number[]) => {
          const stop = tokens.findIndex((token) => stops.has(token));
          return session.tokenizer.decode(stop >= 0 ? tokens.slice(0, stop) : tokens, { skipSpecialTokens: true });
        };
        records.push({
          trial,
          edit: edit.what,
          savedFile,
          savedIndex,
          files: order.length,
          movedTokens: once.moved,
          repositoryTokens: layout.tokens.length,
          place: cursor.place,
          cursorFile: cursor.file,
          windowTokens: window.length,
          freshNll: reference.middleNll,
          ...(floorRun !== undefined ? { floor: compare(reference, floorRun, vocab) } : {}),
          shifted: compare(reference, shiftedRun, vocab),
          carried: compare(reference, carriedRun, vocab),
          stale: compare(reference, staleRun, vocab),
          carriedSaves: saves,
          middle: cursor.middle,
          sessionMatchesFresh: result.text === textOf(reference.completion),
          sessionMatchesCarried: result.text === textOf(carriedRun.completion),
          freshText: session.tokenizer.decode(reference.completion),
          shiftedText: session.tokenizer.decode(shiftedRun.completion),
          sessionText: result.text,
        });
      }
      if (scratch !== undefined) await engine.releaseSequence(scratch);
      if (floor !== undefined) await engine.releaseSequence(floor);
      await engine.releaseSequence(stale);
      await engine.releaseSequence(shifted.sequence);
      previous = layout;
      const last = records.slice(-cursors.length);
      console.error(
        `trial ${trial}/${trials} ${edit.what} in ${savedFile} (block ${savedIndex + 1} of ${order.length}, ${once.moved} tokens moved): ` +
          `shifted KL ${last.map((r) => r.shifted.nextKl.toExponential(1)).join(' ')}, exact ${last.map((r) => (r.shifted.exact ? 'y' : 'n')).join('')}; ` +
          `${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
    }

    const cpu = process.cpuUsage();
    printTables(records, (performance.now() - started) / 1000, (cpu.user + cpu.system) / 1e6);
    if (jsonOut) await fs.writeFile(jsonOut, JSON.stringify({ records, problems: problems.found }, null, 1));
  } finally {
    await session.unload();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

// ---- the tables ----

const percent = (value: number) => `${(100 * value).toFixed(0)}%`;
const share = (flags: boolean[]) => `${percent(mean(flags.map((flag) => (flag ? 1 : 0))))} (${flags.filter(Boolean).length}/${flags.length})`;
const signed = (value: number) => (value === 0 ? '0' : `${value > 0 ? '+' : '-'}${small(Math.abs(value))}`);
const small = (value: number) => (value === 0 ? '0' : value < 1e-3 ? value.toExponential(1) : value.toFixed(3));
const tableRow = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;

function row(label: string, comparisons: Comparison[]): string {
  if (comparisons.length === 0) return tableRow([label, 0, '', '', '', '', '', '', '', '', '']);
  return tableRow([
    label,
    comparisons.length,
    small(mean(comparisons.map((c) => c.nextKl))),
    small(Math.max(...comparisons.map((c) => c.nextKl))),
    small(mean(comparisons.map((c) => c.nextMaxAbs))),
    percent(mean(comparisons.map((c) => (c.nextTop1 ? 1 : 0)))),
    small(mean(comparisons.map((c) => c.windowKl))),
    percent(mean(comparisons.map((c) => c.windowTop1))),
    share(comparisons.map((c) => c.exact)),
    mean(comparisons.map((c) => c.commonPrefix)).toFixed(1),
    signed(mean(comparisons.map((c) => c.deltaNll))),
  ]);
}

function printTables(records: CursorRecord[], seconds: number, cpuSeconds: number): void {
  const trialsRun = new Set(records.map((r) => r.trial)).size;
  const movedPerSave = mean([...new Map(records.map((r) => [r.trial, r.movedTokens])).values()]);
  const longSpan = (r: CursorRecord) => r.movedTokens >= r.repositoryTokens / 2;
  const at = (place: CursorPlace) => records.filter((r) => r.place === place);
  const lines = [
    `Model ${path.basename(modelDir)}, CPU backend, ${threads} threads. ${trialsRun} saves in a copy of ${path.relative(root, source) || source}, ` +
      `${records.length} cursors. Repository part ${mean(records.map((r) => r.repositoryTokens)).toFixed(0)} tokens in ${records[0]?.files ?? 0} files, ` +
      `cursor window ${mean(records.map((r) => r.windowTokens)).toFixed(0)} tokens, ${maxTokens} generated tokens (greedy, full attention). ` +
      `One save moves ${movedPerSave.toFixed(0)} tokens on average. Engine prefill passes of ${prefillPasses} tokens (floor: calls of ${floorChunk}). ` +
      `${seconds.toFixed(0)} s (${cpuSeconds.toFixed(0)} s of CPU).`,
    '',
    '| compared with fresh | cursors | next-token KL mean | KL max | max abs Δlogit (mean) | top-1 agree | window KL mean | window top-1 agree | completion identical | common prefix (tokens) | Δ NLL of the true line |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row(`floor: fresh, prefilled in other passes (trials 1-${Math.min(floorTrials, trialsRun)})`, records.flatMap((r) => (r.floor ? [r.floor] : []))),
    row('one save, shifted KV: all cursors', records.map((r) => r.shifted)),
    row('... cursor in the saved file', at('saved').map((r) => r.shifted)),
    row('... cursor in a moved file', at('moved').map((r) => r.shifted)),
    row('... cursor in an unmoved file', at('unmoved').map((r) => r.shifted)),
    row('... saved file early (moved span >= half the repository)', records.filter(longSpan).map((r) => r.shifted)),
    row('... saved file late (moved span < half)', records.filter((r) => !longSpan(r)).map((r) => r.shifted)),
    row("carried (the session's slot): after 1..k saves", records.map((r) => r.carried)),
  ];
  // The carried chain by the number of saves it has been through, in thirds.
  const maxSaves = Math.max(...records.map((r) => r.carriedSaves));
  const step = Math.max(1, Math.ceil(maxSaves / 3));
  for (let from = 1; from <= maxSaves; from += step) {
    const to = Math.min(maxSaves, from + step - 1);
    lines.push(row(`... after ${from}-${to} saves`, records.filter((r) => r.carriedSaves >= from && r.carriedSaves <= to).map((r) => r.carried)));
  }
  lines.push(
    row('scale: stale, the save not seen at all', records.map((r) => r.stale)),
    '',
    `KL in nats. Window: every position of the cursor window. Completion: ${maxTokens} greedy tokens. Δ NLL: change of the mean negative log-likelihood ` +
      `(nats per token) of the true rest of the cursor's line, teacher-forced; fresh's own is ${mean(records.map((r) => r.freshNll)).toFixed(2)}.`,
  );
  lines.push(
    '',
    `Fresh (recomputed from the first changed token) against a prefill from position 0, first trial, ${scratchChecks.length} cursors: ` +
      `next-token KL ${small(mean(scratchChecks.map((c) => c.nextKl)))}, max abs Δlogit ${small(mean(scratchChecks.map((c) => c.nextMaxAbs)))}, ` +
      `completions identical ${share(scratchChecks.map((c) => c.exact))}.`,
    `Session completions (ModelSession.generate, reuseShiftedKv on, its stop rules): identical to fresh ${share(records.map((r) => r.sessionMatchesFresh))}, ` +
      `to the carried mirror ${share(records.map((r) => r.sessionMatchesCarried))}.`,
    problems.found.length === 0
      ? 'Checks: no NaN or infinite logits; every sequence held the tokens expected after each compaction and prefill; the session moved as many tokens as planReuse on the mirror.'
      : `Problems (${problems.found.length}):`,
    ...problems.found.slice(0, 20).map((problem) => `- ${problem}`),
  );
  console.log(lines.join('\n'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
