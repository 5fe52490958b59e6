// Recommended code models the engine runs, with the numbers of each model's own config.json
// (Qwen/<name> on the Hugging Face hub), so parameter counts, download sizes and memory are
// computed rather than quoted. Each comes as bf16 safetensors (Qwen/<name>) and, where the
// engine reads the architecture from GGUF, as Q8_0 and Q4_K_M GGUF files (Qwen/<name>-GGUF):
// what people with less GPU memory run.
import * as path from 'node:path';

import { TidalError } from '../../native/errors';
import type { HubFile } from './hubClient';
import { estimateMemory, fitsIn, KvFormat, MemoryEstimate, ModelShape, parameterCount } from './modelShape';

/** How a catalogue model's weights are stored: bf16 safetensors, or a GGUF file of that quantisation. */
export type WeightFormat = 'bf16' | 'Q8_0' | 'Q4_K_M';
/** Most precise first (the order of the picker's rows and of the tie-break between equal sizes). */
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['bf16', 'Q8_0', 'Q4_K_M'];

export interface CatalogueModel {
  id: string; // short id, also the folder name under the models folder
  repo: string; // hub repository
  label: string;
  description: string;
  shape: ModelShape;
  weights: WeightFormat;
  tokenizerBytes: number; // tokenizer.json + configs, about (0 for a GGUF: it carries its tokenizer)
}

/** A model before its weight format is chosen (the bf16 repository's names). */
type BaseModel = Omit<CatalogueModel, 'weights'>;

const qwen25Coder = (
  size: string,
  shape: Omit<ModelShape, 'architecture' | 'vocabSize' | 'maxPositions' | 'headDim'> & { vocabSize?: number; headDim?: number },
  description: string,
): BaseModel => ({
  id: `qwen2.5-coder-${size.toLowerCase()}-instruct`,
  repo: `Qwen/Qwen2.5-Coder-${size}-Instruct`,
  label: `Qwen2.5-Coder ${size} Instruct`,
  description,
  shape: { architecture: 'qwen2', vocabSize: 151936, maxPositions: 32768, headDim: 128, ...shape },
  tokenizerBytes: 7_050_000,
});

const BASE_MODELS: readonly BaseModel[] = [
  qwen25Coder(
    '0.5B',
    { layers: 24, hiddenSize: 896, heads: 14, kvHeads: 2, headDim: 64, intermediateSize: 4864, tiedEmbeddings: true },
    'fastest; completions on any machine',
  ),
  qwen25Coder(
    '1.5B',
    { layers: 28, hiddenSize: 1536, heads: 12, kvHeads: 2, intermediateSize: 8960, tiedEmbeddings: true },
    'good completions on a laptop CPU',
  ),
  qwen25Coder('3B', { layers: 36, hiddenSize: 2048, heads: 16, kvHeads: 2, intermediateSize: 11008, tiedEmbeddings: true }, 'better chat; a GPU helps'),
  qwen25Coder(
    '7B',
    { layers: 28, hiddenSize: 3584, heads: 28, kvHeads: 4, intermediateSize: 18944, vocabSize: 152064, tiedEmbeddings: false },
    'strong chat and completions; GPU recommended',
  ),
  qwen25Coder(
    '14B',
    { layers: 48, hiddenSize: 5120, heads: 40, kvHeads: 8, intermediateSize: 13824, vocabSize: 152064, tiedEmbeddings: false },
    'best quality here; needs a large GPU',
  ),
  {
    id: 'qwen3-4b',
    repo: 'Qwen/Qwen3-4B',
    label: 'Qwen3 4B',
    description: 'general chat model with reasoning (qwen3); no fill-in-the-middle',
    shape: {
      architecture: 'qwen3',
      layers: 36,
      hiddenSize: 2560,
      heads: 32,
      kvHeads: 8,
      headDim: 128,
      intermediateSize: 9728,
      vocabSize: 151936,
      tiedEmbeddings: true,
      maxPositions: 40960,
    },
    tokenizerBytes: 11_440_000,
  },
];

