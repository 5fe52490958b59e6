// What the suffix window costs or buys in completion quality. With prefix-suffix-middle FIM (the
// embedded model's format) the text after the cursor follows the prefix, so every keystroke
// recomputes the suffix's tokens; MAX_SUFFIX_CHARS (src/extension/inlineCompletionConfig.ts)
// bounds it. This bench completes the same cursors with suffix windows of several sizes and
// scores each against the true rest of the line.
//
// One ModelSession owns a copy of a real code folder (repository completions, a budget that fits
// the model's context). Cursors sit 30-70% along lines of code in files of the same folder that
// are NOT in the repository part, so the true line is nowhere in the prompt. The rest of the
// cursor's line is removed from the document (what a person is about to type); the window is cut
// by cutPromptWindow with the prefix completionBudget gives the model and each suffix limit in
// turn. For each limit, driven on the session's own engine from one shared prefill of the
// repository part: a greedy completion (temperature 0, full attention), cut at the first stop
// token and at the first newline (the single-line stop rule), and the mean negative
// log-likelihood of the true rest of the line, teacher-forced.
//
// Build and run (needs the native addon: npm run build):
//   npx esbuild bench/context/suffixWindow.ts --bundle --platform=node --target=node20 \
//     --outfile=out/bench/context/suffixWindow.js && node out/bench/context/suffixWindow.js \
//     [--cursors N] [--repo-tokens N] [--limits 768,384,256,128,0] [--max-tokens N] [--threads N]
//     [--source DIR] [--model DIR] [--seed N] [--json FILE]
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { applyStopRules } from '../../src/core/completion/stopRules';
import { cutPromptWindow } from '../../src/core/completion/promptWindow';
import { ModelSession } from '../../src/host/modelSession';
import { commonPrefixLength } from '../../src/host/prefixCache';
import type { GenerateParams } from '../../src/core/protocol/protocol';
import { completionBudget, MAX_SUFFIX_CHARS } from '../../src/vscode/inlineCompletionConfig';
import type { TidalSettings } from '../../src/vscode/settings';
import { loadAddon, type NativeAddon, type NativeEngine } from '../../src/native/addon';
import { logProbability, mean, pathOfBlock, seededRandom, shuffle as shuffleWith } from './common';

const root = process.cwd(); // run from the repository root
const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const number = (name: string, fallback: number) => Number(args.get(name) ?? fallback);
const cursorCount = number('cursors', 80);
const repoTokens = number('repo-tokens', 6000);
const threads = number('threads', 2);
const maxTokens = number('max-tokens', 24);
const limits = (args.get('limits') ?? `${MAX_SUFFIX_CHARS},384,256,128,0`).split(',').map(Number);
const source = path.resolve(args.get('source') ?? path.join(root, 'node_modules', '@azure', 'msal-node', 'src'));
const modelDir = path.resolve(args.get('model') ?? path.join(root, 'models', 'tidal-code-mini'));
const jsonOut = args.get('json');
const bootstrapRounds = 2000;

// mulberry32: the same cursors on every run.
const random = seededRandom(number('seed', 20261204));
const shuffle = <T>(items: T[]): T[] => shuffleWith(items, random);

// ---- the workspace ----

const FIRST_MTIME = 1_760_000_000;
const SOURCE_FILE = /\.(ts|js|mjs|cjs)$/;
const NOT_SOURCE = /(\.d\.ts|\.min\.js|\.map)$/;

async function sourceFiles(dir: string, under = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await fs.readdir(path.join(dir, under), { withFileTypes: true })) {
    const relative = under ? `${under}/${entry.name}` : entry.name;
    if (entry.isDirectory()) found.push(...(await sourceFiles(dir, relative)));
    else if (SOURCE_FILE.test(entry.name) && !NOT_SOURCE.test(entry.name)) found.push(relative);
  }
  return found.sort();
}

