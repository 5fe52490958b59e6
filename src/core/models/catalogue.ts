// Recommended code models the engine runs, with the numbers of each model's own config.json
// (Qwen/<name> on the Hugging Face hub), so parameter counts, download sizes and memory are
// computed rather than quoted. All are bf16 safetensors.
import * as path from 'node:path';

import type { HubFile } from './hubClient';
import { estimateMemory, fitsIn, KvFormat, MemoryEstimate, ModelShape, parameterCount } from './modelShape';

export interface CatalogueModel {
  id: string; // short id, also the folder name under the models folder
  repo: string; // hub repository
  label: string;
  description: string;
  shape: ModelShape;
  bytesPerParameter: number; // of the stored weights
  tokenizerBytes: number; // tokenizer.json + configs, about
}

const qwen25Coder = (
  size: string,
  shape: Omit<ModelShape, 'architecture' | 'vocabSize' | 'maxPositions' | 'headDim'> & { vocabSize?: number; headDim?: number },
  description: string,
): CatalogueModel => ({
  id: `qwen2.5-coder-${size.toLowerCase()}-instruct`,
  repo: `Qwen/Qwen2.5-Coder-${size}-Instruct`,
  label: `Qwen2.5-Coder ${size} Instruct`,
  description,
  shape: { architecture: 'qwen2', vocabSize: 151936, maxPositions: 32768, headDim: 128, ...shape },
  bytesPerParameter: 2,
  tokenizerBytes: 7_050_000,
});

export const CATALOGUE: readonly CatalogueModel[] = [
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
    bytesPerParameter: 2,
    tokenizerBytes: 11_440_000,
  },
];

export interface CatalogueFacts {
  parameters: number;
  downloadBytes: number;
  memory: MemoryEstimate;
}

// Parameters, download size and the memory to run at `contextTokens` (0: the model's maximum),
// with the KV cache as the backend keeps it (bf16 on a GPU, f32 on the CPU).
export function catalogueFacts(model: CatalogueModel, contextTokens: number, kvFormat: KvFormat = 'f32'): CatalogueFacts {
  const parameters = parameterCount(model.shape);
  const weightBytes = parameters * model.bytesPerParameter;
  return { parameters, downloadBytes: weightBytes + model.tokenizerBytes, memory: estimateMemory(model.shape, weightBytes, contextTokens, kvFormat) };
}

// The catalogue model to recommend for `freeBytes` of memory (the GPU's where the engine runs
// on one): the largest that fits at `contextTokens`, or undefined when none does.
export function recommendedModel(contextTokens: number, freeBytes: number, kvFormat: KvFormat): CatalogueModel | undefined {
  let best: { model: CatalogueModel; parameters: number } | undefined;
  for (const model of CATALOGUE) {
    const facts = catalogueFacts(model, contextTokens, kvFormat);
    if (fitsIn(facts.memory, freeBytes) && (!best || facts.parameters > best.parameters)) best = { model, parameters: facts.parameters };
  }
  return best?.model;
}

// The hub files a model folder needs: configs, tokenizer, safetensors weights and their index.
const NEEDED =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors\.index\.json|[^/]+\.safetensors)$/;
export function isModelFile(file: Pick<HubFile, 'path'>): boolean {
  return NEEDED.test(file.path);
}

export function catalogueFolder(modelsFolder: string, model: CatalogueModel): string {
  return path.join(modelsFolder, model.id);
}