// Architectures the engine reads from a GGUF file (native/src/model/gguf_model.cpp).
const GGUF_ARCHITECTURES = new Set(['llama', 'qwen2']);

function variant(base: BaseModel, weights: WeightFormat): CatalogueModel {
  if (weights === 'bf16') return { ...base, weights };
  return {
    ...base,
    id: `${base.id}-${weights.toLowerCase()}`,
    repo: `${base.repo}-GGUF`,
    label: `${base.label} ${weights}`,
    weights,
    tokenizerBytes: 0,
  };
}

export const CATALOGUE: readonly CatalogueModel[] = BASE_MODELS.flatMap((base) =>
  WEIGHT_FORMATS.filter((format) => format === 'bf16' || GGUF_ARCHITECTURES.has(base.shape.architecture)).map((format) => variant(base, format)),
);

// Bytes per 256 values of the GGUF block types a quantisation uses.
const BLOCK_BYTES_PER_256 = { Q4_K: 144, Q6_K: 210, Q5_0: 176, Q8_0: 272, F32: 1024 } as const;
type BlockType = keyof typeof BLOCK_BYTES_PER_256;

// llama.cpp's Q4_K_M: Q6_K for the output head (the embedding when tied) and for attn_v and
// ffn_down in the first and last eighth of the layers and every third between, Q4_K for the
// rest; a matrix whose rows do not split into 256-value blocks takes the fallback type (Q5_0
// for Q4_K, Q8_0 for Q6_K). Q8_0 everywhere in a Q8_0 file. Norms and biases stay f32.
function moreBits(layer: number, layers: number): boolean {
  const eighth = Math.floor(layers / 8);
  return layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}
function blockType(type: BlockType, columns: number): BlockType {
  if (columns % 256 === 0 || type === 'Q8_0' || type === 'F32') return type;
  return type === 'Q4_K' ? 'Q5_0' : 'Q8_0';
}
const matrixBytes = (type: BlockType, rows: number, columns: number) => (rows * columns * BLOCK_BYTES_PER_256[blockType(type, columns)]) / 256;

/**
 * Bytes of a model's weights in `format`: as stored in the file (`onCuda` false), or as the
 * CUDA backend holds them on the GPU (`onCuda` true): GGUF matrices in their blocks; an untied
 * token embedding stays in host memory (none of it on the GPU); a tied one is the output matrix
 * too, in its blocks.
 */
export function weightBytes(shape: ModelShape, format: WeightFormat, onCuda = false): number {
  const parameters = parameterCount(shape);
  const hostEmbedding = onCuda && !shape.tiedEmbeddings;
  if (format === 'bf16') return (parameters - (hostEmbedding ? shape.vocabSize * shape.hiddenSize : 0)) * 2;
  const h = shape.hiddenSize;
  const q = shape.heads * shape.headDim;
  const kv = shape.kvHeads * shape.headDim;
  const quantised = (type: BlockType): BlockType => (format === 'Q8_0' ? 'Q8_0' : type);
  let bytes = 0;
  let matrixParameters = 0;
  const matrix = (type: BlockType, rows: number, columns: number) => {
    bytes += matrixBytes(quantised(type), rows, columns);
    matrixParameters += rows * columns;
  };
  const embeddingType: BlockType = shape.tiedEmbeddings ? 'Q6_K' : 'Q4_K';
  const embeddingBytes = matrixBytes(quantised(embeddingType), shape.vocabSize, h);
  matrix(embeddingType, shape.vocabSize, h);
  if (!shape.tiedEmbeddings) matrix('Q6_K', shape.vocabSize, h);
  for (let layer = 0; layer < shape.layers; layer++) {
    const more = moreBits(layer, shape.layers);
    matrix('Q4_K', q, h);
    matrix('Q4_K', kv, h);
    matrix(more ? 'Q6_K' : 'Q4_K', kv, h);
    matrix('Q4_K', h, q);
    matrix('Q4_K', shape.intermediateSize, h);
    matrix('Q4_K', shape.intermediateSize, h);
    matrix(more ? 'Q6_K' : 'Q4_K', h, shape.intermediateSize);
  }
  bytes += (parameters - matrixParameters) * 4; // norms and biases, f32
  // A tied embedding is Q6_K (Q8_0 where its rows do not split into 256-value blocks), both
  // kept in their blocks.
  return hostEmbedding ? bytes - embeddingBytes : bytes;
}

