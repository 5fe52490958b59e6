// End-to-end replay of the product path with the repository owned by the engine host: a copy
// of this repository's sources as the workspace (about --target-tokens tokens of repository
// part), opened in an in-process ModelSession the way the engine host opens it, then a seeded
// script of what a person does: wait for the warm-up, type, switch files, save edits in files
// in the middle and near the start of the prompt (with and without reuse of the moved KV), ask
// a chat question between completions, restart and restore the repository KV from disk.
//
// Every request reports its time to first token split into the host's own work (prompt
// assembly, tokenizing, prefix matching), waiting in the queue (behind a warm-up step), the
// engine's prefill (compaction included) and the first decode step, with the tokens it
// reused, moved and recomputed. Completion requests carry what CompletionService sends (the
// same prompt window around the cursor, `repository: true`); they go to ModelSession directly
// so that each one runs to its end and reports its own timings.
//
//   node replay.js --model DIR [--backend cuda|cpu] [--target-tokens 99000] [--attention tidal|full]
//                  [--out FILE.json] [--persist-dir DIR] [--threads N] [--max-context N]
//                  [--keystrokes 40] [--switches 4] [--max-tokens 16] [--deadline-s S]
//                  [--phases warmup,keys,switch,save,chat,noshift,persist] [--drop-caches 1]
//                  [--addon-dir DIR] [--source-root DIR] [--workspace-dir DIR] [--verbose 1]
//                  [--sparse-first-step 1] [--sparse-prefill 1]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { cutPromptWindow } from '../../src/core/completion/promptWindow';
import { ModelSession } from '../../src/host/modelSession';
import type { GenerateParams, GenerateResult, RepositoryStatus, WorkspaceOpenParams } from '../../src/core/protocol/protocol';
import { completionBudget } from '../../src/vscode/inlineCompletionConfig';
import { DEFAULT_SETTINGS } from '../../src/vscode/settings';
import { loadAddon, type NativeAddon } from '../../src/native/addon';

// ---- options ----

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i];
  if (!key.startsWith('--')) throw new Error(`unexpected argument ${key}`);
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) args.set(key.slice(2), '1');
  else {
    args.set(key.slice(2), value);
    i++;
  }
}
const option = (name: string, fallback: string) => args.get(name) ?? fallback;
const numberOption = (name: string, fallback: number) => {
  const value = Number(option(name, String(fallback)));
  if (!Number.isFinite(value)) throw new Error(`--${name} must be a number`);
  return value;
};

const sourceRoot = path.resolve(option('source-root', process.cwd()));
const modelDir = path.resolve(option('model', path.join(sourceRoot, 'models', 'tidal-code-mini')));
const backend = option('backend', 'cpu') as 'cpu' | 'cuda';
const threads = numberOption('threads', 0);
const maxContext = numberOption('max-context', 0);
const prefillChunk = numberOption('prefill-chunk', 0);
const targetTokens = numberOption('target-tokens', 99000);
const attentionMode = option('attention', 'tidal') as 'tidal' | 'full';
// --sparse-first-step 1: completions run the prompt's last token as a sparse decode step.
// --sparse-prefill 1: a keystroke's recomputed tokens run under the same sparse attention
// (tidal.attention.sparsePrefill; the prefix cache decides which recomputes qualify).
const completionAttention = {
  mode: attentionMode,
  ...(option('sparse-first-step', '0') === '1' ? { sparseFirstStep: true } : {}),
  ...(option('sparse-prefill', '0') === '1' ? { sparsePrefill: true } : {}),
};
const outFile = args.has('out') ? path.resolve(args.get('out')!) : undefined;
const keystrokeCount = numberOption('keystrokes', 40);
const switchCount = numberOption('switches', 4);
const maxTokens = numberOption('max-tokens', 16);
const deadlineS = numberOption('deadline-s', 0);
const dropCaches = option('drop-caches', '0') === '1';
const verbose = option('verbose', '0') === '1';
const phases = new Set(option('phases', 'warmup,keys,switch,save,chat,noshift,persist').split(','));
const seedOption = numberOption('seed', 20261204);
const chatQuestion = option('chat-question', 'What does the engine host do with workspace events?');
const REPO_NAME = 'tidal-code';

const wallStart = performance.now();
const elapsedS = () => (performance.now() - wallStart) / 1000;
const timeLeftS = () => (deadlineS > 0 ? deadlineS - elapsedS() : Infinity);

function log(message: string): void {
  console.error(`[${elapsedS().toFixed(1).padStart(6)} s] ${message}`);
}

// mulberry32: the same scenario on every run.
let seed = seedOption;
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function percentile(values: number[], p: number): number {
  const finite = values.filter((value) => Number.isFinite(value));
  if (finite.length === 0) return NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const fmt = (value: number | undefined, digits = 1) => (value !== undefined && Number.isFinite(value) ? value.toFixed(digits) : '-');
const round = (value: number | undefined, digits = 1) => (value !== undefined && Number.isFinite(value) ? Number(value.toFixed(digits)) : null);

// ---- the addon ----

function findAddon(): NativeAddon {
  if (args.has('addon-dir')) return loadAddon(path.resolve(args.get('addon-dir')!));
  // Bundled: the carried addon sits next to the bundle (native/tidal_native.node); from a
  // checkout: dist/ or native/build/Release.
  const here = typeof __dirname === 'string' ? __dirname : process.cwd();
  if (fs.existsSync(path.join(here, 'native', 'tidal_native.node'))) return loadAddon(here);
  return loadAddon(path.join(sourceRoot, 'dist'));
}

// ---- the workspace ----

interface WorkspaceFile {
  path: string; // workspace-relative
  tokens: number; // estimated: the file's text and its path line
  lines: number;
}

const TEXT_FILE = /\.(ts|mjs|js|md|cpp|h|cu|cuh|py|sh|json)$/;

function listFiles(dir: string, relative = ''): string[] {
  const full = path.join(dir, relative);
  if (!fs.existsSync(full)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(full, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const child = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, child));
    else if (entry.isFile() && TEXT_FILE.test(entry.name)) out.push(child);
  }
  return out;
}

