// One `tidal-eval` run: tokenize the corpus with the model's own tokenizer, load the engine
// through the native addon, score every passkey sample and perplexity window this shard owns,
// and hand back the records (also appended to --save as each sample finishes, so a run stopped
// early keeps them).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { TextTokenizer } from '../core/tokenizer/tokenizer';
import { tokenizerForModel } from '../core/tokenizer/modelTokenizer';
import type { ModelReader, NativeAddon, NativeEngine } from '../native/addon';
import { withWebGpuDevice } from '../webgpu';
import type { RunArgs } from './evalArgs';
import { usageError } from './evalArgs';
import { sampleRandom, uniformBelow } from './mersenneTwister';
import { buildCrossFilePrompt, crossFileDistractors, randomCrossFileCase } from './crossfile';
import { buildCodeStream, buildPasskeyPrompt, collectCodeFiles, EvalInputError, randomDistractors, randomNeedle } from './passkey';
import { formatFixed } from './printfNumber';
import { EvalResults, serializeResults } from './report';
import { keyOf, makeEvalConfigs, scoreCompletionText, scorePasskey, scorePerplexity } from './scoring';

// A cross-file answer is judged as text (scoreCompletionText); the model may spell the name in
// a few more tokens than the tokenizer's own encoding of it.
const CROSSFILE_SLACK_TOKENS = 4;

const seconds = (since: number) => formatFixed((performance.now() - since) / 1000, 1);

// The tokenizer of --model, or of --tokenizer (a tokenizer.json or the folder holding one); a
// GGUF file's is read by `reader` (the addon the evaluation runs on, native or WebAssembly).
export function loadEvalTokenizer(modelPath: string, tokenizerPath: string | undefined, reader?: ModelReader): TextTokenizer {
  if (tokenizerPath === undefined) return tokenizerForModel(modelPath, undefined, reader);
  const isFile = fs.statSync(tokenizerPath, { throwIfNoEntry: false })?.isFile() ?? false;
  if (isFile && path.basename(tokenizerPath) !== 'tokenizer.json') {
    throw usageError(`--tokenizer takes a tokenizer.json or the folder holding one (with its tokenizer_config.json), not ${tokenizerPath}`);
  }
  return tokenizerForModel(modelPath, isFile ? path.dirname(tokenizerPath) : tokenizerPath, reader);
}

export interface LoadedModel {
  engine: NativeEngine;
  dispose(): Promise<void>;
}

/**
 * Loads the model for contexts up to `longest` tokens. With maxPositions > 0 the model's
 * max_position_embeddings is replaced (plain RoPE extrapolation past the trained length): the
 * engine reads a folder of links to the model's files with an edited config.json.
 */
export async function loadEvalModel(
  addon: NativeAddon,
  args: Pick<RunArgs, 'modelPath' | 'maxPositions' | 'backend' | 'threads'> & Partial<Pick<RunArgs, 'kvFp8Simulation' | 'kvCache'>>,
  longest: number,
): Promise<LoadedModel> {
  const isFolder = fs.statSync(args.modelPath, { throwIfNoEntry: false })?.isDirectory() ?? false;
  let modelDir = args.modelPath;
  let linkedFolder: string | undefined;
  if (isFolder) {
    const configFile = path.join(args.modelPath, 'config.json');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as { max_position_embeddings?: unknown };
    if (args.maxPositions > 0) config.max_position_embeddings = args.maxPositions;
    const positions = config.max_position_embeddings;
    if (typeof positions === 'number' && longest > positions) {
      throw usageError(`context ${longest} is past the model's ${positions} positions; pass --max-positions N to test RoPE extrapolation beyond them`);
    }
    if (args.maxPositions > 0) {
      linkedFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-eval-model-'));
      for (const name of fs.readdirSync(args.modelPath)) {
        if (name !== 'config.json') fs.symlinkSync(path.resolve(args.modelPath, name), path.join(linkedFolder, name));
      }
      fs.writeFileSync(path.join(linkedFolder, 'config.json'), JSON.stringify(config, null, 2));
      modelDir = linkedFolder;
    }
  } else if (args.maxPositions > 0) {
    throw usageError('--max-positions needs a model folder (config.json); a .gguf file keeps the context length it was written with');
  }
  const removeLinks = () => {
    if (linkedFolder !== undefined) fs.rmSync(linkedFolder, { recursive: true, force: true });
  };
  try {
    const engine = await addon.loadModel(
      modelDir,
      await withWebGpuDevice({
        backend: args.backend,
        threads: args.threads,
        maxContext: longest,
        kvFp8Simulation: args.kvFp8Simulation === true,
        ...(args.kvCache === 'fp8' ? { kvFp8: true } : {}),
      }),
    );
    return {
      engine,
      dispose: async () => {
        try {
          await engine.unload();
        } finally {
          removeLinks();
        }
      },
    };
  } catch (error) {
    removeLinks();
    throw error;
  }
}

