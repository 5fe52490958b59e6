// Where the configured model is and which engine backend runs it: pure functions of the
// settings, unit-tested without VS Code.
import { existsSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { TidalSettings } from './settings';

/** A .gguf file by its name (the engine tells GGUF files by their magic when it loads them). */
export function isGgufPath(modelPath: string): boolean {
  return modelPath.toLowerCase().endsWith('.gguf');
}

/** Where the model at `modelPath` lives and where its tokenizer files are. */
export interface ModelLocation {
  modelDir: string;
  tokenizerDir?: string;
  embedded: boolean;
}

export function resolveModelLocation(modelPath: string, embeddedModelDir: string, workspaceRoot?: string): ModelLocation {
  const trimmed = modelPath.trim();
  if (trimmed === '') return { modelDir: embeddedModelDir, embedded: true };
  // ~ is the home folder on every platform (os.homedir(): HOME is unset on Windows), with / or \\ after it.
  const expanded = /^~([/\\]|$)/.test(trimmed) ? path.join(os.homedir(), trimmed.slice(2)) : trimmed;
  const absolute = path.isAbsolute(expanded) ? expanded : path.resolve(workspaceRoot ?? process.cwd(), expanded);
  if (isGgufPath(absolute)) {
    // A GGUF file carries its weights and tokenizer; a tokenizer.json beside it wins.
    const besideIt = path.dirname(absolute);
    return existsSync(path.join(besideIt, 'tokenizer.json'))
      ? { modelDir: absolute, tokenizerDir: besideIt, embedded: false }
      : { modelDir: absolute, embedded: false };
  }
  return { modelDir: absolute, embedded: false };
}

/** The engine backend for the setting: CUDA where it was built and a usable GPU is present. */
export function engineBackendFor(setting: TidalSettings['backend'], cudaUsable: boolean, compiled: readonly string[]): 'cpu' | 'cuda' | 'webgpu' {
  if (setting === 'cuda' || setting === 'webgpu') return setting;
  if (setting === 'auto' && cudaUsable && compiled.includes('cuda')) return 'cuda';
  return 'cpu';
}

/** Why the model at `location` cannot be loaded, or undefined when it may be. */
export function missingModelProblem(location: ModelLocation): string | undefined {
  if (!existsSync(location.modelDir)) {
    return location.embedded
      ? `The embedded model is missing from the extension (${location.modelDir}); reinstall Tidal Code.`
      : `The model path ${location.modelDir} does not exist. Fix tidal.modelPath or run "Tidal: Select Model".`;
  }
  const isFile = statSync(location.modelDir).isFile();
  if (isFile && !isGgufPath(location.modelDir)) {
    return `tidal.modelPath points to the file ${location.modelDir}: use a model folder (config.json + *.safetensors) or a .gguf file.`;
  }
  return undefined;
}
