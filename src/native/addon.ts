// Typed loader of the native engine addon (native/build → dist/native/tidal_native.node).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { TidalError } from './errors';
import { isWasmAddonFolder, loadWasmAddon } from './wasmAddon';

export interface CudaProbe {
  compiled: boolean;
  deviceCount: number;
  usable: boolean;
  deviceName: string;
  computeCapability: number;
  memoryTotalGiB: number;
  message: string;
}

export type AttentionModeName = 'full' | 'tidal' | 'quest';
export type SelectionPolicyName = 'perQueryHead' | 'perKvHeadMax' | 'perKvHeadSum';
export type FinishReason = 'length' | 'stop' | 'cancelled' | 'callback' | 'context_full';

export interface EngineOptions {
  backend?: 'cpu' | 'cuda' | 'webgpu';
  /** The device of the 'webgpu' backend (src/webgpu: openWebGpuDevice). */
  webgpu?: { readonly maxBindingBytes: number; execute(words: Uint32Array, uploads: ArrayBuffer[]): Promise<ArrayBuffer[]> };
  threads?: number; // 0 or absent: every hardware thread
  maxContext?: number; // tokens per sequence; 0 or absent: the model's maximum
  prefillChunk?: number; // tokens per prefill pass; 0 or absent: the backend's default (2048 on CUDA, 256 on the CPU)
  maxKvBytes?: number; // KV cache cap over all sequences; 0 or absent: none
  /** CPU backend only: round every K/V row as the FP8 E4M3 cache (an f16 scale per position and KV head) stores it; measures that cache's accuracy (tidal-eval --kv-fp8-simulation), not its memory. */
  kvFp8Simulation?: boolean;
  /** CUDA backend only: the KV cache as FP8 E4M3 codes with an f16 scale per (position, KV head) row, half of bf16's memory; refused by the cpu and webgpu backends. */
  kvFp8?: boolean;
}

export interface ModelInfo {
  architecture: 'llama' | 'mistral' | 'qwen2' | 'qwen3';
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  maxContext: number;
  dtype: string;
  weightBytes: number;
  kvBytesPerToken: number;
  eosTokenIds: number[];
  backend: string;
  threads: number;
}

export interface AttentionOptions {
  mode?: AttentionModeName;
  tokenBudget?: number; // tokens per query head in sparse layers, current token included
  denseLayers?: number; // layers [0, denseLayers) use full attention
  selectionLayers?: number[]; // tidal: layers that (re-)select positions; empty = preset
  selectionPolicy?: SelectionPolicyName;
  correctionInterval?: number; // tidal: KV-cache correction every N generated tokens; 0 = off
  sparseFirstStep?: boolean; // tidal/quest: the prompt's last token runs as a sparse decode step
  // tidal/quest: prompt tokens prefilled after a cached context run sparse too (each sparse layer
  // attends to the positions chosen for the whole pass and to the pass's own tokens); CPU backend
  // only, others reject it with ERR_TIDAL_REQUEST
  sparsePrefill?: boolean;
}

export interface SamplingOptions {
  temperature?: number; // 0: greedy
  topK?: number;
  topP?: number;
  seed?: number;
}

export interface GenerateOptions {
  maxTokens?: number;
  stopTokens?: number[];
  stopAtEos?: boolean;
  sampling?: SamplingOptions;
  attention?: AttentionOptions;
}

export interface GenerateResult {
  tokens: Int32Array;
  finishReason: FinishReason;
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
}

export interface UsageStats {
  weightBytes: number;
  kvBytes: number;
  kvBytesPeak: number;
  sequences: number;
  tokensPrefilled: number;
  tokensDecoded: number;
  prefillSeconds: number;
  decodeSeconds: number;
  lastSelection: {
    mode: AttentionModeName;
    contextLength: number;
    tokenBudget: number;
    selectionLayersRun: number;
    attendedFraction: number;
    corrections: number;
  };
}

// Errors from the engine carry one of the EngineErrorCode codes (errors.ts).
export type { EngineErrorCode } from './errors';

export interface CancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