export async function runEval(addon: NativeAddon, args: RunArgs, log: (line: string) => void): Promise<EvalResults> {
  const results: EvalResults = { passkey: [], perplexity: [], crossfile: [] };
  const saved = args.save === undefined ? undefined : fs.openSync(args.save, 'w');
  const keep = (sample: EvalResults) => {
    results.passkey.push(...sample.passkey);
    results.perplexity.push(...sample.perplexity);
    results.crossfile?.push(...(sample.crossfile ?? []));
    if (saved !== undefined) fs.writeSync(saved, serializeResults(sample));
  };
  let sampleIndex = 0; // samples are dealt round-robin to the --shard processes
  const mine = () => sampleIndex++ % args.shards === args.shard;
  let model: LoadedModel | undefined;
  try {
    const started = performance.now();
    const tokenizer = loadEvalTokenizer(args.modelPath, args.tokenizerPath, addon);
    const files = collectCodeFiles(args.corpusBase, args.corpus);
    const stream = buildCodeStream(tokenizer, files);
    log(`corpus: ${files.length} files, ${stream.ids.length} tokens (tokenized in ${seconds(started)} s)`);

    const longest = Math.max(args.perplexityWindows > 0 ? args.perplexityLength : 0, ...args.contexts);
    model = await loadEvalModel(addon, args, longest);
    const engine = model.engine;
    const configs = makeEvalConfigs(args.budgets, args.selectionChoices, args.withQuest, args.sparsePrefill, args.selectionPolicies, args.backend === 'cpu');
    // Perplexity scores its last --perplexity-scored tokens: a sparse prefill of as many tokens
    // prefills exactly them (scorePerplexity); one of another length is left out there.
    const decodeConfigs = configs.filter((config) => !config.sparsePrefillTokens || config.sparsePrefillTokens === args.perplexityScored);
    log(`model ${args.modelPath}: ${engine.modelInfo.numLayers} layers, ${engine.modelInfo.threads} threads; ${configs.length} attention configurations`);

    for (const context of args.contexts) {
      const contextStarted = performance.now();
      let fullHits = 0;
      let samples = 0;
      for (let trial = args.firstTrial; trial < args.trials; trial++) {
        for (let d = 0; d < args.depths.length; d++) {
          if (!mine()) continue;
          const rng = sampleRandom(args.seed, context, d, trial);
          const needle = randomNeedle(rng);
          const others = randomDistractors(rng, needle, args.distractors);
          const sample = buildPasskeyPrompt(tokenizer, stream, context, args.depths[d], needle, rng, others);
          const correct = await scorePasskey(engine, sample.prompt, sample.answer, configs);
          keep({
            passkey: configs.map((config, c) => ({ context, depth: args.depths[d], trial, config: keyOf(config), correct: correct[c] })),
            perplexity: [],
          });
          fullHits += Number(correct[0]);
          samples++;
        }
      }
      if (samples > 0) log(`passkey ${context}: full attention ${fullHits}/${samples} (${seconds(contextStarted)} s)`);
    }

    // Cross-file completion: the same contexts and depths, samples drawn apart from the
    // passkey ones (another stream of the seed).
    for (const context of args.crossfileTrials > 0 ? args.contexts : []) {
      const contextStarted = performance.now();
      let fullHits = 0;
      let samples = 0;
      for (let trial = 0; trial < args.crossfileTrials; trial++) {
        for (let d = 0; d < args.depths.length; d++) {
          if (!mine()) continue;
          const rng = sampleRandom(args.seed, context, 0xcf00 + d, trial);
          const task = randomCrossFileCase(rng);
          const others = crossFileDistractors(rng, task, args.distractors);
          const sample = buildCrossFilePrompt(tokenizer, stream, context, args.depths[d], task, rng, others);
          const correct = await scoreCompletionText(
            engine,
            sample.prompt,
            task.answer,
            (ids) => tokenizer.decode(ids),
            configs,
            sample.answer.length + CROSSFILE_SLACK_TOKENS,
          );
          keep({
            passkey: [],
            perplexity: [],
            crossfile: configs.map((config, c) => ({ context, depth: args.depths[d], trial, config: keyOf(config), correct: correct[c] })),
          });
          fullHits += Number(correct[0]);
          samples++;
        }
      }
      log(`cross-file ${context}: full attention ${fullHits}/${samples} (${seconds(contextStarted)} s)`);
    }

    for (let w = 0; w < args.perplexityWindows; w++) {
      if (!mine()) continue;
      const windowStarted = performance.now();
      const rng = sampleRandom(args.seed, 0xc0de, w, 0);
      if (stream.ids.length <= args.perplexityLength) throw new EvalInputError('the corpus is shorter than --perplexity-length; add folders to --corpus');
      const start = uniformBelow(rng, stream.ids.length - args.perplexityLength);
      const window = Array.from(stream.ids.subarray(start, start + args.perplexityLength));
      const sums = await scorePerplexity(engine, window, args.perplexityLength - args.perplexityScored, decodeConfigs);
      const windowTokens = args.perplexityLength;
      keep({
        passkey: [],
        perplexity: [
          { window: w, windowTokens, config: { mode: 'full-prefill', selection: '-', budget: 0 }, nll: sums[0].nll, tokens: sums[0].tokens },
          ...decodeConfigs.map((config, c) => ({ window: w, windowTokens, config: keyOf(config), nll: sums[c + 1].nll, tokens: sums[c + 1].tokens })),
        ],
      });
      log(`perplexity window ${w}: full ${formatFixed(Math.exp(sums[1].nll / sums[1].tokens), 3)} (${seconds(windowStarted)} s)`);
    }
  } finally {
    if (saved !== undefined) fs.closeSync(saved);
    await model?.dispose();
  }
  return results;
}