// Files from the checkout, src/ first, then other sources, until their tokens reach the
// target; beyond what the checkout holds, the same folders again under copyN/. A first pass
// takes files of at most a twelfth of the target (so a small target still has a dozen files),
// a second any that fit.
function buildWorkspace(session: ModelSession, workspace: string): WorkspaceFile[] {
  const folders = ['src', 'bench', 'test/unit', 'native/src', 'native/addon', 'kernels', 'scripts'];
  const candidates = folders.flatMap((folder) => listFiles(sourceRoot, folder));
  if (candidates.length === 0) throw new Error(`no source files under ${sourceRoot} (${folders.join(', ')})`);
  const chosen: WorkspaceFile[] = [];
  const taken = new Set<string>();
  const textTokens = new Map<string, number>();
  let room = targetTokens;
  for (let copy = 0; room > 64 && copy < 64; copy++) {
    const before = chosen.length;
    for (const largest of [targetTokens / 12, Infinity]) {
      for (const file of candidates) {
        if (room <= 64) break;
        const target = copy === 0 ? file : `copy${copy + 1}/${file}`;
        if (taken.has(target)) continue;
        const text = fs.readFileSync(path.join(sourceRoot, file), 'utf8');
        if (text.length === 0 || text.length > 256 * 1024 || text.includes('\0')) continue;
        if (!textTokens.has(file)) textTokens.set(file, session.tokenizer.encode(text).length);
        const tokens = textTokens.get(file)! + session.tokenizer.encode(`${target}\n`).length + 1;
        if (tokens > room || tokens > largest) continue;
        taken.add(target);
        room -= tokens;
        fs.mkdirSync(path.dirname(path.join(workspace, target)), { recursive: true });
        fs.writeFileSync(path.join(workspace, target), text);
        chosen.push({ path: target, tokens, lines: text.split('\n').length });
      }
    }
    if (chosen.length === before) break;
  }
  // Modification times decide the layout (least recently modified first): a seeded shuffle,
  // a minute apart, all in the past.
  const order = [...chosen];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const base = Date.now() / 1000 - 7 * 24 * 3600;
  order.forEach((file, index) => {
    const time = base + index * 60;
    fs.utimesSync(path.join(workspace, file.path), time, time);
  });
  return order;
}

// ---- requests ----

interface Row {
  label: string;
  file: string;
  kind: 'completion' | 'chat';
  ttftMs: number;
  queuedMs: number;
  hostMs: number;
  prefillMs: number;
  firstDecodeMs: number;
  decodeMs: number;
  totalMs: number;
  wallFirstTextMs: number;
  wallMs: number;
  promptTokens: number;
  repositoryTokens: number;
  reusedTokens: number;
  shiftedTokens: number;
  recomputedTokens: number;
  generated: number;
  finishReason: string;
}

let requestCounter = 0;

function toRow(label: string, file: string, kind: Row['kind'], result: GenerateResult, wallStartAt: number, firstTextAt: number | undefined): Row {
  const t = result.timings;
  const host = t.hostMs ?? NaN;
  const firstDecode = t.firstDecodeMs ?? NaN;
  const ttft = t.queuedMs + (Number.isFinite(host) ? host : 0) + t.prefillMs + (Number.isFinite(firstDecode) ? firstDecode : 0);
  return {
    label,
    file,
    kind,
    ttftMs: ttft,
    queuedMs: t.queuedMs,
    hostMs: host,
    prefillMs: t.prefillMs,
    firstDecodeMs: firstDecode,
    decodeMs: t.decodeMs,
    totalMs: t.totalMs,
    wallFirstTextMs: firstTextAt === undefined ? NaN : firstTextAt - wallStartAt,
    wallMs: performance.now() - wallStartAt,
    promptTokens: result.promptTokens,
    repositoryTokens: result.repositoryTokens ?? 0,
    reusedTokens: result.reusedTokens,
    shiftedTokens: result.shiftedTokens ?? 0,
    recomputedTokens: result.recomputedTokens,
    generated: result.tokens,
    finishReason: result.finishReason,
  };
}

function describe(row: Row): string {
  return (
    `${row.label} ${row.file}: ttft ${fmt(row.ttftMs)} ms (queued ${fmt(row.queuedMs)}, host ${fmt(row.hostMs)}, prefill ${fmt(row.prefillMs)}, ` +
    `first decode ${fmt(row.firstDecodeMs)}), prompt ${row.promptTokens} (repository ${row.repositoryTokens}), reused ${row.reusedTokens} ` +
    `(moved ${row.shiftedTokens}), recomputed ${row.recomputedTokens}, ${row.generated} tokens in ${fmt(row.totalMs)} ms, ${row.finishReason}`
  );
}

// ---- the run ----

interface Scenario {
  session: ModelSession;
  workspace: string;
  files: WorkspaceFile[];
  openParams: WorkspaceOpenParams;
  windowLimits: { maxPrefixChars: number; maxSuffixChars: number };
}

const rows: Row[] = [];
const figures: Record<string, unknown> = {};
const notes: string[] = [];
const markdown: string[] = [];