// One loaded model. Methods that may wait for the engine return promises and run off the
// JS thread; requests are served one at a time. Bad arguments throw synchronously
// (TypeError/RangeError); engine errors reject with an Error whose `code` is an EngineErrorCode.
export interface NativeEngine {
  readonly modelInfo: ModelInfo;
  usage(): UsageStats;
  createSequence(): Promise<number>;
  forkSequence(source: number, length?: number): Promise<number>;
  trimSequence(sequence: number, length: number): Promise<void>;
  releaseSequence(sequence: number): Promise<void>;
  sequenceLength(sequence: number): Promise<number>;
  sequenceTokens(sequence: number): Promise<Int32Array>;
  // chunk: tokens per forward pass; 0 or absent: the engine's prefillChunk. A cancel takes
  // effect between the layers of a pass. attention with sparsePrefill: the passes run sparse.
  prefill(
    sequence: number,
    tokens: ArrayLike<number>,
    options?: { allLogits?: boolean; cancel?: CancelToken; chunk?: number; attention?: AttentionOptions },
  ): Promise<Float32Array>;
  // Context shift: keeps only `ranges` ([start, count], count >= 1, ascending, non-overlapping,
  // within the processed positions) of the sequence, moved down to follow each other; moved keys
  // are re-rotated to their new positions, values move unchanged. Approximate (the moved K/V saw
  // the removed tokens) but far cheaper than a prefill. Tokens not yet processed are dropped.
  // Bad ranges reject with ERR_TIDAL_REQUEST, the sequence unchanged.
  compactSequence(sequence: number, ranges: [number, number][]): Promise<void>;
  // Writes the sequence's tokens, KV cache and last logits to `path` (via `path + '.tmp'`,
  // renamed when complete); resolves with the bytes written.
  saveSequence(sequence: number, path: string, options?: { cancel?: CancelToken }): Promise<number>;
  // A new sequence from a file written by saveSequence for the same model on the same backend.
  // A missing, truncated or corrupt file, or one of another model (the message names the
  // differing field), backend or context limit, rejects with ERR_TIDAL_REQUEST.
  loadSequence(path: string): Promise<number>;
  decode(sequence: number, token: number, attention?: AttentionOptions): Promise<Float32Array>;
  // Tokens reach onToken in order, on the JS thread, before the promise settles.
  generate(
    sequence: number,
    prompt: ArrayLike<number>,
    options: GenerateOptions,
    onToken?: (token: number) => void,
    cancel?: CancelToken,
  ): Promise<GenerateResult>;
  unload(): Promise<void>;
}

// What a model folder or .gguf file holds, read by the engine's parsers from headers only
// (native/src/model/model_inspect.h): no weight bytes are read, so a 16 GB file takes
// milliseconds. `family` and `shape` are present when the configuration resolved.
export interface ModelProblem {
  kind: 'missing' | 'truncated' | 'malformed' | 'unsupported' | 'mismatch';
  message: string; // names the file and the field
}

export interface RopeParameters {
  theta: number;
  // 'per-pair': a GGUF file's rope_freqs.weight gave the frequencies; the other fields are unused.
  scaling: {
    type: 'none' | 'llama3' | 'per-pair';
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  };
  // The inverse frequency of each rotated pair (head_dim / 2), what the engine applies.
  frequencies: number[];
}

export interface InspectedShape {
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number; // context length
  tiedEmbeddings: boolean;
  rope: RopeParameters;
}

export interface ModelInspection {
  path: string;
  format: 'safetensors' | 'gguf' | 'unknown'; // safetensors: a Hugging Face model folder
  architecture: string; // as the files name it (config.json architectures[0], GGUF general.architecture); '' when unread
  family?: ModelInfo['architecture']; // the engine's model family
  name: string; // GGUF general.name, else ''
  shape?: InspectedShape;
  dtypes: string[]; // storage types ('BF16', 'Q4_K', ...), most bytes first
  tensorCount: number;
  parameters: number;
  weightBytes: number; // tensor bytes as stored
  loadedWeightBytes: number; // once loaded on the CPU (quantised GGUF matrices stay in their blocks)
  gpuWeightBytes: number; // once loaded on the GPU (Q8_0 / Q4_K / Q6_K matrices in their blocks, the rest bf16)
  tokenizerTokens: number; // GGUF tokenizer.ggml.tokens entries; 0 for a folder
  problems: ModelProblem[]; // empty: the engine can load the model
}

