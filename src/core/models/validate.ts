// Checks a model before the engine loads it: a Hugging Face folder (config.json, tokenizer,
// safetensors weights) or a .gguf file. The engine reads the model files (inspectModel:
// config, headers, shapes, dtypes); here its problems become messages that say what to do,
// and the parts the extension owns are added: the tokenizer files and whether the model fits
// in memory. Errors stop the load, warnings (memory, no engine here) let the user decide.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { ModelInspection, ModelProblem, ModelReader } from '../../native/addon';
import { checkGgufTokenizer } from '../tokenizer/ggufTokenizer';
import { estimateMemory, formatBytes, kvFormatOn, MemoryEstimate, ModelShape } from './modelShape';
import { checkTokenizerFitsModel } from '../tokenizer/modelTokenizer';

export interface ValidationIssue {
  severity: 'error' | 'warning';
  message: string;
}

export interface ModelSummary {
  kind: 'folder' | 'gguf';
  architecture: string;
  dtype: string; // storage types, most bytes first ('Q4_K+F32')
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
  kvCache?: 'bf16' | 'fp8'; // tidal.engine.kvCache: the GPU's KV format (bf16 when absent)
}

// What the user can do about each kind of problem the engine finds.
const ADVICE: Record<ModelProblem['kind'], string> = {
  missing: 'Pick a model folder (config.json, *.safetensors, tokenizer.json) or a .gguf file, or download the model again.',
  truncated: 'The download is incomplete or the file is damaged: download the model again.',
  malformed: 'The file is damaged or not a model file: download the model again, or pick another model.',
  unsupported: 'Pick another model (Tidal: Select Model lists models Tidal runs).',
  mismatch: 'The files do not belong to one model: download the model again.',
};

export function problemMessage(problem: ModelProblem): string {
  return `${problem.message}. ${ADVICE[problem.kind]}`;
}

function memoryIssues(memory: MemoryEstimate, options: ValidationOptions, issues: ValidationIssue[]): void {
  const need = formatBytes(memory.totalBytes);
  const detail = `${formatBytes(memory.weightBytes)} weights + ${formatBytes(memory.kvBytes)} ${memory.kvFormat} KV cache at ${memory.contextTokens} tokens`;
  const advice = 'Pick a smaller model, or lower tidal.context.maxTokens.';
  if (options.gpuFreeBytes !== undefined && memory.totalBytes > options.gpuFreeBytes) {
    issues.push({
      severity: 'warning',
      message: `This model needs about ${need} (${detail}) but the GPU has ${formatBytes(options.gpuFreeBytes)} free. ${advice}`,
    });
  } else if (options.gpuFreeBytes === undefined && memory.totalBytes > options.freeMemoryBytes) {
    issues.push({
      severity: 'warning',
      message: `This model needs about ${need} (${detail}) but only ${formatBytes(options.freeMemoryBytes)} of memory is free. ${advice}`,
    });
  }
}

function readJson(file: string): Record<string, unknown> {
  const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('it is not a JSON object');
  return value as Record<string, unknown>;
}

// A folder's tokenizer files: present, readable, and fitting a model of `vocabSize` tokens.
function folderTokenizerIssues(folder: string, vocabSize: number | undefined, issues: ValidationIssue[]): void {
  const tokenizerPath = path.join(folder, 'tokenizer.json');
  const tokenizerConfigPath = path.join(folder, 'tokenizer_config.json');
  if (!existsSync(tokenizerPath)) {
    issues.push({
      severity: 'error',
      message: `${folder} has no tokenizer.json. Download the tokenizer files with the model (tokenizer.json and tokenizer_config.json).`,
    });
    return;
  }
  try {
    const tokenizerJson: unknown = JSON.parse(readFileSync(tokenizerPath, 'utf8'));
    const tokenizerConfig = existsSync(tokenizerConfigPath) ? readJson(tokenizerConfigPath) : {};
    checkTokenizerFitsModel(tokenizerJson, tokenizerConfig, vocabSize, tokenizerPath);
  } catch (e) {
    const message = e instanceof SyntaxError ? `${tokenizerPath} could not be read (${e.message}). Download the tokenizer files again.` : (e as Error).message;
    issues.push({ severity: 'error', message });
  }
  if (!existsSync(tokenizerConfigPath)) {
    issues.push({
      severity: 'warning',
      message: 'tokenizer_config.json is missing: no chat template and no special-token settings. Chat may not work; completions will.',
    });
  }
}

// A GGUF file's tokenizer: metadata the engine reads, in a form the host can convert.
function ggufTokenizerIssues(file: string, reader: ModelReader, issues: ValidationIssue[]): void {
  try {
    checkGgufTokenizer(reader.readGgufTokenizer(file));
  } catch (e) {
    issues.push({ severity: 'error', message: (e as Error).message });
  }
}

function shapeOf(inspection: ModelInspection): ModelShape | undefined {
  const { family, shape } = inspection;
  if (!family || !shape) return undefined;
  return { architecture: family, ...shape };
}

/**
 * Validates the model at `modelPath` with the engine's readers. With `reader` undefined (the
 * native engine is missing on this machine, `unavailable` says why) nothing can be checked
 * here: the result is usable with a warning, and the engine checks the model when it loads.
 */
export function validateModel(
  modelPath: string,
  options: ValidationOptions,
  reader: ModelReader | undefined,
  unavailable = 'the native engine is missing',
): ValidationResult {
  if (!reader) {
    return {
      ok: true,
      issues: [{ severity: 'warning', message: `Tidal could not check this model here (${unavailable}); the engine checks it when it loads.` }],
    };
  }
  const inspection = reader.inspectModel(modelPath);
  const issues: ValidationIssue[] = inspection.problems.map((problem) => ({ severity: 'error', message: problemMessage(problem) }));
  const shape = shapeOf(inspection);
  if (inspection.format === 'safetensors') folderTokenizerIssues(modelPath, shape?.vocabSize, issues);
  if (inspection.format === 'gguf' && inspection.problems.length === 0) ggufTokenizerIssues(modelPath, reader, issues);
  if (!shape && issues.length === 0) issues.push({ severity: 'error', message: `The engine could not read the shape of ${modelPath}. Pick another model.` });
  if (issues.some((i) => i.severity === 'error') || !shape) return { ok: false, issues };

  const onGpu = options.gpuFreeBytes !== undefined;
  const weightBytes = onGpu ? inspection.gpuWeightBytes : inspection.loadedWeightBytes;
  const memory = estimateMemory(shape, weightBytes, options.contextTokens, kvFormatOn(onGpu, options.kvCache));
  memoryIssues(memory, options, issues);
  return {
    ok: !issues.some((i) => i.severity === 'error'),
    issues,
    summary: {
      kind: inspection.format === 'gguf' ? 'gguf' : 'folder',
      architecture: shape.architecture,
      dtype: inspection.dtypes.join('+'),
      parameters: inspection.parameters,
      fileBytes: inspection.weightBytes,
      memory,
    },
  };
}