// With `prefetchFirst`, the editor's switch to the file is modelled: the extension sends the
// cursor window ahead (engine/prefetch, after a 250 ms settle) and the person starts typing
// after it is computed; the time to first token is then the request's own.
async function complete(s: Scenario, label: string, file: string, text: string, offset: number, prefetchFirst = false): Promise<Row> {
  const window = cutPromptWindow(text, offset, s.windowLimits);
  if (prefetchFirst) {
    const ahead = performance.now();
    await s.session.prefetch({
      requestId: `e2e-prefetch-${requestCounter}`,
      kind: 'completion',
      repository: true,
      prefix: window.prefix,
      suffix: window.suffix,
      filePath: file,
      maxTokens: 1,
      sampling: { temperature: 0 },
      attention: { mode: attentionMode },
    });
    log(`${label}: prefetch of the cursor window took ${fmt(performance.now() - ahead)} ms`);
  }
  const params: GenerateParams = {
    requestId: `e2e-${++requestCounter}`,
    kind: 'completion',
    repository: true,
    prefix: window.prefix,
    suffix: window.suffix,
    filePath: file,
    maxTokens,
    sampling: { temperature: 0 },
    attention: completionAttention,
  };
  const started = performance.now();
  let firstText: number | undefined;
  const result = await s.session.generate(params, () => {
    firstText ??= performance.now();
  });
  const row = toRow(label, file, 'completion', result, started, firstText);
  rows.push(row);
  if (verbose || !label.startsWith('keystroke')) log(describe(row));
  return row;
}

async function chat(s: Scenario, label: string, question: string): Promise<Row> {
  const started = performance.now();
  let firstText: number | undefined;
  const result = await s.session.generate(
    { requestId: `e2e-${++requestCounter}`, kind: 'chat', repository: true, messages: [{ role: 'user', content: question }], maxTokens, sampling: { temperature: 0 }, attention: { mode: attentionMode } },
    () => {
      firstText ??= performance.now();
    },
  );
  const row = toRow(label, '(chat)', 'chat', result, started, firstText);
  rows.push(row);
  log(describe(row));
  return row;
}

function readFile(s: Scenario, file: string): string {
  return fs.readFileSync(path.join(s.workspace, file), 'utf8');
}

// A cursor in the middle of a file: the start of a code line's text near the middle.
function middleCursor(text: string): number {
  const lines = text.split('\n');
  const middle = Math.floor(lines.length / 2);
  for (let distance = 0; distance < lines.length; distance++) {
    for (const index of [middle + distance, middle - distance]) {
      const line = lines[index];
      if (line === undefined || line.trim().length < 12) continue;
      const start = lines.slice(0, index).join('\n').length + (index > 0 ? 1 : 0);
      return start + (line.length - line.trimStart().length);
    }
  }
  return Math.floor(text.length / 2);
}

// Where each file's block starts in the layout, as a fraction of the repository tokens.
function positions(files: WorkspaceFile[]): Map<string, { start: number; after: number }> {
  const total = files.reduce((sum, file) => sum + file.tokens, 0);
  const out = new Map<string, { start: number; after: number }>();
  let at = 0;
  for (const file of files) {
    out.set(file.path, { start: at / total, after: total - at - file.tokens });
    at += file.tokens;
  }
  return out;
}

// The file whose block starts nearest `fraction` of the layout, among those with some lines,
// not in `taken`.
function fileAt(s: Scenario, fraction: number, taken: Set<string>): WorkspaceFile {
  const where = positions(s.files);
  let best: WorkspaceFile | undefined;
  for (const file of s.files) {
    if (taken.has(file.path) || file.lines < 8) continue;
    if (!best || Math.abs(where.get(file.path)!.start - fraction) < Math.abs(where.get(best.path)!.start - fraction)) best = file;
  }
  if (!best) throw new Error(`no file left near ${fraction} of the layout`);
  taken.add(best.path);
  return best;
}

async function waitReady(s: Scenario, what: string): Promise<{ ms: number; status: RepositoryStatus }> {
  const started = performance.now();
  const status = await s.session.whenRepositoryReady();
  const ms = performance.now() - started;
  if (status.state !== 'ready') throw new Error(`${what}: the repository is ${status.state}${status.message ? `: ${status.message}` : ''}`);
  return { ms, status };
}

function statusLine(status: RepositoryStatus): string {
  return `${status.state}, ${status.files} files (${status.droppedFiles} dropped, ${status.skippedFiles} skipped), ${status.warmTokens}/${status.totalTokens} tokens warm` +
    (status.restoredTokens !== undefined ? `, ${status.restoredTokens} restored` : '') + (status.message ? `, ${status.message}` : '');
}

async function openWorkspace(s: Scenario, params: WorkspaceOpenParams, what: string) {
  const started = performance.now();
  let lastProgress = started;
  const progress = s.session.onRepositoryStatus((status) => {
    if (performance.now() - lastProgress < 5000) return;
    lastProgress = performance.now();
    log(`${what}: ${statusLine(status)}${status.etaMs !== undefined ? `, about ${fmt(status.etaMs / 1000, 0)} s left` : ''}`);
  });
  try {
    return await openAndWait(s, params, what, started);
  } finally {
    progress.dispose();
  }
}

async function openAndWait(s: Scenario, params: WorkspaceOpenParams, what: string, started: number) {
  const opened = await s.session.openWorkspace(params);
  const openMs = performance.now() - started;
  log(`${what}: open returned after ${fmt(openMs)} ms: ${statusLine(opened)}`);
  if (opened.state === 'error') throw new Error(`${what}: ${opened.message}`);
  const ready = await waitReady(s, what);
  const readyMs = performance.now() - started;
  log(`${what}: ready after ${fmt(readyMs)} ms: ${statusLine(ready.status)}`);
  return { openMs, readyMs, status: ready.status };
}