// The tokenizer.* metadata of a GGUF file as the engine reads it (read_gguf_tokenizer). Ids
// and flags absent from the file are undefined; scores and tokenTypes are empty when absent.
export interface GgufTokenizerMetadata {
  model: string; // 'gpt2' (byte-level BPE), 'llama' (SentencePiece), ... ; '' when absent
  pre: string; // pre-tokenizer family; '' when absent
  tokens: string[];
  merges: string[];
  scores: Float32Array;
  tokenTypes: Int32Array;
  bosId?: number;
  eosId?: number;
  eotId?: number;
  unknownId?: number;
  paddingId?: number;
  addBos?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  chatTemplate: string; // '' when absent
}

// The addon's model-reading functions alone: what the extension host needs.
export interface ModelReader {
  // Synchronous; never throws for a broken model (see `problems`).
  inspectModel(path: string): ModelInspection;
  // Synchronous; throws an Error with code ERR_TIDAL_MODEL for a broken file or metadata.
  readGgufTokenizer(path: string): GgufTokenizerMetadata;
}

export interface NativeAddon extends ModelReader {
  engineVersion(): string;
  compiledBackends(): string[];
  probeCuda(): CudaProbe;
  loadModel(dir: string, options?: EngineOptions): Promise<NativeEngine>;
  CancelToken: new () => CancelToken;
}

/**
 * Why the addon is not there: `missing` (no file: a package without a native engine, e.g. the
 * universal one, or a source checkout not built) or `unloadable` (a file that did not load: built
 * for another platform or Node-API version, a shared library it needs is absent).
 */
export type AddonProblemKind = 'missing' | 'unloadable';

export class AddonLoadError extends TidalError {
  constructor(
    message: string,
    readonly kind: AddonProblemKind = 'unloadable',
  ) {
    super('ERR_TIDAL_NO_ENGINE', message);
  }
}

// Candidate locations, in order: next to the bundle (packaged extension), then the build tree.
export function addonCandidates(bundleDir: string): string[] {
  return [path.join(bundleDir, 'native', 'tidal_native.node'), path.join(bundleDir, '..', 'native', 'build', 'Release', 'tidal_native.node')];
}

/** The addon file a bundle in `bundleDir` would load, or undefined when there is none. */
export function findAddon(bundleDir: string): string | undefined {
  return addonCandidates(bundleDir).find((candidate) => fs.existsSync(candidate));
}

export function loadAddon(bundleDir: string): NativeAddon {
  const found = findAddon(bundleDir);
  if (!found) {
    throw new AddonLoadError(
      `The Tidal native engine is missing (looked for ${addonCandidates(bundleDir).join(', ')}). ` +
        'Reinstall the extension, or run `npm install` in a source checkout to build it.',
      'missing',
    );
  }
  try {
    // The addon is a plain Node-API module: require() is the loader.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(found) as NativeAddon;
  } catch (error) {
    throw new AddonLoadError(
      `The Tidal native engine at ${found} could not be loaded on ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}): ${(error as Error).message}`,
      'unloadable',
    );
  }
}

// The WebAssembly build of the addon (src/native/wasmAddon.ts): beside the bundle in a package
// (dist/native-wasm/), or in the build tree of a source checkout (scripts/build-native-wasm.mjs).
export function wasmAddonCandidates(bundleDir: string): string[] {
  return [path.join(bundleDir, 'native-wasm'), path.join(bundleDir, '..', 'native', 'build-wasm')];
}

const wasmAddons = new WeakSet<NativeAddon>();
/** Whether `addon` is a native build or the WebAssembly one (loadEngineAddon). */
export function addonBuild(addon: NativeAddon): 'native' | 'wasm' {
  return wasmAddons.has(addon) ? 'wasm' : 'native';
}

