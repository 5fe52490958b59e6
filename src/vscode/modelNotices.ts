// What the user is told about the model, as pure decisions (unit-tested without VS Code): the
// one-time note that the embedded model is a demo, and the notification a failed model load
// becomes, with the actions that can fix it. modelNotifications.ts shows them.
import type { ModelErrorCause, ModelState } from './modelController';

/** The buttons a model notification may offer. */
export type ModelNoticeAction = 'Select Model' | 'Open Setting' | 'Use Embedded' | 'Show Log' | "Don't Show Again";

/** What globalState remembers about the demo note. */
export const DEMO_NOTICE_KEY = 'tidal.demoModelNotice';
/** `dismissed`: the user asked not to see it again; `modelChosen`: a model of their own has loaded. */
export type DemoNoticeMemory = 'dismissed' | 'modelChosen' | undefined;

export const DEMO_NOTICE_MESSAGE =
  'Tidal is running tidal-code-mini, the embedded demo model. It is there to try the extension out; ' +
  'its answers and completions are not useful. Select a real model for actual work.';

/**
 * Whether to show the demo note now: the embedded model has loaded, tidal.modelPath is empty,
 * the note was not shown in this window yet, and the user has neither dismissed it for good
 * nor loaded a model of their own before.
 */
export function shouldShowDemoNotice(state: ModelState, modelPath: string, memory: DemoNoticeMemory, shownInThisWindow: boolean): boolean {
  if (shownInThisWindow || memory !== undefined) return false;
  return state.state === 'ready' && state.embedded && modelPath.trim() === '';
}

/** What to remember once a model loads: a model of the user's own ends the demo note for good. */
export function demoMemoryAfterLoad(state: ModelState, memory: DemoNoticeMemory): DemoNoticeMemory {
  if (memory === undefined && state.state === 'ready' && !state.embedded) return 'modelChosen';
  return memory;
}

/** A failed model load as a notification: its text, its buttons, and the setting Open Setting opens. */
export interface ModelProblemNotice {
  message: string;
  actions: ModelNoticeAction[];
  /** The setting `Open Setting` opens (absent when there is no such button). */
  setting?: string;
}

/** What is wrong with a model that failed to load, as the notification's headline names it. */
export type ModelProblemKind = 'missingPath' | 'notAModelPath' | 'unsupportedArchitecture' | 'invalidModel' | 'outOfMemory' | 'engine';

export function modelProblemKind(cause: ModelErrorCause, message: string): ModelProblemKind {
  switch (cause) {
    case 'path':
      return /does not exist|is missing/.test(message) ? 'missingPath' : 'notAModelPath';
    case 'model':
      return /unsupported (model )?architecture/i.test(message) ? 'unsupportedArchitecture' : 'invalidModel';
    case 'memory':
      return 'outOfMemory';
    case 'engine':
      return 'engine';
  }
}

/** The headline for each problem of a model configured in tidal.modelPath. */
const CONFIGURED_HEADLINE: Record<ModelProblemKind, string> = {
  missingPath: 'tidal.modelPath names a path that does not exist',
  notAModelPath: 'tidal.modelPath is neither a model folder nor a .gguf file',
  unsupportedArchitecture: 'the model in tidal.modelPath has an architecture Tidal does not support',
  invalidModel: 'the model in tidal.modelPath is not a valid model',
  outOfMemory: 'the model in tidal.modelPath does not fit in memory',
  engine: 'the engine could not load the model in tidal.modelPath',
};

/**
 * The notification for a model in the error state; undefined for any other state. A model
 * configured in tidal.modelPath gets [Select Model] [Open Setting] [Use Embedded]; the embedded
 * model (nothing the user set) gets [Select Model] [Show Log], and an explicit CUDA backend or
 * the KV cap point Open Setting at the setting to change.
 */
export function modelProblemNotice(state: ModelState, backendSetting: string): ModelProblemNotice | undefined {
  if (state.state !== 'error') return undefined;
  // The headline says that loading failed; the detail is the engine's reason, as a sentence.
  const reason = state.message.replace(/^Could not load the model: /, '');
  const detail = reason.charAt(0).toUpperCase() + reason.slice(1);
  const setting =
    state.cause === 'memory' && detail.includes('tidal.engine.maxKvMemoryGB')
      ? 'tidal.engine.maxKvMemoryGB'
      : state.cause === 'engine' && backendSetting === 'cuda'
        ? 'tidal.backend'
        : undefined;
  if (state.embedded) {
    return setting
      ? { message: `Tidal: ${detail}`, actions: ['Select Model', 'Open Setting', 'Show Log'], setting }
      : { message: `Tidal: ${detail}`, actions: ['Select Model', 'Show Log'] };
  }
  return {
    message: `Tidal: ${CONFIGURED_HEADLINE[modelProblemKind(state.cause, state.message)]}. ${detail}`,
    actions: ['Select Model', 'Open Setting', 'Use Embedded'],
    setting: setting ?? 'tidal.modelPath',
  };
}

/** A setting's values per scope, as WorkspaceConfiguration.inspect gives them. */
export interface ScopedValues {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/**
 * The scopes to clear so that tidal.modelPath is empty again (the embedded model): every scope
 * that holds a non-empty path, so no other one shows through once the effective one is gone.
 */
export function scopesHoldingModelPath(values: ScopedValues | undefined): ('global' | 'workspace' | 'workspaceFolder')[] {
  const set = (value: unknown) => typeof value === 'string' && value.trim() !== '';
  const scopes: ('global' | 'workspace' | 'workspaceFolder')[] = [];
  if (set(values?.workspaceFolderValue)) scopes.push('workspaceFolder');
  if (set(values?.workspaceValue)) scopes.push('workspace');
  if (set(values?.globalValue)) scopes.push('global');
  return scopes;
}