// Saves an edit in `file` (a new line in its middle, written to disk), sends the event, asks
// for a completion at the end of the new line right away, then waits for the warm-up to
// catch up.
function cacheCounters(s: Scenario): { shifted: number; recomputed: number } {
  const cache = s.session.stats().prefixCache;
  return { shifted: cache.tokensShifted ?? NaN, recomputed: cache.tokensRecomputed };
}

async function saveEdit(s: Scenario, label: string, file: WorkspaceFile, shifted: boolean) {
  const where = positions(s.files).get(file.path)!;
  const countersBefore = cacheCounters(s);
  const text = readFile(s, file.path);
  const cursor = middleCursor(text);
  const lineStart = text.lastIndexOf('\n', cursor - 1) + 1;
  const indent = text.slice(lineStart, cursor);
  const inserted = `${indent}const savedEdit${requestCounter} = ${requestCounter} * 2; // edited and saved`;
  const edited = `${text.slice(0, lineStart)}${inserted}\n${text.slice(lineStart)}`;
  fs.writeFileSync(path.join(s.workspace, file.path), edited);
  const savedAt = performance.now();
  await s.session.workspaceEvents([{ path: file.path, kind: 'changed' }]);
  const eventMs = performance.now() - savedAt;
  const row = await complete(s, label, file.path, edited, lineStart + inserted.length);
  const ready = await waitReady(s, label);
  const readyAfterSaveMs = performance.now() - savedAt;
  const countersAfter = cacheCounters(s);
  // Everything the save cost until the repository was warm again: the completion and the
  // warm-up steps (which may have done the moving before the completion came).
  const movedUntilReady = countersAfter.shifted - countersBefore.shifted;
  const recomputedUntilReady = countersAfter.recomputed - countersBefore.recomputed;
  // The saved file is now the newest: it moves to the end of the layout.
  s.files = [...s.files.filter((candidate) => candidate.path !== file.path), { ...file, tokens: file.tokens + session$.tokenizer.encode(inserted).length + 1 }];
  log(`${label}: the event took ${fmt(eventMs)} ms; repository ready again ${fmt(readyAfterSaveMs)} ms after the save (${statusLine(ready.status)}); until then ${movedUntilReady} tokens moved, ${recomputedUntilReady} computed`);
  return { row, where, eventMs, readyAfterSaveMs, shifted, movedUntilReady, recomputedUntilReady };
}

let session$: ModelSession;
let workspaceToRemove: string | undefined;

