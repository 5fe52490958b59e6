// Checks a model before the engine loads it: a Hugging Face folder (config.json, tokenizer,
// safetensors weights) or a .gguf file. Problems come back as messages that say what to do;
// errors stop the load, warnings (memory) let the user decide.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { ENGINE_GGML_TYPES, GGML_TYPES, GgufFormatError, GgufHeader, ggmlTensorBytes, metadataArray, metadataNumber, metadataString, readGgufHeader } from './gguf';
import { checkGgufTokenizer, GgufTokenizerError } from './ggufTokenizer';
import { checkTokenizerFitsModel, ggufEmbeddingRows } from './modelTokenizer';
import { estimateMemory, formatBytes, MemoryEstimate, ModelConfigError, ModelShape, parameterCount, shapeFromConfig } from './modelShape';

export interface ValidationIssue {
  severity: 'error' | 'warning';
  message: string;
}

export interface ModelSummary {
  kind: 'folder' | 'gguf';
  architecture: string;
  dtype: string;
  parameters: number;
  fileBytes: number; // weights on disk
  memory: MemoryEstimate;
}

export interface ValidationResult {
  ok: boolean; // no errors
  issues: ValidationIssue[];
  summary?: ModelSummary;
}

export interface ValidationOptions {
  contextTokens: number; // 0: the model's maximum
  freeMemoryBytes: number; // os.freemem()
  gpuFreeBytes?: number; // when the engine runs on a GPU and knows its free memory
}

const SAFETENSORS_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const CONFIG_DTYPES: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const MAX_HEADER_BYTES = 100 << 20;

interface SafetensorsTensor {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function readSafetensorsHeader(file: string): { tensors: Record<string, SafetensorsTensor>; dataStart: number } {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const lengthBytes = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lengthBytes, 0, 8, 0) !== 8) throw new Error('it is shorter than a safetensors header');
    const length = Number(lengthBytes.readBigUInt64LE(0));
    if (length <= 0 || length > MAX_HEADER_BYTES || 8 + length > size) throw new Error(`its header length ${length} does not fit the file`);
    const header = Buffer.alloc(length);
    if (readSync(fd, header, 0, length, 8) !== length) throw new Error('its header could not be read');
    const parsed = JSON.parse(header.toString('utf8')) as Record<string, unknown>;
    delete parsed.__metadata__;
    return { tensors: parsed as Record<string, SafetensorsTensor>, dataStart: 8 + length };
  } finally {
    closeSync(fd);
  }
}

function readJson(file: string): Record<string, unknown> {
  const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('it is not a JSON object');
  return value as Record<string, unknown>;
}

function memoryIssues(memory: MemoryEstimate, options: ValidationOptions, issues: ValidationIssue[]): void {
  const need = formatBytes(memory.totalBytes);
  const detail = `${formatBytes(memory.weightBytes)} weights + ${formatBytes(memory.kvBytes)} KV cache at ${memory.contextTokens} tokens`;
  const advice = 'Pick a smaller model, or lower tidal.context.maxTokens.';
  if (options.gpuFreeBytes !== undefined && memory.totalBytes > options.gpuFreeBytes) {
    issues.push({ severity: 'warning', message: `This model needs about ${need} (${detail}) but the GPU has ${formatBytes(options.gpuFreeBytes)} free. ${advice}` });
  } else if (options.gpuFreeBytes === undefined && memory.totalBytes > options.freeMemoryBytes) {
    issues.push({ severity: 'warning', message: `This model needs about ${need} (${detail}) but only ${formatBytes(options.freeMemoryBytes)} of memory is free. ${advice}` });
  }
}

