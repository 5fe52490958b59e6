// Time to first token for a repository-sized completion prompt: cold (nothing cached), then
// after a one-line edit near the end (the prefix KV cache keeps everything before the edit).
// The repository is real source files (from node_modules, in a stable order) packed up to
// the asked token count; the current file is a real file with the cursor near its end.
//   node bench/ttft/run.mjs [--model DIR] [--tokens N] [--threads N] [--repeats N]
//                           [--stretch-context] [--source DIR]
// --stretch-context raises the model's context limit (config max_position_embeddings) in a
// temporary copy of the model folder, so a small model can time a prompt longer than it was
// trained on: the timings are real, the generated text is not meant to be good.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ModelSession } from '../../src/host/modelSession';
import type { ContextFileParam, GenerateParams, GenerateResult } from '../../src/core/protocol/protocol';
import { loadAddon } from '../../src/native/addon';

interface Args {
  modelDir: string;
  tokens: number;
  threads: number;
  repeats: number;
  stretch: boolean;
  source: string;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  return {
    modelDir: path.resolve(get('--model') ?? 'models/tidal-code-mini'),
    tokens: Number(get('--tokens') ?? 8000),
    threads: Number(get('--threads') ?? 0),
    repeats: Number(get('--repeats') ?? 1),
    stretch: argv.includes('--stretch-context'),
    source: path.resolve(get('--source') ?? 'node_modules'),
  };
}

// A copy of the model folder (weights linked, not copied) whose config allows `positions`.
function stretchedModel(modelDir: string, positions: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-ttft-'));
  for (const name of fs.readdirSync(modelDir)) {
    if (name === 'config.json') continue;
    fs.symlinkSync(path.join(modelDir, name), path.join(dir, name));
  }
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  config.max_position_embeddings = Math.max(config.max_position_embeddings ?? 0, positions);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}

const SOURCE_EXTENSIONS = /\.(ts|js|mjs|cjs)$/;

function* sourceFiles(root: string): Generator<string> {
  const entries = fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(full);
    else if (entry.isFile() && SOURCE_EXTENSIONS.test(entry.name) && !entry.name.endsWith('.min.js')) yield full;
  }
}

interface Workload {
  repositoryContext: ContextFileParam[];
  filePath: string;
  prefix: string;
  suffix: string;
}

// Packs source files until the prompt reaches `target` tokens; the last file read becomes the
// current file, cut 5 lines before its end.
function buildWorkload(session: ModelSession, source: string, target: number): Workload {
  const repositoryContext: ContextFileParam[] = [];
  let tokens = 0;
  let current: { path: string; content: string } | undefined;
  for (const file of sourceFiles(source)) {
    const stat = fs.statSync(file);
    if (stat.size < 200 || stat.size > 48 * 1024) continue;
    const content = fs.readFileSync(file, 'utf8');
    if (content.includes('\0')) continue;
    const relative = path.relative(source, file);
    if (current === undefined && content.split('\n').length >= 40 && content.length < 8 * 1024) {
      current = { path: relative, content };
      tokens += session.tokenizer.encode(content).length + 16;
      continue;
    }
    const count = session.tokenizer.encode(content).length + 8;
    if (tokens + count > target) break;
    repositoryContext.push({ path: relative, content });
    tokens += count;
  }
  if (current === undefined) throw new Error(`No source file of 40+ lines under ${source}.`);
  const lines = current.content.split('\n');
  const cut = lines.length - 5;
  return {
    repositoryContext,
    filePath: current.path,
    prefix: lines.slice(0, cut).join('\n') + '\n',
    suffix: lines.slice(cut).join('\n'),
  };
}

// A one-line edit near the end of the context: a changed line 3 lines above the cursor.
function editNearEnd(workload: Workload): Workload {
  const lines = workload.prefix.split('\n');
  const at = lines.length - 4;
  lines[at] = `${lines[at]} // edited`;
  return { ...workload, prefix: lines.join('\n') };
}

async function timeFirstToken(session: ModelSession, workload: Workload, id: string): Promise<{ ms: number; result: GenerateResult }> {
  const params: GenerateParams = { requestId: id, kind: 'completion', repoName: 'bench', ...workload, maxTokens: 1, sampling: { temperature: 0 } };
  const started = performance.now();
  let first: number | undefined;
  const result = await session.generate(params, () => (first ??= performance.now()));
  return { ms: (first ?? performance.now()) - started, result };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const addon = loadAddon(path.dirname(__filename));
  const modelDir = args.stretch ? stretchedModel(args.modelDir, args.tokens + 1024) : args.modelDir;
  const options = { backend: 'cpu' as const, threads: args.threads };
  const load = () => ModelSession.load(addon, { modelDir, options });

  let session = await load();
  const info = session.info().model;
  const budget = Math.min(args.tokens, info.maxContext - 64);
  const workload = buildWorkload(session, args.source, budget);
  const size = (w: Workload) => {
    try {
      return session.buildPrompt({ requestId: 'size', kind: 'completion', repoName: 'bench', ...w }).tokens.length;
    } catch {
      return Infinity; // over the model's context
    }
  };
  while (workload.repositoryContext.length > 0 && size(workload) > budget) workload.repositoryContext.pop();
  const edited = editNearEnd(workload);
  const promptTokens = size(workload);
  console.error(`model ${path.basename(args.modelDir)} (${info.architecture}, ${info.numLayers} layers, ${info.backend}, ${info.threads} threads), ` +
    `prompt ${promptTokens} tokens (${workload.repositoryContext.length} repository files + ${workload.filePath})`);

  const cold: number[] = [];
  const warm: number[] = [];
  let coldResult: GenerateResult | undefined;
  let warmResult: GenerateResult | undefined;
  for (let repeat = 0; repeat < args.repeats; repeat++) {
    if (repeat > 0) {
      await session.unload();
      session = await load(); // nothing cached
    }
    const first = await timeFirstToken(session, workload, `cold-${repeat}`);
    cold.push(first.ms);
    coldResult = first.result;
    const second = await timeFirstToken(session, edited, `warm-${repeat}`);
    warm.push(second.ms);
    warmResult = second.result;
    const split = (r: GenerateResult) => `prefill ${r.timings.prefillMs.toFixed(1)} ms, first decode ${r.timings.decodeMs.toFixed(1)} ms`;
    console.error(`repeat ${repeat + 1}: cold ${first.ms.toFixed(0)} ms (${first.result.recomputedTokens} recomputed; ${split(first.result)}), ` +
      `warm ${second.ms.toFixed(1)} ms (${second.result.recomputedTokens} recomputed, ${second.result.reusedTokens} reused; ${split(second.result)})`);
  }
  await session.unload();
  if (args.stretch) fs.rmSync(modelDir, { recursive: true, force: true });
  const coldMs = median(cold);
  const warmMs = median(warm);
  console.log('| model | backend, threads | prompt tokens | cold TTFT (ms) | cold recomputed | warm TTFT (ms) | warm recomputed | warm/cold |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  console.log(
    `| ${path.basename(args.modelDir)}${args.stretch ? ' (context stretched)' : ''} | ${info.backend}, ${info.threads} | ${coldResult?.promptTokens} | ` +
      `${coldMs.toFixed(0)} | ${coldResult?.recomputedTokens} | ${warmMs.toFixed(1)} | ${warmResult?.recomputedTokens} | ${((100 * warmMs) / coldMs).toFixed(2)}% |`,
  );
}

main().catch((error: unknown) => {
  console.error(`ttft: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});