function removeWorkspace(): void {
  if (workspaceToRemove) fs.rmSync(workspaceToRemove, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const addon = findAddon();
  log(`engine ${addon.engineVersion()}, compiled backends ${addon.compiledBackends().join(', ')}; Node ${process.version}`);
  if (backend === 'cuda') {
    const probe = addon.probeCuda();
    log(`CUDA: ${probe.usable ? `${probe.deviceName}, ${probe.memoryTotalGiB.toFixed(0)} GiB` : `not usable: ${probe.message}`}`);
    figures.device = probe.deviceName;
  }
  const engineOptions = { backend, ...(threads > 0 ? { threads } : {}), ...(maxContext > 0 ? { maxContext } : {}), ...(prefillChunk > 0 ? { prefillChunk } : {}) };
  const loadStarted = performance.now();
  const hostLog = (message: string) => log(`host: ${message}`);
  const session = await ModelSession.load(addon, { modelDir, options: engineOptions }, hostLog);
  session$ = session;
  const info = session.info();
  const m = info.model;
  figures.model_load_s = round((performance.now() - loadStarted) / 1000, 2);
  log(`model ${modelDir}: ${m.architecture} ${m.numLayers} layers, hidden ${m.hiddenSize}, ${m.numHeads}/${m.numKvHeads} heads, vocab ${m.vocabSize}, ${m.dtype}, backend ${m.backend}, max context ${m.maxContext}, KV ${m.kvBytesPerToken} bytes/token; loaded in ${figures.model_load_s} s`);

  const workspace = args.has('workspace-dir') ? path.resolve(args.get('workspace-dir')!) : fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-e2e-ws-'));
  if (fs.existsSync(workspace) && fs.readdirSync(workspace).length > 0) throw new Error(`--workspace-dir ${workspace} is not empty`);
  fs.mkdirSync(workspace, { recursive: true });
  workspaceToRemove = workspace;
  const files = buildWorkspace(session, workspace);
  const estimated = files.reduce((sum, file) => sum + file.tokens, 0);
  log(`workspace ${workspace}: ${files.length} files, about ${estimated} tokens`);

  const settings = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context } };
  const budget = completionBudget(settings, 'auto', m.maxContext, REPO_NAME);
  // Room for every file (also after the edits), so no file is dropped on the way.
  const repositoryBudget = estimated + 2048;
  if (m.maxContext > 0 && repositoryBudget + 2048 + 256 + maxTokens > m.maxContext) throw new Error(`--target-tokens ${targetTokens} does not fit the model's context of ${m.maxContext} tokens`);
  const openParams: WorkspaceOpenParams = {
    root: workspace,
    repoName: REPO_NAME,
    include: settings.context.include,
    exclude: settings.context.exclude,
    maxTokens: repositoryBudget,
    reuseShiftedKv: true,
  };
  const s: Scenario = { session, workspace, files, openParams, windowLimits: { maxPrefixChars: budget.config.maxPrefixChars, maxSuffixChars: budget.config.maxSuffixChars } };
  figures.backend = m.backend;
  figures.attention = attentionMode;
  figures.sparse_first_step = completionAttention.sparseFirstStep === true;
  figures.sparse_prefill = completionAttention.sparsePrefill === true;
  figures.model = `${m.architecture} ${m.numLayers} layers, hidden ${m.hiddenSize}`;
  figures.node = process.version;

  const taken = new Set<string>();
  // The file being typed in: the most recently modified one with some lines (the end of the layout).
  const fileA = [...files].reverse().find((file) => file.lines >= 20) ?? files[files.length - 1];
  taken.add(fileA.path);
  const middle = fileAt(s, 0.5, taken);
  const middle2 = fileAt(s, 0.5, taken);
  const early = fileAt(s, 0.05, taken);
  const early2 = fileAt(s, 0.05, taken);
  const switches = [0.2, 0.4, 0.7, 0.9, 0.3, 0.6, 0.8].slice(0, switchCount).map((fraction) => fileAt(s, fraction, taken));

  // a. Cold open: scan, then the warm-up of the whole repository part.
  const cold = await openWorkspace(s, openParams, 'cold open');
  figures.repository_tokens = cold.status.totalTokens;
  figures.repository_files = cold.status.files;
  figures.scan_ms = round(cold.openMs);
  figures.warmup_s = round(cold.readyMs / 1000, 2);
  markdown.push(
    '### Warm-up',
    '',
    '| measure | value |',
    '|---|---|',
    `| repository part | ${cold.status.totalTokens} tokens, ${cold.status.files} files (${cold.status.droppedFiles} dropped, ${cold.status.skippedFiles} skipped) |`,
    `| scan (open returns) | ${fmt(cold.openMs)} ms |`,
    `| cold warm-up, open to ready | ${fmt(cold.readyMs / 1000, 2)} s (${fmt(cold.status.totalTokens / (cold.readyMs / 1000), 0)} tokens/s) |`,
    '',
  );

  writeOutputs();
  // b, c. The first completion after the warm-up, then keystrokes, each request run to its end.
  let textA = readFile(s, fileA.path);
  const cursorA = middleCursor(textA);
  const typed = textA.slice(cursorA, cursorA + keystrokeCount);
  textA = textA.slice(0, cursorA) + textA.slice(cursorA + typed.length);
  let offsetA = cursorA;
  // The editor's active file is prefetched once the repository is ready (what the extension
  // does), so the first completion costs what a keystroke costs.
  const first = await complete(s, 'first completion after warm-up', fileA.path, textA, offsetA, true);
  figures.first_completion_after_warmup_ms = round(first.ttftMs);
  const keys: Row[] = [];
  if (phases.has('keys')) {
    for (const ch of typed) {
      textA = textA.slice(0, offsetA) + ch + textA.slice(offsetA);
      offsetA++;
      keys.push(await complete(s, `keystroke ${keys.length + 1}`, fileA.path, textA, offsetA));
    }
    const stat = (pick: (row: Row) => number) => keys.map(pick);
    const line = (name: string, values: number[], digits = 1) => `| ${name} | ${fmt(percentile(values, 50), digits)} | ${fmt(percentile(values, 95), digits)} | ${fmt(Math.max(...values.filter(Number.isFinite)), digits)} |`;
    figures.keystroke_ttft_p50_ms = round(percentile(stat((r) => r.ttftMs), 50));
    figures.keystroke_ttft_p95_ms = round(percentile(stat((r) => r.ttftMs), 95));
    figures.host_ms_per_keystroke_100k = round(percentile(stat((r) => r.hostMs), 50), 2);
    figures.host_ms_per_keystroke_p95 = round(percentile(stat((r) => r.hostMs), 95), 2);
    figures.keystroke_recomputed_p50 = percentile(stat((r) => r.recomputedTokens), 50);
    figures.keystroke_first_decode_p50_ms = round(percentile(stat((r) => r.firstDecodeMs), 50));
    figures.keystroke_prefill_p50_ms = round(percentile(stat((r) => r.prefillMs), 50));
    figures.decode_ms_per_token_p50 = round(percentile(keys.filter((r) => r.generated > 1).map((r) => r.decodeMs / r.generated), 50), 2);
    markdown.push(
      `### Keystrokes: ${keys.length} characters typed in ${fileA.path} (end of the layout), a request after each, each run to its end`,
      '',
      `First completion after the warm-up: ${fmt(first.ttftMs)} ms to first token (host ${fmt(first.hostMs)}, queued ${fmt(first.queuedMs)}, prefill ${fmt(first.prefillMs)}, first decode ${fmt(first.firstDecodeMs)}), ${first.recomputedTokens} of ${first.promptTokens} prompt tokens recomputed.`,
      '',
      '| per keystroke | p50 | p95 | max |',
      '|---|---|---|---|',
      line('time to first token, ms', stat((r) => r.ttftMs)),
      line('host work (prompt, tokenizing, matching), ms', stat((r) => r.hostMs), 2),
      line('queued, ms', stat((r) => r.queuedMs), 2),
      line('engine prefill, ms', stat((r) => r.prefillMs)),
      line('first decode step, ms', stat((r) => r.firstDecodeMs)),
      line('wall time to first text, ms', stat((r) => r.wallFirstTextMs)),
      line('tokens recomputed', stat((r) => r.recomputedTokens), 0),
      line('prompt tokens', stat((r) => r.promptTokens), 0),
      line('decode per generated token, ms', keys.filter((r) => r.generated > 1).map((r) => r.decodeMs / r.generated), 2),
      '',
    );
  }

  writeOutputs();
  // d. File switches: a request at a cursor in each of a few other files.
  const where = positions(s.files);
  if (phases.has('switch')) {
    const switched: Row[] = [];
    for (const file of switches) {
      const text = readFile(s, file.path);
      switched.push(await complete(s, 'file switch', file.path, text, middleCursor(text)));
    }
    // The same switches with the window prefetched when the editor changed (the product's path).
    const prefetched: Row[] = [];
    for (const file of switches) {
      const text = readFile(s, file.path);
      const cursor = Math.max(0, middleCursor(text) - 200);
      prefetched.push(await complete(s, 'file switch, prefetched', file.path, text, cursor, true));
    }
    figures.file_switch_ttft_p50_ms = round(percentile(prefetched.map((r) => r.ttftMs), 50));
    figures.file_switch_ttft_max_ms = round(Math.max(...prefetched.map((r) => r.ttftMs)));
    figures.file_switch_unprefetched_ttft_p50_ms = round(percentile(switched.map((r) => r.ttftMs), 50));
    markdown.push(
      '### File switches: the first request in another file',
      '',
      '| file (place of its block in the layout) | ttft ms | host | queued | prefill | first decode | recomputed | prompt |',
      '|---|---|---|---|---|---|---|---|',
      ...switched.map((r) => `| ${r.file} (${fmt(where.get(r.file)!.start * 100, 0)}%) | ${fmt(r.ttftMs)} | ${fmt(r.hostMs, 2)} | ${fmt(r.queuedMs)} | ${fmt(r.prefillMs)} | ${fmt(r.firstDecodeMs)} | ${r.recomputedTokens} | ${r.promptTokens} |`),
      '',
      'The same files again at another cursor, with the cursor window prefetched when the editor switched (what the extension does: `engine/prefetch` 250 ms after the switch; the request comes once it is computed):',
      '',
      '| file (place of its block in the layout) | ttft ms | host | queued | prefill | first decode | recomputed | prompt |',
      '|---|---|---|---|---|---|---|---|',
      ...prefetched.map((r) => `| ${r.file} (${fmt(where.get(r.file)!.start * 100, 0)}%) | ${fmt(r.ttftMs)} | ${fmt(r.hostMs, 2)} | ${fmt(r.queuedMs)} | ${fmt(r.prefillMs)} | ${fmt(r.firstDecodeMs)} | ${r.recomputedTokens} | ${r.promptTokens} |`),
      '',
    );
  }

  writeOutputs();
  // e, f. Saved edits in a file in the middle of the layout and in one near its start.
  const saves: Awaited<ReturnType<typeof saveEdit>>[] = [];
  if (phases.has('save')) {
    saves.push(await saveEdit(s, 'save, middle, moved KV reused', middle, true));
    saves.push(await saveEdit(s, 'save, near the start, moved KV reused', early, true));
  }

  writeOutputs();
  // g. A chat question between completions: does the completion's KV survive it?
  if (phases.has('chat')) {
    const before = await complete(s, 'completion before chat', fileA.path, textA, offsetA);
    const forksBefore = s.session.stats().prefixCache.forks ?? 0;
    const asked = await chat(s, 'chat question', chatQuestion);
    const cacheAfterChat = s.session.stats().prefixCache;
    if ((cacheAfterChat.forks ?? 0) > forksBefore) {
      figures.fork_ms = round(cacheAfterChat.lastForkMs ?? NaN);
      log(`the chat forked a second slot at ${asked.reusedTokens} tokens in ${fmt(cacheAfterChat.lastForkMs ?? NaN)} ms (KV ${cacheAfterChat.slots} slots, ${cacheAfterChat.cachedTokens} tokens cached)`);
    } else {
      log(`the chat forked no slot (${cacheAfterChat.slots} slots already)`);
    }
    const after = await complete(s, 'completion after chat', fileA.path, textA, offsetA);
    figures.chat_ttft_ms = round(asked.ttftMs);
    figures.completion_after_chat_ttft_ms = round(after.ttftMs);
    figures.completion_after_chat_recomputed = after.recomputedTokens;
    markdown.push(
      '### A chat question between two completions',
      '',
      '| request | ttft ms | host | queued | prefill | first decode | reused | recomputed | prompt |',
      '|---|---|---|---|---|---|---|---|---|',
      ...[before, asked, after].map((r) => `| ${r.label} | ${fmt(r.ttftMs)} | ${fmt(r.hostMs, 2)} | ${fmt(r.queuedMs)} | ${fmt(r.prefillMs)} | ${fmt(r.firstDecodeMs)} | ${r.reusedTokens} | ${r.recomputedTokens} | ${r.promptTokens} |`),
      '',
    );
  }

  writeOutputs();
  // e, f again without reuse of moved KV: the workspace opened again with reuseShiftedKv off.
  const noshiftNeed = (cold.readyMs / 1000) * 1.5 + 20;
  if (phases.has('noshift') && timeLeftS() < noshiftNeed) {
    phases.delete('noshift');
    notes.push(`saves without moved KV skipped: ${fmt(timeLeftS(), 0)} s left of the deadline, about ${fmt(noshiftNeed, 0)} s needed`);
    log(notes[notes.length - 1]);
  }
  if (phases.has('noshift')) {
    const reopened = await openWorkspace(s, { ...openParams, reuseShiftedKv: false }, 'open again, reuseShiftedKv off');
    figures.reopen_in_memory_ms = round(reopened.readyMs);
    saves.push(await saveEdit(s, 'save, middle, recomputed', middle2, false));
    saves.push(await saveEdit(s, 'save, near the start, recomputed', early2, false));
  }
  if (saves.length > 0) {
    const pick = (label: string) => saves.find((save) => save.row.label === label);
    figures.save_edit_middle_ttft_ms = round(pick('save, middle, moved KV reused')?.row.ttftMs);
    figures.save_edit_early_ttft_ms = round(pick('save, near the start, moved KV reused')?.row.ttftMs);
    figures.save_edit_middle_noshift_ttft_ms = round(pick('save, middle, recomputed')?.row.ttftMs);
    figures.save_edit_early_noshift_ttft_ms = round(pick('save, near the start, recomputed')?.row.ttftMs);
    figures.save_edit_middle_ready_ms = round(pick('save, middle, moved KV reused')?.readyAfterSaveMs);
    figures.save_edit_middle_noshift_ready_ms = round(pick('save, middle, recomputed')?.readyAfterSaveMs);
    figures.save_edit_early_noshift_ready_ms = round(pick('save, near the start, recomputed')?.readyAfterSaveMs);
    figures.save_edit_middle_moved_tokens = pick('save, middle, moved KV reused')?.movedUntilReady ?? null;
    markdown.push(
      '### Saving an edit: a new line written to disk, the event, a completion at the end of that line right away',
      '',
      'The saved file becomes the newest, so its block moves to the end of the layout; the blocks after its old place either move down with their KV (reuseShiftedKv on) or are computed again (off). A completion takes the repository blocks whose KV is there, plus the missing ones only when they are few; the warm-up computes the rest in the background ("ready again").',
      '',
      '| edit (place of the file\'s block) | ttft ms | host | queued | prefill | first decode | repository tokens in the prompt | moved / recomputed by the request | ready again after the save, ms | moved / computed until ready |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...saves.map(({ row: r, where: w, readyAfterSaveMs, movedUntilReady, recomputedUntilReady }) =>
        `| ${r.label}: ${r.file} (${fmt(w.start * 100, 0)}%, ${w.after} tokens after it) | ${fmt(r.ttftMs)} | ${fmt(r.hostMs, 2)} | ${fmt(r.queuedMs)} | ${fmt(r.prefillMs)} | ${fmt(r.firstDecodeMs)} | ${r.repositoryTokens} | ${r.shiftedTokens} / ${r.recomputedTokens} | ${fmt(readyAfterSaveMs)} | ${movedUntilReady} / ${recomputedUntilReady} |`),
      '',
    );
  }

  writeOutputs();
  // h. Persistence: save the repository KV, start again, restore it.
  if (phases.has('persist')) {
    // A model load, saving and reading the KV (the second restore checks its own time).
    const need = ((figures.model_load_s as number) ?? 0) + (cold.readyMs / 1000) + 40;
    if (timeLeftS() < need) {
      notes.push(`persistence skipped: ${fmt(timeLeftS(), 0)} s left of the deadline, about ${fmt(need, 0)} s needed`);
      log(notes[notes.length - 1]);
    } else {
      await persistence(s, addon, engineOptions, hostLog, cold.readyMs);
    }
  } else {
    await session.unload();
  }
}