// Shape checks of the main tensors against config.json; the first mismatch is enough.
function checkShapes(shape: ModelShape, tensors: Map<string, SafetensorsTensor>): string | undefined {
  const q = shape.heads * shape.headDim;
  const kv = shape.kvHeads * shape.headDim;
  const expected: [string, number[]][] = [
    ['model.embed_tokens.weight', [shape.vocabSize, shape.hiddenSize]],
    ['model.norm.weight', [shape.hiddenSize]],
  ];
  for (let layer = 0; layer < shape.layers; layer++) {
    const p = `model.layers.${layer}.`;
    expected.push(
      [`${p}self_attn.q_proj.weight`, [q, shape.hiddenSize]],
      [`${p}self_attn.k_proj.weight`, [kv, shape.hiddenSize]],
      [`${p}self_attn.v_proj.weight`, [kv, shape.hiddenSize]],
      [`${p}self_attn.o_proj.weight`, [shape.hiddenSize, q]],
      [`${p}mlp.gate_proj.weight`, [shape.intermediateSize, shape.hiddenSize]],
      [`${p}mlp.up_proj.weight`, [shape.intermediateSize, shape.hiddenSize]],
      [`${p}mlp.down_proj.weight`, [shape.hiddenSize, shape.intermediateSize]],
    );
  }
  if (!shape.tiedEmbeddings) expected.push(['lm_head.weight', [shape.vocabSize, shape.hiddenSize]]);
  for (const [name, dims] of expected) {
    const tensor = tensors.get(name);
    if (!tensor) return `the weights have no tensor '${name}'`;
    if (tensor.shape.join('x') !== dims.join('x')) return `'${name}' is ${tensor.shape.join('x')}, config.json implies ${dims.join('x')}`;
  }
  return undefined;
}

// Layer tensors past config.json's layer count: the engine refuses them (a config that does
// not describe the weights would run only the first layers).
function layersBeyondConfig(shape: ModelShape, tensors: Map<string, SafetensorsTensor>): string | undefined {
  const extra = new Map<number, number>();
  for (const name of tensors.keys()) {
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    if (layer && Number(layer[1]) >= shape.layers) extra.set(Number(layer[1]), (extra.get(Number(layer[1])) ?? 0) + 1);
  }
  if (extra.size === 0) return undefined;
  const layers = [...extra.keys()].sort((a, b) => a - b);
  const count = [...extra.values()].reduce((a, b) => a + b, 0);
  const named = layers.slice(0, 3).map((l) => `model.layers.${l}.*`).join(', ') + (layers.length > 3 ? ` and ${layers.length - 3} more layers` : '');
  return `${named} (${count} tensors) are in the weights but not used by config.json's ${shape.layers} layers (num_hidden_layers)`;
}

// Why a folder's tokenizer cannot drive a model of `vocabSize` tokens, or undefined.
function tokenizerMismatch(tokenizerPath: string, tokenizerConfigPath: string, vocabSize: number): string | undefined {
  try {
    const tokenizerJson: unknown = JSON.parse(readFileSync(tokenizerPath, 'utf8'));
    const tokenizerConfig = existsSync(tokenizerConfigPath) ? readJson(tokenizerConfigPath) : {};
    checkTokenizerFitsModel(tokenizerJson, tokenizerConfig, vocabSize, tokenizerPath);
    return undefined;
  } catch (e) {
    return e instanceof SyntaxError ? `${tokenizerPath} could not be read (${e.message}). Download the tokenizer files again.` : (e as Error).message;
  }
}

