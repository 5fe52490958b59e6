// The numbers of a decoder-only transformer that decide its size: read from config.json,
// turned into a parameter count and a memory estimate at a context length.
export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

export interface ModelShape {
  architecture: Architecture;
  layers: number;
  hiddenSize: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
  maxPositions: number;
}

export class ModelConfigError extends Error {
  readonly code = 'ERR_TIDAL_MODEL';
}

const ARCHITECTURE_CLASSES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

// The architecture of a config.json: model_type, else the architectures class name.
export function architectureOf(config: Record<string, unknown>): { architecture?: Architecture; named: string } {
  const type = typeof config.model_type === 'string' ? config.model_type : undefined;
  if (type && (SUPPORTED_ARCHITECTURES as readonly string[]).includes(type)) return { architecture: type as Architecture, named: type };
  const classes = Array.isArray(config.architectures) ? config.architectures.filter((c): c is string => typeof c === 'string') : [];
  for (const name of classes) if (ARCHITECTURE_CLASSES[name]) return { architecture: ARCHITECTURE_CLASSES[name], named: name };
  return { named: type ?? classes[0] ?? 'none' };
}

export function shapeFromConfig(config: Record<string, unknown>): ModelShape {
  const { architecture, named } = architectureOf(config);
  if (!architecture) {
    throw new ModelConfigError(`The model architecture '${named}' is not supported; Tidal runs ${SUPPORTED_ARCHITECTURES.join(', ')} models. Pick one of those.`);
  }
  const int = (key: string, fallback?: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new ModelConfigError(`config.json has no valid '${key}' (a positive integer); the model folder looks incomplete or damaged. Download it again.`);
    }
    return value;
  };
  const hiddenSize = int('hidden_size');
  const heads = int('num_attention_heads');
  const shape: ModelShape = {
    architecture,
    layers: int('num_hidden_layers'),
    hiddenSize,
    heads,
    kvHeads: int('num_key_value_heads', heads),
    headDim: int('head_dim', hiddenSize / heads),
    intermediateSize: int('intermediate_size'),
    vocabSize: int('vocab_size'),
    tiedEmbeddings: config.tie_word_embeddings === true,
    maxPositions: int('max_position_embeddings', 4096),
  };
  if (shape.heads % shape.kvHeads !== 0) throw new ModelConfigError(`config.json has ${shape.heads} attention heads, not a multiple of its ${shape.kvHeads} key/value heads.`);
  return shape;
}

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

// KV cache bytes per token as the engine keeps it: f32 keys and values for every layer and
// KV head, plus Quest's per-page key min/max (2 vectors per 16-token page: +1/16).
export function kvBytesPerToken(shape: Pick<ModelShape, 'layers' | 'kvHeads' | 'headDim'>): number {
  const floats = shape.layers * 2 * shape.kvHeads * shape.headDim;
  return floats * 4 * (1 + 1 / 16);
}

export interface MemoryEstimate {
  contextTokens: number;
  weightBytes: number;
  kvBytes: number;
  overheadBytes: number; // activations, logits, scratch
  totalBytes: number;
}

// Memory to run a model at `contextTokens` (0 or more than the model's maximum: its maximum).
// Overhead: f32 logits of a 512-token prefill chunk's last rows, activation buffers, and a
// margin of 5% of the weights.
export function estimateMemory(shape: ModelShape, weightBytes: number, contextTokens: number): MemoryEstimate {
  const tokens = contextTokens > 0 ? Math.min(contextTokens, shape.maxPositions) : shape.maxPositions;
  const kvBytes = Math.ceil(kvBytesPerToken(shape) * tokens);
  const activations = 512 * (shape.hiddenSize * 4 + shape.intermediateSize * 2) * 4 + shape.vocabSize * 4 * 8;
  const overheadBytes = Math.ceil(activations + weightBytes * 0.05);
  return { contextTokens: tokens, weightBytes, kvBytes, overheadBytes, totalBytes: weightBytes + kvBytes + overheadBytes };
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