/** A copy of the source folder, modification times in a seeded order. */
async function copyWorkspace(names: string[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tidal-suffix-window-'));
  for (const [index, name] of shuffle([...names]).entries()) {
    const file = path.join(dir, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.copyFile(path.join(source, name), file);
    await fs.utimes(file, FIRST_MTIME + index * 60, FIRST_MTIME + index * 60);
  }
  return dir;
}


// ---- cursors ----

interface Cursor {
  file: string;
  line: number;
  /** The document with the rest of the cursor's line removed, and the cursor's offset in it. */
  document: string;
  offset: number;
  /** The rest of the cursor's line: what a person is about to type. */
  truth: string;
}

function cursorsIn(file: string, content: string, count: number): Cursor[] {
  const lines = content.split('\n');
  const offsets: number[] = [];
  let offset = 0;
  for (const line of lines) {
    offsets.push(offset);
    offset += line.length + 1;
  }
  const candidates = lines
    .map((line, index) => index)
    .filter((index) => lines[index].trim().length >= 16 && !/^\s*(\/\/|\/?\*)/.test(lines[index]));
  const cursors: Cursor[] = [];
  for (const index of shuffle(candidates).slice(0, count)) {
    const line = lines[index].replace(/\r$/, '');
    const indent = line.length - line.trimStart().length;
    const at = offsets[index] + indent + Math.floor((line.length - indent) * (0.3 + 0.4 * random()));
    const lineEnd = offsets[index] + line.length;
    const truth = content.slice(at, lineEnd);
    if (truth.trim().length === 0) continue;
    cursors.push({ file, line: index + 1, document: content.slice(0, at) + content.slice(lineEnd), offset: at, truth });
  }
  return cursors;
}

// ---- scoring ----

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current.push(Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = current;
  }
  return previous[b.length];
}

const editSimilarity = (a: string, b: string) => (a.length === 0 && b.length === 0 ? 1 : 1 - levenshtein(a, b) / Math.max(a.length, b.length));
function commonChars(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

interface Score {
  limit: number;
  suffixChars: number;
  /** Prompt tokens from the suffix sentinel on: what a keystroke recomputes after the prefix. */
  afterCursorTokens: number;
  windowTokens: number;
  text: string;
  exact: boolean;
  prefixChars: number;
  editSimilarity: number;
  nll: number;
}

interface CursorRecord {
  file: string;
  line: number;
  truth: string;
  scores: Score[];
}

// ---- the run ----

async function main(): Promise<void> {
  const started = performance.now();
  // A private copy of the addon beside the bundle: a rebuild during the run cannot replace it.
  const built = ['native/build/Release/tidal_native.node', 'dist/native/tidal_native.node'].find((candidate) => existsSync(candidate));
  if (!built) throw new Error('the native addon is missing; run `npm run build` first.');
  const addonDir = path.join(path.dirname(__filename), 'suffix-window-addon');
  mkdirSync(path.join(addonDir, 'native'), { recursive: true });
  copyFileSync(built, path.join(addonDir, 'native', 'tidal_native.node.tmp'));
  renameSync(path.join(addonDir, 'native', 'tidal_native.node.tmp'), path.join(addonDir, 'native', 'tidal_native.node'));
  const addon = loadAddon(addonDir);
  let engine: NativeEngine | undefined;
  const capturing: NativeAddon = { ...addon, CancelToken: addon.CancelToken, loadModel: async (dir, options) => (engine = await addon.loadModel(dir, options)) };
  const session = await ModelSession.load(capturing, { modelDir, options: { backend: 'cpu', threads } });
  if (!engine) throw new Error('the session did not load its engine through the bench');
  const vocab = engine.modelInfo.vocabSize;
  const maxContext = engine.modelInfo.maxContext;
  const budget = completionBudget({ inlineCompletions: { enabled: true, debounceMs: 0 }, attention: { mode: 'full', tokenBudget: 0, selectionLayers: [] }, context: { maxTokens: 0 } } as unknown as TidalSettings, 'single-line', maxContext);
  const maxPrefixChars = budget.config.maxPrefixChars;
  const suffixToken = session.tokenizer.tokenId(session.fimFormat!.suffix) ?? -1;

  const names = await sourceFiles(source);
  const dir = await copyWorkspace(names);
  try {
    const status = await session.openWorkspace({ root: dir, include: ['**/*'], exclude: [], maxTokens: repoTokens, repoName: path.basename(path.dirname(source)), reuseShiftedKv: true });
    await session.whenRepositoryReady();
    const request = (file: string, prefix: string, suffix: string, id: string): GenerateParams => ({
      requestId: id,
      kind: 'completion',
      repository: true,
      filePath: file,
      prefix,
      suffix,
      maxTokens,
      sampling: { temperature: 0 },
      attention: { mode: 'full' },
    });
    const probe = session.buildPrompt(request(names[0], 'x', '', 'probe'));
    const repository = Int32Array.from(probe.tokens.slice(0, probe.repositoryTokens));
    const inContext = new Set(probe.blocks.map(pathOfBlock));
    console.error(
      `workspace: ${names.length} files, ${status.files} in the repository part (${repository.length} tokens); model max context ${maxContext}; ` +
        `prefix window ${maxPrefixChars} chars; suffix limits ${limits.join(', ')}`,
    );

    // Cursors in files outside the repository part: the true line is nowhere in the prompt.
    const outside = shuffle(names.filter((name) => !inContext.has(name)));
    const contents = new Map<string, string>();
    for (const name of outside) contents.set(name, await fs.readFile(path.join(source, name), 'utf8'));
    const perFile = Math.max(1, Math.ceil(cursorCount / Math.max(1, outside.length)) + 1);
    const cursors: Cursor[] = [];
    for (let round = 0; cursors.length < cursorCount && round < 4; round++) {
      for (const name of outside) {
        if (cursors.length >= cursorCount) break;
        const have = new Set(cursors.filter((c) => c.file === name).map((c) => c.line));
        const more = cursorsIn(name, contents.get(name)!, perFile).filter((c) => !have.has(c.line));
        cursors.push(...more.slice(0, Math.min(more.length, 1 + round, cursorCount - cursors.length)));
      }
    }

    // The repository part, prefilled once; every window forks it.
    const repositorySequence = await engine.createSequence();
    await engine.prefill(repositorySequence, repository);
    const stops = new Set(probe.stopTokens);

    const records: CursorRecord[] = [];
    for (const [index, cursor] of cursors.entries()) {
      const truthTokens = session.tokenizer.encode(cursor.truth);
      const windows = limits.map((limit) => {
        const cut = cutPromptWindow(cursor.document, cursor.offset, { maxPrefixChars, maxSuffixChars: limit });
        const built = session.buildPrompt(request(cursor.file, cut.prefix, cut.suffix, `c${index}s${limit}`));
        if (commonPrefixLength(built.tokens, repository) !== repository.length) throw new Error(`cursor ${index}: the prompt does not start with the repository part`);
        return { limit, cut, tokens: Int32Array.from(built.tokens.slice(repository.length)) };
      });
      // The windows share the prefix: prefill it once, then each suffix from a fork.
      let shared = windows[0].tokens.length - 1;
      for (const window of windows) shared = Math.min(shared, commonPrefixLength(window.tokens, windows[0].tokens), window.tokens.length - 1);
      const base = await engine.forkSequence(repositorySequence);
      await engine.prefill(base, windows[0].tokens.slice(0, shared));
      const scores: Score[] = [];
      for (const window of windows) {
        const sequence = await engine.forkSequence(base);
        try {
          const last = await engine.prefill(sequence, window.tokens.slice(shared));
          const row = last.subarray(last.length - vocab);
          const held = await engine.sequenceLength(sequence);
          const result = await engine.generate(sequence, [], { maxTokens, stopAtEos: false, sampling: { temperature: 0 }, attention: { mode: 'full' } });
          const tokens = Array.from(result.tokens);
          const stop = tokens.findIndex((token) => stops.has(token));
          const raw = session.tokenizer.decode(stop >= 0 ? tokens.slice(0, stop) : tokens, { skipSpecialTokens: true });
          const linePrefix = cursor.document.slice(cursor.document.lastIndexOf('\n', cursor.offset - 1) + 1, cursor.offset);
          const text = applyStopRules(raw, { mode: 'single-line', linePrefix, suffix: window.cut.suffix, maxLines: 1 }, true).text;
          let nll = -logProbability(row, truthTokens[0]);
          if (truthTokens.length > 1) {
            await engine.trimSequence(sequence, held);
            const rows = await engine.prefill(sequence, truthTokens.slice(0, -1), { allLogits: true });
            for (let i = 1; i < truthTokens.length; i++) nll -= logProbability(rows.subarray((i - 1) * vocab, i * vocab), truthTokens[i]);
          }
          const suffixAt = window.tokens.lastIndexOf(suffixToken);
          const truth = cursor.truth.trimEnd();
          const got = text.trimEnd();
          scores.push({
            limit: window.limit,
            suffixChars: window.cut.suffix.length,
            afterCursorTokens: suffixAt >= 0 ? window.tokens.length - suffixAt : 0,
            windowTokens: window.tokens.length,
            text,
            exact: got === truth,
            prefixChars: commonChars(got, truth),
            editSimilarity: editSimilarity(got, truth),
            nll: nll / truthTokens.length,
          });
        } finally {
          await engine.releaseSequence(sequence);
        }
      }
      await engine.releaseSequence(base);
      records.push({ file: cursor.file, line: cursor.line, truth: cursor.truth, scores });
      console.error(
        `cursor ${index + 1}/${cursors.length} ${cursor.file}:${cursor.line} exact ${scores.map((s) => (s.exact ? 'y' : 'n')).join('')} ` +
          `nll ${scores.map((s) => s.nll.toFixed(2)).join(' ')}; ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
    }
    await engine.releaseSequence(repositorySequence);

    // A check: the session's own completion of the first cursors at the product's limit matches the direct run.
    let sessionChecked = 0;
    let sessionSame = 0;
    for (const [index, cursor] of cursors.slice(0, 3).entries()) {
      const cut = cutPromptWindow(cursor.document, cursor.offset, { maxPrefixChars, maxSuffixChars: limits[0] });
      const result = await session.generate(request(cursor.file, cut.prefix, cut.suffix, `check${index}`));
      const first = result.text.split('\n')[0];
      sessionChecked++;
      if (first === records[index].scores[0].text) sessionSame++;
    }

    const cpu = process.cpuUsage();
    printTable(records, status.files, repository.length, maxPrefixChars, (performance.now() - started) / 1000, (cpu.user + cpu.system) / 1e6, sessionSame, sessionChecked);
    if (jsonOut) await fs.writeFile(jsonOut, JSON.stringify({ records }, null, 1));
  } finally {
    await session.unload();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

// ---- the table ----


/** A 95% paired bootstrap interval of mean(metric(other) - metric(reference)) over cursors. */
function bootstrap(differences: number[]): [number, number] {
  const means: number[] = [];
  for (let round = 0; round < bootstrapRounds; round++) {
    let sum = 0;
    for (let i = 0; i < differences.length; i++) sum += differences[Math.floor(random() * differences.length)];
    means.push(sum / differences.length);
  }
  means.sort((a, b) => a - b);
  return [means[Math.floor(0.025 * bootstrapRounds)], means[Math.floor(0.975 * bootstrapRounds)]];
}

function printTable(records: CursorRecord[], files: number, repositoryTokens: number, maxPrefixChars: number, seconds: number, cpuSeconds: number, sessionSame: number, sessionChecked: number): void {
  const signed = (value: number, digits: number) => `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
  const interval = (values: [number, number], digits: number, scale = 1) => `[${signed(values[0] * scale, digits)}, ${signed(values[1] * scale, digits)}]`;
  const lines = [
    `Model ${path.basename(modelDir)}, CPU backend, ${threads} threads. ${records.length} cursors in files of ${path.relative(root, source) || source} ` +
      `outside the repository part (${repositoryTokens} tokens in ${files} files of the same folder). Prefix window ${maxPrefixChars} characters ` +
      `(completionBudget), ${maxTokens} generated tokens (greedy, full attention), cut at the first newline. ${seconds.toFixed(0)} s (${cpuSeconds.toFixed(0)} s of CPU).`,
    '',
    '| suffix limit (chars) | suffix chars (mean) | tokens after the cursor (mean) | exact line | Δ exact vs ' +
      `${records[0]?.scores[0].limit ?? ''} [95% CI] | common prefix (chars) | edit similarity | Δ edit sim. [95% CI] | NLL of the true line (nats/token) | Δ NLL [95% CI] |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const count = records[0]?.scores.length ?? 0;
  for (let k = 0; k < count; k++) {
    const at = records.map((r) => r.scores[k]);
    const reference = records.map((r) => r.scores[0]);
    const exactCount = at.filter((s) => s.exact).length;
    const diff = (metric: (s: Score) => number) => at.map((s, i) => metric(s) - metric(reference[i]));
    const exactDiff = diff((s) => (s.exact ? 1 : 0));
    const editDiff = diff((s) => s.editSimilarity);
    const nllDiff = diff((s) => s.nll);
    lines.push(
      `| ${at[0].limit} | ${mean(at.map((s) => s.suffixChars)).toFixed(0)} | ${mean(at.map((s) => s.afterCursorTokens)).toFixed(0)} | ` +
        `${((100 * exactCount) / at.length).toFixed(0)}% (${exactCount}/${at.length}) | ` +
        (k === 0 ? '- | ' : `${signed(100 * mean(exactDiff), 1)} pt ${interval(bootstrap(exactDiff), 1, 100)} | `) +
        `${mean(at.map((s) => s.prefixChars)).toFixed(1)} | ${mean(at.map((s) => s.editSimilarity)).toFixed(3)} | ` +
        (k === 0 ? '- | ' : `${signed(mean(editDiff), 3)} ${interval(bootstrap(editDiff), 3)} | `) +
        `${mean(at.map((s) => s.nll)).toFixed(3)} | ` +
        (k === 0 ? '- |' : `${signed(mean(nllDiff), 3)} ${interval(bootstrap(nllDiff), 3)} |`),
    );
  }
  const meanTruth = mean(records.map((r) => r.truth.trimEnd().length));
  lines.push(
    '',
    `Tokens after the cursor: from the suffix sentinel to the end of the prompt (sentinels included), what a keystroke recomputes after the prefix. ` +
      `The true rest of the line is ${meanTruth.toFixed(1)} characters on average. Δ: paired differences against the first limit, ` +
      `95% intervals from ${bootstrapRounds} bootstrap resamples of the cursors. Session check: ModelSession.generate gave the same first line ` +
      `as the direct run for ${sessionSame}/${sessionChecked} cursors.`,
  );
  console.log(lines.join('\n'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
