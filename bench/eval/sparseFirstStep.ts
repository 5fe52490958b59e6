// How much running the prompt's last token as a sparse decode step (attention.sparseFirstStep)
// changes completions: the same prompts are completed greedily with full attention, with
// TidalDecode (the whole prompt prefilled densely) and with TidalDecode plus the sparse first
// step, and the texts are compared. The prompts are completions as the editor makes them: a
// repository part (this repository's source files, up to --context-tokens) and then the start
// of a file cut at a random line, mid-line.
//   node bench/eval/sparseFirstStep.mjs [--model models/tidal-code-mini] [--samples 40]
//     [--context-tokens 12000] [--prefix-tokens 512] [--budget 256] [--tokens 16] [--backend cpu]
//     [--threads 0]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { TextTokenizer } from '../../src/core/tokenizer/tokenizer';
import { loadAddon, type AttentionOptions, type NativeEngine } from '../../src/native/addon';
import { seededRandom } from '../context/common';

const args = new Map<string, string>();
for (let i = 2; i + 1 < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const option = (name: string, fallback: string) => args.get(name) ?? fallback;
const modelDir = option('model', 'models/tidal-code-mini');
const samples = Number(option('samples', '40'));
const contextTokens = Number(option('context-tokens', '12000'));
const budget = Number(option('budget', '256'));
const newTokens = Number(option('tokens', '16'));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...sourceFiles(file));
    else if (/\.(ts|cpp|h|cu)$/.test(name)) out.push(file);
  }
  return out;
}

async function complete(engine: NativeEngine, base: number, baseLength: number, tokens: number[], attention: AttentionOptions): Promise<number[]> {
  const sequence = await engine.forkSequence(base, baseLength);
  try {
    const result = await engine.generate(sequence, tokens, { maxTokens: newTokens, stopAtEos: false, sampling: { temperature: 0 }, attention });
    return Array.from(result.tokens);
  } finally {
    await engine.releaseSequence(sequence);
  }
}

async function main(): Promise<void> {
  const addon = loadAddon(path.resolve('out')); // the build tree's addon (native/build/Release)
  const tokenizer = TextTokenizer.fromDirectory(modelDir);
  const engine = await addon.loadModel(modelDir, { backend: option('backend', 'cpu') as 'cpu' | 'cuda', threads: Number(option('threads', '0')) });
  const files = [...sourceFiles('src'), ...sourceFiles('native/src')];
  const next = seededRandom(7);

  // The repository part: whole files, in a fixed shuffled order, up to contextTokens.
  const order = files.map((file) => ({ file, key: next() })).sort((a, b) => a.key - b.key).map(({ file }) => file);
  const repository: number[] = [];
  for (const file of order) {
    const tokens = tokenizer.encode(`<file ${file}>\n${readFileSync(file, 'utf8')}\n</file>\n`);
    if (repository.length + tokens.length > contextTokens) continue;
    repository.push(...tokens);
  }
  const base = await engine.createSequence();
  const started = performance.now();
  await engine.prefill(base, repository);
  console.log(`${engine.modelInfo.backend}, ${modelDir}: repository part ${repository.length} tokens, prefilled in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const tidal: AttentionOptions = { mode: 'tidal', tokenBudget: budget };
  const counts = { firstDenseVsFull: 0, firstSparseVsFull: 0, firstSparseVsDense: 0, allDenseVsFull: 0, allSparseVsFull: 0, allSparseVsDense: 0, tokensSparseVsDense: 0 };
  for (let i = 0; i < samples; i++) {
    const file = files[Math.floor(next() * files.length)];
    const lines = readFileSync(file, 'utf8').split('\n');
    const line = Math.floor(next() * lines.length);
    const cut = Math.floor(lines[line].length * (0.3 + 0.4 * next()));
    const prefix = `<file ${file}>\n${[...lines.slice(0, line), lines[line].slice(0, cut)].join('\n')}`;
    const tokens = tokenizer.encode(prefix).slice(-Number(option('prefix-tokens', '512')));
    const full = await complete(engine, base, repository.length, tokens, { mode: 'full' });
    const dense = await complete(engine, base, repository.length, tokens, tidal);
    const sparse = await complete(engine, base, repository.length, tokens, { ...tidal, sparseFirstStep: true });
    counts.firstDenseVsFull += Number(dense[0] === full[0]);
    counts.firstSparseVsFull += Number(sparse[0] === full[0]);
    counts.firstSparseVsDense += Number(sparse[0] === dense[0]);
    counts.allDenseVsFull += Number(dense.join() === full.join());
    counts.allSparseVsFull += Number(sparse.join() === full.join());
    counts.allSparseVsDense += Number(sparse.join() === dense.join());
    let same = 0;
    while (same < sparse.length && sparse[same] === dense[same]) same++;
    counts.tokensSparseVsDense += same;
  }
  const share = (n: number) => `${n} of ${samples} (${((100 * n) / samples).toFixed(0)}%)`;
  console.log(`\n${samples} completions of ${newTokens} tokens, greedy; tidal budget ${budget}, context ${repository.length}+ tokens\n`);
  console.log('| compared | same first token | same whole completion |');
  console.log('|---|---|---|');
  console.log(`| tidal (dense prefill) vs full | ${share(counts.firstDenseVsFull)} | ${share(counts.allDenseVsFull)} |`);
  console.log(`| tidal + sparse first step vs full | ${share(counts.firstSparseVsFull)} | ${share(counts.allSparseVsFull)} |`);
  console.log(`| tidal + sparse first step vs tidal | ${share(counts.firstSparseVsDense)} | ${share(counts.allSparseVsDense)} |`);
  console.log(`\nTokens until the first difference (sparse first step vs tidal), mean: ${(counts.tokensSparseVsDense / samples).toFixed(1)} of ${newTokens}`);
  await engine.unload();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
