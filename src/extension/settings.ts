// Typed view of the `tidal.*` settings. `readSettings` is pure (it takes a getter), so the
// validation is unit-tested without VS Code.
import type { AttentionMode, BackendSetting } from '../engine/protocol';

export interface TidalSettings {
  modelPath: string;
  backend: BackendSetting;
  remoteUrl: string;
  remoteModel: string;
  attention: { mode: AttentionMode; tokenBudget: number; selectionLayers: number[] };
  context: { maxTokens: number; include: string[]; exclude: string[] };
  inlineCompletions: { enabled: boolean; debounceMs: number };
}

export type SettingGetter = (key: string) => unknown;

export interface SettingsResult {
  settings: TidalSettings;
  // One line per setting that was invalid and replaced by its default, for the log.
  problems: string[];
}

const BACKENDS: readonly BackendSetting[] = ['auto', 'cuda', 'cpu', 'remote'];
const MODES: readonly AttentionMode[] = ['full', 'tidal', 'quest'];

export const DEFAULT_SETTINGS: TidalSettings = {
  modelPath: '',
  backend: 'auto',
  remoteUrl: 'http://127.0.0.1:8765/v1',
  remoteModel: '',
  attention: { mode: 'tidal', tokenBudget: 2048, selectionLayers: [] },
  context: {
    maxTokens: 0,
    include: ['**/*'],
    exclude: ['**/node_modules/**', '**/.git/**', '**/dist/**', '**/build/**', '**/*.min.js', '**/*.lock'],
  },
  inlineCompletions: { enabled: true, debounceMs: 150 },
};

export function readSettings(get: SettingGetter): SettingsResult {
  const problems: string[] = [];

  function pick<T>(key: string, fallback: T, valid: (value: unknown) => boolean): T {
    const value = get(key);
    if (value === undefined || value === null) return fallback;
    if (valid(value)) return value as T;
    problems.push(`tidal.${key}: ${JSON.stringify(value)} is not valid; using ${JSON.stringify(fallback)}`);
    return fallback;
  }
  const isString = (v: unknown) => typeof v === 'string';
  const isBool = (v: unknown) => typeof v === 'boolean';
  const intIn = (lo: number, hi: number) => (v: unknown) => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  const stringArray = (v: unknown) => Array.isArray(v) && v.every((item) => typeof item === 'string');
  const isHttpUrl = (v: unknown) => {
    if (typeof v !== 'string') return false;
    try {
      const url = new URL(v);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      return false;
    }
  };

  const d = DEFAULT_SETTINGS;
  const selectionLayers = pick<number[]>('attention.selectionLayers', d.attention.selectionLayers, (v) =>
    Array.isArray(v) && v.every((layer) => Number.isInteger(layer) && layer >= 0),
  );
  return {
    settings: {
      modelPath: pick('modelPath', d.modelPath, isString),
      backend: pick('backend', d.backend, (v) => BACKENDS.includes(v as BackendSetting)),
      remoteUrl: pick('remoteUrl', d.remoteUrl, isHttpUrl),
      remoteModel: pick('remoteModel', d.remoteModel, isString),
      attention: {
        mode: pick('attention.mode', d.attention.mode, (v) => MODES.includes(v as AttentionMode)),
        tokenBudget: pick('attention.tokenBudget', d.attention.tokenBudget, intIn(16, 1 << 20)),
        selectionLayers: [...new Set(selectionLayers)].sort((a, b) => a - b),
      },
      context: {
        maxTokens: pick('context.maxTokens', d.context.maxTokens, intIn(0, 1 << 24)),
        include: pick('context.include', d.context.include, stringArray),
        exclude: pick('context.exclude', d.context.exclude, stringArray),
      },
      inlineCompletions: {
        enabled: pick('inlineCompletions.enabled', d.inlineCompletions.enabled, isBool),
        debounceMs: pick('inlineCompletions.debounceMs', d.inlineCompletions.debounceMs, intIn(0, 5000)),
      },
    },
    problems,
  };
}
