// Typed view of the `tidal.*` settings. `readSettings` is pure (it takes a getter), so the
// validation is unit-tested without VS Code.
import { DEFAULT_LANGUAGE_SWITCH, isLanguageSwitch, type LanguageSwitch } from '../core/completion/languageSwitch';
import type { AttentionMode, BackendSetting } from '../core/protocol/protocol';

export interface TidalSettings {
  modelPath: string;
  backend: BackendSetting;
  remoteUrl: string;
  remoteModel: string;
  /** sparsePrefill: a keystroke's recomputed prompt tokens run under the same sparse attention (completions). */
  attention: { mode: AttentionMode; tokenBudget: number; selectionLayers: number[]; sparsePrefill: boolean };
  context: {
    maxTokens: number;
    include: string[];
    exclude: string[];
    /** After a change, move the KV of the files behind it instead of recomputing it. */
    reuseShiftedKv: boolean;
    /** Keep the repository's KV on disk across restarts. */
    persist: boolean;
    persistMaxGB: number;
  };
  /** kvCache: how the CUDA engine stores K/V ('fp8': E4M3 with a scale per row, half of bf16's memory). */
  engine: { maxKvMemoryGB: number; kvCache: 'bf16' | 'fp8' };
  /** `languages`: on or off per VS Code language id, "*" for the others (completionsOnFor). */
  inlineCompletions: { enabled: boolean; debounceMs: number; languages: LanguageSwitch };
}

export type SettingGetter = (key: string) => unknown;

export interface SettingsResult {
  settings: TidalSettings;
  // One line per setting that was invalid and replaced by its default, for the log.
  problems: string[];
}

const BACKENDS: readonly BackendSetting[] = ['auto', 'cuda', 'cpu', 'webgpu', 'remote'];
const MODES: readonly AttentionMode[] = ['full', 'tidal', 'quest'];

export const DEFAULT_SETTINGS: TidalSettings = {
  modelPath: '',
  backend: 'auto',
  remoteUrl: 'http://127.0.0.1:8765/v1',
  remoteModel: '',
  attention: { mode: 'tidal', tokenBudget: 2048, selectionLayers: [], sparsePrefill: false },
  context: {
    maxTokens: 0,
    include: ['**/*'],
    exclude: ['**/node_modules/**', '**/.git/**', '**/dist/**', '**/build/**', '**/*.min.js', '**/*.lock'],
    reuseShiftedKv: true,
    persist: true,
    persistMaxGB: 20,
  },
  engine: { maxKvMemoryGB: 0, kvCache: 'bf16' },
  inlineCompletions: { enabled: true, debounceMs: 150, languages: DEFAULT_LANGUAGE_SWITCH },
};

/** Bytes in one GB of the settings (tidal.context.persistMaxGB, tidal.engine.maxKvMemoryGB). */
export const BYTES_PER_GB = 1024 ** 3;

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
  const numberIn = (lo: number, hi: number) => (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
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
  const selectionLayers = pick<number[]>(
    'attention.selectionLayers',
    d.attention.selectionLayers,
    (v) => Array.isArray(v) && v.every((layer) => Number.isInteger(layer) && layer >= 0),
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
        sparsePrefill: pick('attention.sparsePrefill', d.attention.sparsePrefill, isBool),
      },
      context: {
        maxTokens: pick('context.maxTokens', d.context.maxTokens, intIn(0, 1 << 24)),
        include: pick('context.include', d.context.include, stringArray),
        exclude: pick('context.exclude', d.context.exclude, stringArray),
        reuseShiftedKv: pick('context.reuseShiftedKv', d.context.reuseShiftedKv, isBool),
        persist: pick('context.persist', d.context.persist, isBool),
        persistMaxGB: pick('context.persistMaxGB', d.context.persistMaxGB, numberIn(0, 1 << 20)),
      },
      engine: {
        maxKvMemoryGB: pick('engine.maxKvMemoryGB', d.engine.maxKvMemoryGB, numberIn(0, 1 << 20)),
        kvCache: pick('engine.kvCache', d.engine.kvCache, (v) => v === 'bf16' || v === 'fp8'),
      },
      inlineCompletions: {
        enabled: pick('inlineCompletions.enabled', d.inlineCompletions.enabled, isBool),
        debounceMs: pick('inlineCompletions.debounceMs', d.inlineCompletions.debounceMs, intIn(0, 5000)),
        languages: pick('inlineCompletions.languages', d.inlineCompletions.languages, isLanguageSwitch),
      },
    },
    problems,
  };
}

/** The KV cache cap of tidal.engine.maxKvMemoryGB in bytes; undefined: no cap. */
export function maxKvBytesOf(settings: TidalSettings): number | undefined {
  const gb = settings.engine.maxKvMemoryGB;
  return gb > 0 ? Math.floor(gb * BYTES_PER_GB) : undefined;
}
