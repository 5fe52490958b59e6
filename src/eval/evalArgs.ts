// Command line of `tidal-eval` (see USAGE): the options, defaults and ranges of the C++
// `tidal eval` it replaces, plus --backend.
import type { SelectionPolicyName } from '../native/addon';
import { TidalError } from '../native/errors';

/** A command line that cannot be used: ERR_TIDAL_USAGE; main prints the message and the usage. */
export const usageError = (message: string) => new TidalError('ERR_TIDAL_USAGE', message);

export const USAGE = [
  'usage: tidal-eval --model DIR [--tokenizer FILE|DIR] [--corpus src,native/src] [--corpus-base DIR]',
  '                  [--contexts 4096,8192,16384,32768] [--depths 0.1,0.3,0.5,0.7,0.9] [--trials N] [--first-trial N] [--distractors N]',
  '                  [--crossfile-trials N]   (cross-file completion: a call to a helper defined in another file, at each depth;',
  '                                            --distractors N plants N other helpers that do something else)',
  "                  [--budgets 64,128,...,4096] [--selection-choices '2;2,4;2,3'] [--no-quest]",
  '                  [--selection-policies perQueryHead,perKvHeadMax,perKvHeadSum]   (tidal: whose scores pick the positions;',
  "                                            per query head by default; the others share one list per KV head's group)",
  '                  [--sparse-prefill N]     (each tidal and quest configuration again, the last N prompt tokens before the decoded',
  "                                            one prefilled under its attention: a keystroke's recomputed tokens; CPU, or",
  '                                            CUDA for tidal only)',
  '                  [--perplexity-windows N] [--perplexity-length N] [--perplexity-scored N] [--seed S]',
  '                  [--backend cpu|cuda|webgpu] [--threads N] [--max-positions N] [--trained-length N] [--shard I/N] [--save FILE] [--output FILE.md]',
  '                  [--kv-fp8-simulation]   (CPU: K/V rounded as an FP8 E4M3 cache with per-row scales would keep them)',
  '                  [--kv-cache bf16|fp8]   (CUDA: the KV cache the engine keeps; fp8 is tidal.engine.kvCache "fp8")',
  '   or: tidal-eval --load a.tsv,b.tsv [--trained-length N] [--output FILE.md]',
  'Passkey retrieval by context length and depth, and teacher-forced perplexity on held-out code, of full,',
  'TidalDecode and Quest attention; prints Markdown tables. --model is a Hugging Face model folder or a .gguf file,',
  "its prompts tokenized by the model's own tokenizer (tokenizer.json, or --tokenizer).",
].join('\n');

// Ranges, as in native/include/tidal/option_limits.h.
const MAX_THREADS = 1024;
const MAX_CONTEXT = 2 ** 24;
const MAX_TOKEN_BUDGET = 2 ** 24;
const MAX_LAYER_INDEX = 4095;
const MAX_SEED = 2 ** 53 - 1;
const MAX_COUNT = 2 ** 20;
const MAX_DISTRACTORS = 1024;
const MAX_POSITIONS = 2 ** 26;

export const DEFAULT_CORPUS = ['src', 'native/src', 'native/cli', 'native/include', 'native/addon'];

export interface RunArgs {
  kind: 'run';
  modelPath: string;
  tokenizerPath?: string;
  corpus: string[];
  corpusBase: string;
  contexts: number[];
  depths: number[];
  trials: number;
  firstTrial: number; // trials [firstTrial, trials): a later run adds trials without repeating earlier ones
  distractors: number;
  crossfileTrials: number; // cross-file completion samples per (context, depth); 0: none
  budgets: number[];
  selectionChoices: number[][];
  selectionPolicies: SelectionPolicyName[];
  withQuest: boolean;
  sparsePrefill: number; // 0: none; N: tidal and quest (on the CPU) again with N prompt tokens prefilled sparse (modes "tidal+prefillN")
  perplexityWindows: number;
  perplexityLength: number;
  perplexityScored: number;
  seed: number;
  shard: number;
  shards: number;
  backend: 'cpu' | 'cuda' | 'webgpu';
  threads: number;
  maxPositions: number; // 0: the model's own max_position_embeddings
  kvFp8Simulation: boolean; // every K/V row rounded as an FP8 E4M3 cache would store it (CPU backend)
  kvCache: 'bf16' | 'fp8'; // the CUDA backend's KV cache (fp8: the engine's FP8 E4M3 cache itself)
  trainedLength: number;
  save?: string;
  output?: string;
}