export interface CatalogueFacts {
  parameters: number;
  downloadBytes: number;
  memory: MemoryEstimate;
}

// Parameters, download size and the memory to run at `contextTokens` (0: the model's maximum),
// with the KV cache as the backend keeps it: bf16 on a CUDA GPU (kvFormatOn(true), where the
// weights are counted as the CUDA backend holds them), f32 on the CPU.
export function catalogueFacts(model: CatalogueModel, contextTokens: number, kvFormat: KvFormat = 'f32'): CatalogueFacts {
  const parameters = parameterCount(model.shape);
  const fileBytes = weightBytes(model.shape, model.weights);
  const resident = weightBytes(model.shape, model.weights, kvFormat !== 'f32');
  return { parameters, downloadBytes: fileBytes + model.tokenizerBytes, memory: estimateMemory(model.shape, resident, contextTokens, kvFormat) };
}

// The catalogue model to recommend for `freeBytes` of memory (the GPU's where the engine runs
// on one): the largest that fits at `contextTokens`, in its most precise weight format that
// fits; undefined when none does.
export function recommendedModel(contextTokens: number, freeBytes: number, kvFormat: KvFormat): CatalogueModel | undefined {
  let best: { model: CatalogueModel; parameters: number; rank: number } | undefined;
  for (const model of CATALOGUE) {
    const facts = catalogueFacts(model, contextTokens, kvFormat);
    if (!fitsIn(facts.memory, freeBytes)) continue;
    const rank = WEIGHT_FORMATS.indexOf(model.weights);
    if (!best || facts.parameters > best.parameters || (facts.parameters === best.parameters && rank < best.rank)) {
      best = { model, parameters: facts.parameters, rank };
    }
  }
  return best?.model;
}

// The hub files a model folder needs: configs, tokenizer, safetensors weights and their index.
const NEEDED =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors\.index\.json|[^/]+\.safetensors)$/;
export function isModelFile(file: Pick<HubFile, 'path'>): boolean {
  return NEEDED.test(file.path);
}

/**
 * The files to download for `model` from its repository's listing: a bf16 model's folder
 * files, or the one GGUF file of its quantisation (e.g. qwen2.5-coder-7b-instruct-q4_k_m.gguf).
 * A quantisation that the repository holds only in split parts (-00001-of-00002.gguf), or not
 * at all, is refused with what the repository has (ERR_TIDAL_HUB).
 */
export function selectModelFiles<T extends Pick<HubFile, 'path'>>(model: CatalogueModel, files: readonly T[]): T[] {
  if (model.weights === 'bf16') return files.filter(isModelFile);
  const quant = model.weights.toLowerCase();
  const single = files.filter((file) => !file.path.includes('/') && file.path.toLowerCase().endsWith(`-${quant}.gguf`));
  if (single.length === 1) return single;
  const ggufs = files.filter((file) => file.path.toLowerCase().endsWith('.gguf')).map((file) => file.path);
  const parts = ggufs.filter((name) => new RegExp(`-${quant}-\\d+-of-\\d+\\.gguf$`, 'i').test(name));
  const what =
    single.length > 1
      ? `more than one ${model.weights} file (${single.map((file) => file.path).join(', ')})`
      : parts.length > 0
        ? `${model.weights} only in ${parts.length} split parts, which Tidal does not read yet`
        : `no ${model.weights} file${ggufs.length > 0 ? ` (its GGUF files: ${ggufs.slice(0, 8).join(', ')})` : ''}`;
  throw new TidalError('ERR_TIDAL_HUB', `${model.repo} has ${what}. Pick the model in another format, or download a .gguf yourself and choose GGUF file….`);
}

export function catalogueFolder(modelsFolder: string, model: CatalogueModel): string {
  return path.join(modelsFolder, model.id);
}