export function validateModelFolder(folder: string, options: ValidationOptions): ValidationResult {
  const issues: ValidationIssue[] = [];
  const error = (message: string): ValidationResult => {
    issues.push({ severity: 'error', message });
    return { ok: false, issues };
  };
  if (!existsSync(folder) || !statSync(folder).isDirectory()) return error(`${folder} is not a folder. Pick a model folder or a .gguf file.`);
  const configPath = path.join(folder, 'config.json');
  if (!existsSync(configPath)) return error(`${folder} has no config.json, so it is not a Hugging Face model folder. Pick the folder that holds config.json, or a .gguf file.`);
  let config: Record<string, unknown>;
  let shape: ModelShape;
  try {
    config = readJson(configPath);
    shape = shapeFromConfig(config);
  } catch (e) {
    return error(e instanceof ModelConfigError ? e.message : `config.json could not be read (${(e as Error).message}). Download the model again.`);
  }
  if (config.quantization_config) {
    const method = (config.quantization_config as { quant_method?: string }).quant_method ?? 'unknown';
    return error(`This model is quantised with '${method}', which Tidal does not read. Use the bf16/f16 version of the model, or a GGUF file.`);
  }
  const configDtype = String(config.torch_dtype ?? config.dtype ?? 'bfloat16');
  if (!CONFIG_DTYPES[configDtype]) return error(`config.json says dtype '${configDtype}'; Tidal runs float32, float16 and bfloat16 weights. Use such a version of the model.`);

  const tokenizerPath = path.join(folder, 'tokenizer.json');
  const tokenizerConfigPath = path.join(folder, 'tokenizer_config.json');
  if (!existsSync(tokenizerPath)) {
    issues.push({ severity: 'error', message: `${folder} has no tokenizer.json. Download the tokenizer files with the model (tokenizer.json and tokenizer_config.json).` });
  } else {
    const tokenizerProblem = tokenizerMismatch(tokenizerPath, tokenizerConfigPath, shape.vocabSize);
    if (tokenizerProblem) issues.push({ severity: 'error', message: tokenizerProblem });
    if (!existsSync(tokenizerConfigPath)) {
      issues.push({ severity: 'warning', message: 'tokenizer_config.json is missing: no chat template and no special-token settings. Chat may not work; completions will.' });
    }
  }

  // Weight files: one model.safetensors, or the shards an index names.
  let files: string[];
  const indexPath = path.join(folder, 'model.safetensors.index.json');
  if (existsSync(indexPath)) {
    try {
      const weightMap = readJson(indexPath).weight_map as Record<string, string>;
      files = [...new Set(Object.values(weightMap))];
    } catch (e) {
      return error(`model.safetensors.index.json could not be read (${(e as Error).message}). Download the model again.`);
    }
  } else if (existsSync(path.join(folder, 'model.safetensors'))) {
    files = ['model.safetensors'];
  } else {
    return error(`${folder} has no model.safetensors (or shards with model.safetensors.index.json). Tidal reads safetensors weights; download them, or pick a .gguf file.`);
  }
  const missing = files.filter((f) => !existsSync(path.join(folder, f)));
  if (missing.length > 0) return error(`Weight files are missing: ${missing.join(', ')}. The download is incomplete; download the model again.`);

  const tensors = new Map<string, SafetensorsTensor>();
  let dataBytes = 0;
  let fileBytes = 0;
  const dtypes = new Set<string>();
  for (const file of files) {
    const full = path.join(folder, file);
    let header;
    try {
      header = readSafetensorsHeader(full);
    } catch (e) {
      return error(`${file} is not a valid safetensors file: ${(e as Error).message}. Download the model again.`);
    }
    const size = statSync(full).size;
    fileBytes += size;
    let end = 0;
    for (const [name, tensor] of Object.entries(header.tensors)) {
      const bytes = SAFETENSORS_BYTES[tensor.dtype];
      if (!bytes) return error(`Tensor '${name}' in ${file} is ${tensor.dtype}; Tidal reads F32, F16 and BF16 weights. Use a bf16/f16 version of the model or a GGUF file.`);
      dtypes.add(tensor.dtype);
      const elements = tensor.shape.reduce((a, b) => a * b, 1);
      if (tensor.data_offsets[1] - tensor.data_offsets[0] !== elements * bytes) return error(`Tensor '${name}' in ${file} has the wrong byte length for its shape; the file is damaged. Download the model again.`);
      end = Math.max(end, tensor.data_offsets[1]);
      dataBytes += elements * bytes;
      tensors.set(name, tensor);
    }
    if (header.dataStart + end > size) {
      return error(`${file} is cut short (${size} of ${header.dataStart + end} bytes). The download is incomplete; download the model again.`);
    }
  }
  const shapeProblem = checkShapes(shape, tensors) ?? layersBeyondConfig(shape, tensors);
  if (shapeProblem) return error(`The weights do not match config.json: ${shapeProblem}. The folder mixes files of different models; download the model again.`);
  const parameters = parameterCount(shape);
  let elements = 0;
  for (const t of tensors.values()) elements += t.shape.reduce((a, b) => a * b, 1);
  if (elements !== parameters) {
    issues.push({ severity: 'warning', message: `The weights hold ${elements} values where config.json implies ${parameters}; the engine refuses tensors config.json does not use, so loading may fail.` });
  }
  const memory = estimateMemory(shape, dataBytes, options.contextTokens);
  memoryIssues(memory, options, issues);
  const ok = !issues.some((i) => i.severity === 'error');
  return { ok, issues, summary: { kind: 'folder', architecture: shape.architecture, dtype: [...dtypes].join('+'), parameters, fileBytes, memory } };
}

// GGUF architectures the engine maps (native/src/model/gguf_model.cpp).
const GGUF_ARCHITECTURES = ['llama', 'qwen2'];