export interface LoadArgs {
  kind: 'load';
  load: string[];
  trainedLength: number;
  output?: string;
}

const SELECTION_POLICIES: readonly SelectionPolicyName[] = ['perQueryHead', 'perKvHeadMax', 'perKvHeadSum'];

const FLAGS = new Set(['--no-quest', '--kv-fp8-simulation']);

// `--name value`, `--name=value` and the flags above; unknown options are reported once every
// known one was read, as the C++ parser did.
class Options {
  private readonly values = new Map<string, string>();
  private readonly used = new Set<string>();

  constructor(argv: readonly string[]) {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (!arg.startsWith('--')) throw usageError(`unexpected argument '${arg}' (options start with --)`);
      const equals = arg.indexOf('=');
      if (equals >= 0) this.values.set(arg.slice(0, equals), arg.slice(equals + 1));
      else if (FLAGS.has(arg)) this.values.set(arg, '');
      else if (i + 1 >= argv.length) throw usageError(`option ${arg} needs a value`);
      else this.values.set(arg, argv[++i]);
    }
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  flag(name: string): boolean {
    this.used.add(name);
    return this.values.has(name);
  }

  text(name: string): string | undefined {
    this.used.add(name);
    return this.values.get(name);
  }

  required(name: string): string {
    const value = this.text(name);
    if (value === undefined) throw usageError(`missing option ${name}`);
    return value;
  }

  integer(name: string, fallback: number, lo: number, hi: number): number {
    const value = this.text(name);
    return value === undefined ? fallback : parseInteger(value, name, lo, hi);
  }

  integerList(name: string, fallback: number[], lo: number, hi: number): number[] {
    const value = this.text(name);
    return value === undefined ? fallback : parseIntegerList(value, name, lo, hi);
  }

  textList(name: string, fallback: string[]): string[] {
    const value = this.text(name);
    return value === undefined ? fallback : value.split(',').filter((item) => item !== '');
  }

  rejectUnused(): void {
    const unused = [...this.values.keys()].sort().find((name) => !this.used.has(name));
    if (unused !== undefined) throw usageError(`unknown option ${unused}`);
  }
}

// One integer in [lo, hi]: decimal digits with an optional sign, nothing else.
function parseInteger(text: string, option: string, lo: number, hi: number, what = 'an integer'): number {
  const range = `[${lo}, ${hi}]`;
  if (!/^[-+]?\d+$/.test(text)) throw usageError(`option ${option} expects ${what} in ${range}, got '${text}'`);
  const value = Number(text);
  if (value < lo || value > hi) throw usageError(`option ${option} must be in ${range}, got '${text}'`);
  return value;
}

// "1,2,3" -> [1, 2, 3], each in [lo, hi] (empty items between commas are refused, a trailing one dropped).
function parseIntegerList(text: string, option: string, lo: number, hi: number): number[] {
  const items = text.split(',');
  if (items.at(-1) === '') items.pop();
  return items.map((item) => parseInteger(item, option, lo, hi, 'comma-separated integers'));
}

function parseSelectionChoices(text: string): number[][] {
  const items = text.split(';');
  if (items.at(-1) === '') items.pop();
  const out = items.map((item) => parseIntegerList(item, '--selection-choices', 0, MAX_LAYER_INDEX));
  if (out.length === 0) throw usageError('--selection-choices needs at least one list, e.g. 2;2,4');
  return out;
}

function parseDepths(text: string): number[] {
  const items = text.split(',');
  if (items.at(-1) === '') items.pop();
  return items.map((item) => {
    const value = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(item) ? Number(item) : NaN;
    if (!(value >= 0 && value <= 1)) throw usageError('--depths takes fractions in [0, 1] separated by commas, e.g. 0.1,0.5,0.9');
    return value;
  });
}