async function persistence(
  s: Scenario,
  addon: NativeAddon,
  engineOptions: Parameters<typeof ModelSession.load>[1]['options'],
  hostLog: (message: string) => void,
  coldReadyMs: number,
): Promise<void> {
  const given = args.get('persist-dir');
  const persistRoot = given ? path.resolve(given) : fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-e2e-kv-'));
  const persistDir = path.join(persistRoot, `e2e-${process.pid}`);
  fs.mkdirSync(persistDir, { recursive: true });
  const params: WorkspaceOpenParams = { ...s.openParams, reuseShiftedKv: true, persistDir, persistMaxBytes: 64 * 2 ** 30 };
  try {
    // Session A: the same workspace with a store; its KV is in memory, so it is ready at once.
    await openWorkspace(s, params, 'open with a KV store');
    const flushStarted = performance.now();
    const session = s.session as ModelSession & { flushRepository?: () => Promise<{ saved: boolean; bytes: number }> };
    let saved: { saved: boolean; bytes: number } | undefined;
    if (typeof session.flushRepository === 'function') saved = await session.flushRepository();
    else await new Promise((resolve) => setTimeout(resolve, 15000)); // the idle save
    const saveMs = performance.now() - flushStarted;
    log(`saved the repository KV: ${JSON.stringify(saved)} in ${fmt(saveMs)} ms`);
    figures.kv_saved_bytes = saved?.bytes ?? null;
    figures.kv_save_s = round(saveMs / 1000, 2);
    await s.session.unload();

    // A new session (a restart), then the same workspace: the store's entry is restored. First
    // with the file as the save left it (in the page cache), then, if asked, with the page
    // cache dropped after the model load, so the KV comes from the disk.
    const restarts: { what: string; loadMs: number; openMs: number; readyMs: number; status: RepositoryStatus; after: Row }[] = [];
    for (const drop of dropCaches ? [false, true] : [false]) {
      const what = drop ? 'restart, page cache dropped' : 'restart';
      if (drop && timeLeftS() < ((figures.model_load_s as number) ?? 0) + coldReadyMs / 1000 + 40) {
        notes.push(`restore with the page cache dropped skipped: ${fmt(timeLeftS(), 0)} s left of the deadline`);
        log(notes[notes.length - 1]);
        break;
      }
      const loadStarted = performance.now();
      const restarted = await ModelSession.load(addon, { modelDir, options: engineOptions }, hostLog);
      const loadMs = performance.now() - loadStarted;
      s.session = restarted;
      session$ = restarted;
      let label = what;
      if (drop) {
        try {
          execFileSync('sh', ['-c', 'sync && echo 1 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
        } catch (error) {
          label = `restart, page cache not dropped (${(error as Error).message.split('\n')[0]})`;
        }
      }
      log(`${label}: model loaded again in ${fmt(loadMs)} ms`);
      const restored = await openWorkspace(s, params, `open after a ${label}`);
      const file = s.files[s.files.length - 1].path;
      const text = readFile(s, file);
      const after = await complete(s, `first completion after a ${label}`, file, text, middleCursor(text));
      restarts.push({ what: label, loadMs, openMs: restored.openMs, readyMs: restored.readyMs, status: restored.status, after });
      await restarted.unload();
    }
    const hot = restarts[0];
    const cold = restarts.find((restart) => restart.what === 'restart, page cache dropped');
    const headline = cold ?? hot;
    figures.restore_s = round(headline.readyMs / 1000, 2);
    figures.restored_tokens = headline.status.restoredTokens ?? 0;
    figures.restore_over_prefill_100k = round(headline.readyMs / coldReadyMs, 3);
    figures.restore_page_cache_s = round(hot.readyMs / 1000, 2);
    figures.restore_page_cache_over_prefill = round(hot.readyMs / coldReadyMs, 3);
    figures.restore_page_cache_dropped = cold !== undefined;
    figures.first_completion_after_restore_ms = round(hot.after.ttftMs);
    markdown.push(
      '### Restart: the repository KV restored from disk instead of computed',
      '',
      `Saved by flushRepository: ${saved ? `${saved.saved ? 'yes' : 'no'}, ${fmt(saved.bytes / 2 ** 30, 2)} GiB` : 'no flushRepository, waited for the idle save'}, in ${fmt(saveMs / 1000, 2)} s. Cold warm-up (above): ${fmt(coldReadyMs / 1000, 2)} s.`,
      '',
      '| restart | model load s | open returned (scan + restore) ms | open to ready s | tokens restored | ready / cold warm-up | first completion after it, ms (recomputed) |',
      '|---|---|---|---|---|---|---|',
      ...restarts.map((r) => `| ${r.what} | ${fmt(r.loadMs / 1000, 2)} | ${fmt(r.openMs)} | ${fmt(r.readyMs / 1000, 2)} | ${r.status.restoredTokens ?? 0} of ${r.status.totalTokens} | ${fmt(r.readyMs / coldReadyMs, 3)} | ${fmt(r.after.ttftMs)} (${r.after.recomputedTokens} of ${r.after.promptTokens}) |`),
      '',
    );
  } finally {
    fs.rmSync(persistDir, { recursive: true, force: true });
    if (!given) fs.rmSync(persistRoot, { recursive: true, force: true });
  }
}

function report(error?: unknown): void {
  console.log(writeOutputs(error));
  if (outFile) log(`wrote ${outFile} and ${outFile.replace(/\.json$/, '')}.md`);
}

// The tables and the JSON so far (also after each phase, so a run cut short leaves them).
function writeOutputs(error?: unknown): string {
  const keyFigures = [
    'warmup_s',
    'first_completion_after_warmup_ms',
    'keystroke_ttft_p50_ms',
    'keystroke_ttft_p95_ms',
    'host_ms_per_keystroke_100k',
    'file_switch_ttft_p50_ms',
    'save_edit_middle_ttft_ms',
    'chat_ttft_ms',
    'restore_over_prefill_100k',
  ];
  const summary = [
    '### Key figures',
    '',
    '| figure | value |',
    '|---|---|',
    ...keyFigures.map((key) => `| ${key} | ${figures[key] ?? '-'} |`),
    '',
  ];
  const header = [
    `## End-to-end replay: ${figures.model ?? modelDir}, ${figures.backend ?? backend}${figures.device ? ` (${figures.device})` : ''}, attention ${attentionMode}${completionAttention.sparsePrefill ? ' (keystroke recomputes prefilled sparse)' : ''}, repository part ${figures.repository_tokens ?? '?'} tokens`,
    '',
    `Node ${process.version}; completions: prompt window of CompletionService, at most ${maxTokens} generated tokens, greedy. Times to first token are queued + host + prefill + first decode as the engine host reports them.`,
    '',
  ];
  const text = [...header, ...summary, ...markdown, ...(notes.length ? ['Notes:', '', ...notes.map((n) => `- ${n}`), ''] : [])].join('\n');
  if (outFile) {
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    const json = { ...figures, ...(error ? { error: String((error as Error).stack ?? error) } : {}), notes, elapsed_s: round(elapsedS(), 1), requests: rows.map((row) => ({ ...row })) };
    fs.writeFileSync(outFile, `${JSON.stringify(json, (_, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
    fs.writeFileSync(outFile.replace(/\.json$/, '') + '.md', `${text}\n`);
  }
  return text;
}

process.on('SIGTERM', () => {
  notes.push(`stopped by SIGTERM after ${fmt(elapsedS(), 0)} s`);
  report(new Error('SIGTERM'));
  removeWorkspace();
  process.exit(143);
});

main()
  .then(() => {
    report();
    removeWorkspace();
    process.exit(0);
  })
  .catch((error) => {
    console.error(`e2e replay failed: ${(error as Error).stack ?? error}`);
    notes.push(`failed after ${fmt(elapsedS(), 0)} s: ${(error as Error).message}`);
    report(error);
    removeWorkspace();
    process.exit(1);
  });