function ggufShape(header: GgufHeader, architecture: 'llama' | 'qwen2'): ModelShape {
  const key = (k: string) => `${architecture}.${k}`;
  const need = (k: string): number => {
    const v = metadataNumber(header, key(k));
    if (v === undefined || !Number.isInteger(v) || v <= 0) throw new GgufFormatError(`GGUF metadata '${key(k)}' is missing or not a positive integer.`);
    return v;
  };
  const hiddenSize = need('embedding_length');
  const heads = need('attention.head_count');
  const tokens = metadataArray(header, 'tokenizer.ggml.tokens');
  const embed = header.tensors.find((t) => t.name === 'token_embd.weight');
  return {
    architecture,
    layers: need('block_count'),
    hiddenSize,
    heads,
    kvHeads: metadataNumber(header, key('attention.head_count_kv')) ?? heads,
    headDim: metadataNumber(header, key('attention.key_length')) ?? hiddenSize / heads,
    intermediateSize: need('feed_forward_length'),
    vocabSize: metadataNumber(header, key('vocab_size')) ?? (embed ? Number(embed.shape[1]) : tokens?.length ?? 0),
    tiedEmbeddings: !header.tensors.some((t) => t.name === 'output.weight'),
    maxPositions: metadataNumber(header, key('context_length')) ?? 4096,
  };
}

export function validateGgufFile(file: string, options: ValidationOptions): ValidationResult {
  const issues: ValidationIssue[] = [];
  const error = (message: string): ValidationResult => {
    issues.push({ severity: 'error', message });
    return { ok: false, issues };
  };
  if (!existsSync(file) || !statSync(file).isFile()) return error(`${file} is not a file. Pick a .gguf file or a model folder.`);
  let header: GgufHeader;
  try {
    header = readGgufHeader(file);
  } catch (e) {
    return error(`${(e as Error).message} Download the file again, or pick another model.`);
  }
  const architecture = metadataString(header, 'general.architecture') ?? 'none';
  if (!GGUF_ARCHITECTURES.includes(architecture)) {
    return error(`GGUF architecture '${architecture}' is not supported (Tidal reads llama and qwen2 GGUF files). Pick another file, or the model's Hugging Face folder.`);
  }
  const unsupported = [...new Set(header.tensors.filter((t) => !ENGINE_GGML_TYPES.has(t.type)).map((t) => GGML_TYPES.get(t.type)?.name ?? `type ${t.type}`))];
  if (unsupported.length > 0) {
    return error(`The file stores tensors as ${unsupported.join(', ')}, which Tidal does not dequantise (it reads F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1, Q4_K, Q5_K, Q6_K). Pick a Q4_K_M, Q6_K or Q8_0 file instead.`);
  }
  let shape: ModelShape;
  try {
    shape = ggufShape(header, architecture as 'llama' | 'qwen2');
    checkGgufTokenizer(header);
  } catch (e) {
    if (e instanceof GgufTokenizerError || e instanceof GgufFormatError) return error(e.message);
    throw e;
  }
  const tokens = metadataArray(header, 'tokenizer.ggml.tokens')?.length ?? 0;
  const rows = ggufEmbeddingRows(header);
  if (rows !== undefined && tokens > rows) {
    return error(`The GGUF tokenizer has ${tokens} tokens but the model's embedding only ${rows} rows, so the tokenizer and the model do not belong together. Pick another file.`);
  }
  // In memory, F32/F16/BF16 tensors stay as stored; block-quantised ones become F32.
  let memoryWeights = 0;
  let fileBytes = 0;
  let elements = 0;
  const types = new Set<string>();
  for (const t of header.tensors) {
    const count = Number(t.shape.reduce((a, b) => a * b, 1n));
    const stored = Number(ggmlTensorBytes(t.type, t.shape) ?? 0n);
    const info = GGML_TYPES.get(t.type)!;
    types.add(info.name);
    fileBytes += stored;
    elements += count;
    memoryWeights += info.blockElements === 1 ? stored : count * 4;
  }
  const memory = estimateMemory(shape, memoryWeights, options.contextTokens);
  memoryIssues(memory, options, issues);
  const ok = !issues.some((i) => i.severity === 'error');
  return { ok, issues, summary: { kind: 'gguf', architecture, dtype: [...types].join('+'), parameters: elements, fileBytes, memory } };
}

// A folder or a .gguf file.
export function validateModel(modelPath: string, options: ValidationOptions): ValidationResult {
  if (existsSync(modelPath) && statSync(modelPath).isFile()) return validateGgufFile(modelPath, options);
  return validateModelFolder(modelPath, options);
}