/** The folder of the WebAssembly build a bundle in `bundleDir` would load, or undefined when there is none. */
export function findWasmAddon(bundleDir: string): string | undefined {
  return wasmAddonCandidates(bundleDir).find(isWasmAddonFolder);
}

/**
 * The engine addon for the engine host, `tidal serve` and `tidal eval`: the native build for
 * this platform, or where there is none (or it does not load), the WebAssembly build, which runs
 * the CPU backend (and WebGPU) on every platform Node runs on, slower than native code.
 * TIDAL_ADDON=wasm asks for the WebAssembly build, TIDAL_ADDON=native for the native one only.
 */
export async function loadEngineAddon(bundleDir: string, choice = process.env.TIDAL_ADDON, log: (message: string) => void = () => {}): Promise<NativeAddon> {
  let nativeProblem: AddonLoadError | undefined;
  if (choice !== 'wasm') {
    try {
      return loadAddon(bundleDir);
    } catch (error) {
      nativeProblem = error instanceof AddonLoadError ? error : new AddonLoadError((error as Error).message);
      if (choice === 'native') throw nativeProblem;
    }
  }
  const folder = findWasmAddon(bundleDir);
  if (!folder) {
    if (nativeProblem) throw nativeProblem;
    throw new AddonLoadError(`The WebAssembly build of the Tidal engine is missing (looked in ${wasmAddonCandidates(bundleDir).join(', ')}).`, 'missing');
  }
  try {
    const addon = (await loadWasmAddon(folder)) as NativeAddon;
    wasmAddons.add(addon);
    log(`the WebAssembly engine from ${folder}${nativeProblem ? `, since the native one is not there: ${nativeProblem.message}` : ''}`);
    return addon;
  } catch (error) {
    throw new AddonLoadError(
      `${nativeProblem ? `${nativeProblem.message} ` : ''}The WebAssembly build of the Tidal engine at ${folder} could not be loaded ` +
        `(Node ${process.versions.node}): ${(error as Error).message}`,
      'unloadable',
    );
  }
}

// The addon beside this bundle (dist/ for the extension and the engine host), loaded once, or
// the reason it is not there: a machine without the native engine (another platform, a
// source checkout not built) still runs the extension. Synchronous, so native only; once
// bundledReader() has loaded the WebAssembly build instead, that one.
let bundled: { addon?: NativeAddon; error?: AddonLoadError } | undefined;
export function bundledAddon(): { addon?: NativeAddon; error?: AddonLoadError } {
  if (!bundled) {
    try {
      bundled = { addon: loadAddon(__dirname) };
    } catch (error) {
      bundled = { error: asAddonLoadError(error) };
    }
  }
  return bundled;
}

function asAddonLoadError(error: unknown): AddonLoadError {
  return error instanceof AddonLoadError ? error : new AddonLoadError((error as Error).message);
}

/**
 * An engine build in `bundleDir` to read model files with (the model checks of the picker, a
 * GGUF file's tokenizer): the native addon, else the WebAssembly build, so that a platform
 * without a native build (macOS, Windows on Arm) checks models before use too. With neither,
 * the native addon's error (it says what to install or build).
 */
export async function readerFrom(bundleDir: string): Promise<{ addon?: NativeAddon; error?: AddonLoadError }> {
  let nativeError: AddonLoadError;
  try {
    return { addon: loadAddon(bundleDir) };
  } catch (error) {
    nativeError = asAddonLoadError(error);
  }
  try {
    return { addon: await loadEngineAddon(bundleDir, 'wasm') };
  } catch {
    return { error: nativeError };
  }
}

// readerFrom() for this bundle, loaded once; a WebAssembly build it loads is also what
// bundledAddon() returns from then on.
let bundledLoading: Promise<{ addon?: NativeAddon; error?: AddonLoadError }> | undefined;
export function bundledReader(): Promise<{ addon?: NativeAddon; error?: AddonLoadError }> {
  const native = bundledAddon();
  if (native.addon) return Promise.resolve(native);
  bundledLoading ??= readerFrom(__dirname).then((found) => {
    if (found.addon) bundled = found;
    return found.addon ? found : native;
  });
  return bundledLoading;
}
