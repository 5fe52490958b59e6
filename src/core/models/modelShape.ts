// The numbers of a decoder-only transformer that decide its size (read by the engine:
// inspectModel in src/native/addon.ts), turned into a parameter count and a memory estimate
// at a context length.
import type { InspectedShape, ModelInfo } from '../../native/addon';

export type Architecture = ModelInfo['architecture'];

export type ModelShape = Omit<InspectedShape, 'rope'> & { architecture: Architecture };

// Parameters: embeddings, per layer the Q/K/V/O projections (qwen2 with Q/K/V biases,
// qwen3 with per-head Q/K norms), the gated MLP and two norms, the final norm, and the
// output head unless tied to the embeddings.
export function parameterCount(shape: ModelShape): number {
  const q = shape.heads * shape.headDim;
  const kv = shape.kvHeads * shape.headDim;
  let perLayer = shape.hiddenSize * q + 2 * shape.hiddenSize * kv + q * shape.hiddenSize + 3 * shape.hiddenSize * shape.intermediateSize + 2 * shape.hiddenSize;
  if (shape.architecture === 'qwen2') perLayer += q + 2 * kv;
  if (shape.architecture === 'qwen3') perLayer += 2 * shape.headDim;
  const embeddings = shape.vocabSize * shape.hiddenSize;
  return embeddings + shape.layers * perLayer + shape.hiddenSize + (shape.tiedEmbeddings ? 0 : embeddings);
}

// How a backend keeps the KV cache: f32 on the CPU and WebGPU; bf16 on CUDA, or FP8 (E4M3
// codes with an f16 scale per row) where tidal.engine.kvCache is fp8.
export type KvFormat = 'f32' | 'bf16' | 'fp8';
const KV_ELEMENT_BYTES: Record<KvFormat, number> = { f32: 4, bf16: 2, fp8: 1 };

/** The KV format of the engine on a CUDA GPU (true, with tidal.engine.kvCache) or on the CPU (false). */
export function kvFormatOn(cudaGpu: boolean, kvCache: 'bf16' | 'fp8' = 'bf16'): KvFormat {
  return cudaGpu ? kvCache : 'f32';
}

// KV cache bytes per token as the engine keeps it: keys and values for every layer and KV
// head (FP8: and each row's 2-byte scale), plus Quest's per-page key min/max (2 vectors per
// 16-token page, in the element type; bf16 on CUDA). The CPU keeps those bounds always; CUDA
// builds them only for a sequence that runs Quest, so they count there only with `quest`.
export function kvBytesPerToken(shape: Pick<ModelShape, 'layers' | 'kvHeads' | 'headDim'>, format: KvFormat = 'f32', quest = format === 'f32'): number {
  const rows = shape.layers * 2 * shape.kvHeads;
  const kv = rows * (shape.headDim * KV_ELEMENT_BYTES[format] + (format === 'fp8' ? 2 : 0));
  const pages = quest ? (rows * shape.headDim * (format === 'f32' ? 4 : 2)) / 16 : 0;
  return kv + pages;
}

export interface MemoryEstimate {
  contextTokens: number;
  weightBytes: number;
  kvBytes: number;
  kvFormat: KvFormat;
  overheadBytes: number; // activations, logits, scratch
  totalBytes: number;
}

// Memory to run a model at `contextTokens` (0 or more than the model's maximum: its maximum),
// with the KV cache in `kvFormat` (bf16 where the engine runs on CUDA).
// Overhead: f32 logits of a 512-token prefill chunk's last rows, activation buffers, and a
// margin of 5% of the weights.
export function estimateMemory(shape: ModelShape, weightBytes: number, contextTokens: number, kvFormat: KvFormat = 'f32'): MemoryEstimate {
  const tokens = contextTokens > 0 ? Math.min(contextTokens, shape.maxPositions) : shape.maxPositions;
  // On the GPU, Quest's bounds are counted too: the estimate is for any attention mode.
  const kvBytes = Math.ceil(kvBytesPerToken(shape, kvFormat, true) * tokens);
  const activations = 512 * (shape.hiddenSize * 4 + shape.intermediateSize * 2) * 4 + shape.vocabSize * 4 * 8;
  const overheadBytes = Math.ceil(activations + weightBytes * 0.05);
  return { contextTokens: tokens, weightBytes, kvBytes, kvFormat, overheadBytes, totalBytes: weightBytes + kvBytes + overheadBytes };
}

// Whether an estimate fits `freeBytes`, keeping a tenth of it for everything else.
export function fitsIn(memory: MemoryEstimate, freeBytes: number): boolean {
  return memory.totalBytes <= freeBytes * 0.9;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatParameters(count: number): string {
  return count >= 1e9 ? `${(count / 1e9).toFixed(2)}B` : `${(count / 1e6).toFixed(0)}M`;
}