export function parseEvalArgs(argv: readonly string[]): RunArgs | LoadArgs {
  const options = new Options(argv);
  const trainedLength = options.integer('--trained-length', 8192, 1, MAX_POSITIONS);
  const output = options.text('--output') || undefined;
  const load = options.textList('--load', []);
  if (load.length > 0) {
    options.rejectUnused();
    return { kind: 'load', load, trainedLength, output };
  }
  const modelPath = options.required('--model');
  const tokenizerPath = options.text('--tokenizer');
  const corpus = options.textList('--corpus', []);
  const corpusBase = options.text('--corpus-base') ?? '.';
  const contexts = options.integerList('--contexts', [4096, 8192, 16384, 32768], 1, MAX_CONTEXT);
  const depths = parseDepths(options.text('--depths') ?? '0.1,0.3,0.5,0.7,0.9');
  const trials = options.integer('--trials', 4, 0, MAX_COUNT);
  const distractors = options.integer('--distractors', 0, 0, MAX_DISTRACTORS);
  const firstTrial = options.integer('--first-trial', 0, 0, MAX_COUNT);
  const crossfileTrials = options.integer('--crossfile-trials', 0, 0, MAX_COUNT);
  const budgets = options.integerList('--budgets', [64, 128, 256, 512, 1024, 2048, 4096], 1, MAX_TOKEN_BUDGET);
  const selectionChoices = parseSelectionChoices(options.text('--selection-choices') ?? '2;2,4;2,3');
  const selectionPolicies = options.textList('--selection-policies', ['perQueryHead']);
  for (const policy of selectionPolicies) {
    if (!SELECTION_POLICIES.includes(policy as SelectionPolicyName))
      throw usageError(`--selection-policies takes ${SELECTION_POLICIES.join(', ')}, got '${policy}'`);
  }
  const withQuest = !options.flag('--no-quest');
  const sparsePrefill = options.integer('--sparse-prefill', 0, 0, MAX_CONTEXT);
  const perplexityWindows = options.integer('--perplexity-windows', 2, 0, MAX_COUNT);
  const perplexityLength = options.integer('--perplexity-length', 4096, 3, MAX_CONTEXT);
  const perplexityScored = options.integer('--perplexity-scored', 256, 1, MAX_CONTEXT);
  const seed = options.integer('--seed', 1234, 0, MAX_SEED);
  const save = options.text('--save') || undefined;
  const shardText = options.text('--shard') ?? '0/1';
  const shardMatch = /^(\d+)\/(\d+)$/.exec(shardText);
  const [shard, shards] = shardMatch ? [Number(shardMatch[1]), Number(shardMatch[2])] : [-1, 0];
  if (shards < 1 || shard < 0 || shard >= shards) throw usageError('--shard takes I/N with 0 <= I < N, e.g. 0/4');
  const backend = options.text('--backend') ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'cuda' && backend !== 'webgpu') throw usageError(`--backend takes cpu, cuda or webgpu, got '${backend}'`);
  const threads = options.integer('--threads', 0, 0, MAX_THREADS);
  const maxPositions = options.integer('--max-positions', 0, 0, MAX_POSITIONS);
  const kvFp8Simulation = options.flag('--kv-fp8-simulation');
  const kvCache = options.text('--kv-cache') ?? 'bf16';
  options.rejectUnused();
  if (kvCache !== 'bf16' && kvCache !== 'fp8') throw usageError(`--kv-cache takes bf16 or fp8, got '${kvCache}'`);
  if (kvFp8Simulation && backend !== 'cpu') throw usageError('--kv-fp8-simulation runs on the CPU backend only (--backend cpu)');
  if (sparsePrefill > 0 && backend === 'webgpu') throw usageError('--sparse-prefill runs on the CPU and CUDA backends (the CUDA one for tidal only)');
  if (kvCache === 'fp8' && backend !== 'cuda')
    throw usageError('--kv-cache fp8 runs on the CUDA backend only (--backend cuda); on the CPU use --kv-fp8-simulation');
  // Saved records name no KV format: merged with an exact run's, they would be averaged together.
  const fp8Option = kvFp8Simulation ? '--kv-fp8-simulation' : kvCache === 'fp8' ? '--kv-cache fp8' : undefined;
  if (fp8Option !== undefined && save !== undefined) throw usageError(`${fp8Option} cannot be combined with --save; compare the tables (--output)`);
  if (perplexityWindows > 0 && (perplexityScored < 1 || perplexityScored + 2 > perplexityLength)) {
    throw usageError('--perplexity-scored must be in [1, --perplexity-length - 2]');
  }
  return {
    kind: 'run',
    modelPath,
    tokenizerPath,
    corpus: corpus.length > 0 ? corpus : DEFAULT_CORPUS,
    corpusBase,
    contexts,
    depths,
    trials,
    firstTrial,
    distractors,
    crossfileTrials,
    budgets,
    selectionChoices,
    selectionPolicies: selectionPolicies as SelectionPolicyName[],
    withQuest,
    sparsePrefill,
    perplexityWindows,
    perplexityLength,
    perplexityScored,
    seed,
    shard,
    shards,
    backend,
    threads,
    maxPositions,
    kvFp8Simulation,
    kvCache,
    trainedLength,
    save,
    output,
  };
}
