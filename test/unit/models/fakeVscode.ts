// Test helper: a scripted stand-in for the parts of the `vscode` module the model picker
// uses, installed before the picker is imported. Each UI call takes the next scripted answer
// and is recorded.
import Module from 'node:module';

export type Answer = (request: { kind: string; items?: unknown[]; message?: string; actions?: string[] }) => unknown;

export const fake = {
  settings: new Map<string, unknown>(),
  updates: [] as [string, unknown][],
  answers: [] as Answer[],
  shown: [] as { kind: string; message?: string }[],
  progress: [] as { message?: string; increment?: number }[],
  cancelProgress: undefined as undefined | ((report: { message?: string }) => boolean),
  executed: [] as unknown[][],
  next(request: { kind: string; items?: unknown[]; message?: string; actions?: string[] }): unknown {
    this.shown.push({ kind: request.kind, message: request.message });
    const answer = this.answers.shift();
    if (!answer) throw new Error(`no scripted answer for ${request.kind}: ${request.message ?? ''}`);
    return answer(request);
  },
  reset(): void {
    this.settings.clear();
    this.updates.length = 0;
    this.answers.length = 0;
    this.shown.length = 0;
    this.progress.length = 0;
    this.executed.length = 0;
    this.cancelProgress = undefined;
  },
};

const message =
  (kind: string) =>
  async (text: string, ...rest: unknown[]) => {
    const actions = rest.filter((r): r is string => typeof r === 'string');
    return fake.next({ kind, message: text, actions });
  };

const vscode = {
  ProgressLocation: { Notification: 15 },
  ConfigurationTarget: { Global: 1 },
  QuickPickItemKind: { Separator: -1, Default: 0 },
  window: {
    showQuickPick: async (items: unknown[]) => fake.next({ kind: 'quickPick', items }),
    showOpenDialog: async () => fake.next({ kind: 'openDialog' }),
    showInformationMessage: message('info'),
    showWarningMessage: message('warning'),
    showErrorMessage: message('error'),
    withProgress: async (_options: unknown, task: (progress: unknown, token: unknown) => Promise<unknown>) => {
      const listeners: (() => void)[] = [];
      const token = { onCancellationRequested: (listener: () => void) => (listeners.push(listener), { dispose() {} }) };
      const progress = {
        report: (value: { message?: string; increment?: number }) => {
          fake.progress.push(value);
          if (fake.cancelProgress?.(value)) for (const l of listeners) l();
        },
      };
      return task(progress, token);
    },
  },
  workspace: {
    getConfiguration: (section: string) => ({
      get: (key: string, fallback?: unknown) => fake.settings.get(`${section}.${key}`) ?? fallback,
      update: async (key: string, value: unknown) => {
        fake.updates.push([`${section}.${key}`, value]);
        fake.settings.set(`${section}.${key}`, value);
      },
    }),
  },
  commands: {
    registerCommand: (id: string, handler: unknown) => ({ id, handler, dispose() {} }),
    executeCommand: async (...args: unknown[]) => {
      fake.executed.push(args);
    },
  },
};

const moduleWithLoad = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const originalLoad = moduleWithLoad._load;
moduleWithLoad._load = function (request: string, ...rest: unknown[]) {
  if (request === 'vscode') return vscode;
  return originalLoad.call(this, request, ...rest);
};
