// Extension entry: wires the engine process, status bar, chat view and commands together.
// Everything disposable goes onto context.subscriptions.
import * as path from 'node:path';
import * as vscode from 'vscode';

import { ChatViewProvider } from './chatViewProvider';
import { COMMAND_IDS, registerCommands } from './commands';
import { EngineClient } from './engineClient';
import { readSettings } from './settings';
import { TidalStatusBar } from './statusBar';

// What activate() returns: a small read-only API, used by the integration tests.
export interface TidalApi {
  getState(): { activated: true; engineState: string; engineMessage?: string; commandsRegistered: string[]; backend?: string; chatViewVisible: boolean };
  waitForEngine(timeoutMs: number): Promise<string>;
}

export async function activate(context: vscode.ExtensionContext): Promise<TidalApi> {
  const log = vscode.window.createOutputChannel('Tidal Engine', { log: true });
  context.subscriptions.push(log);

  const logSettingProblems = () => {
    for (const problem of readSettings((key) => vscode.workspace.getConfiguration('tidal').get(key)).problems) {
      log.warn(`setting ${problem}`);
    }
  };
  logSettingProblems();

  const engine = new EngineClient(path.join(context.extensionPath, 'dist', 'engine-host.js'), log);
  const statusBar = new TidalStatusBar();
  const summary = () => {
    const status = engine.currentStatus;
    if (status.state === 'ready' && status.info) {
      return `Engine ${status.info.engineVersion} · ${status.info.cuda.usable ? `CUDA (${status.info.cuda.deviceName})` : 'CPU'} · no model loaded`;
    }
    return status.state === 'error' ? `Engine error: ${status.message}` : `Engine ${status.state}…`;
  };
  const chat = new ChatViewProvider(
    context.extensionUri,
    async () => {
      throw new Error(
        'No model is loaded, so there is no answer yet. Loading a model and generating an answer ' +
          'arrive with the engine host; the engine itself is running (see the header above).',
      );
    },
    summary,
  );
  const completionsEnabled = () => vscode.workspace.getConfiguration('tidal').get<boolean>('inlineCompletions.enabled', true);

  context.subscriptions.push(
    engine,
    statusBar,
    chat,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    engine.onDidChangeStatus((status) => {
      statusBar.update(status, completionsEnabled());
      chat.refreshEngine();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration('tidal')) return;
      logSettingProblems();
      statusBar.update(engine.currentStatus, completionsEnabled());
    }),
    ...registerCommands({ engine, chat, log }),
  );
  statusBar.update(engine.currentStatus, completionsEnabled());
  void engine.start();

  return {
    getState: () => ({
      activated: true,
      engineState: engine.currentStatus.state,
      engineMessage: engine.currentStatus.message,
      backend: engine.currentStatus.info ? (engine.currentStatus.info.cuda.usable ? 'cuda' : 'cpu') : undefined,
      commandsRegistered: [...COMMAND_IDS],
      chatViewVisible: chat.isVisible,
    }),
    waitForEngine: (timeoutMs) =>
      new Promise((resolve) => {
        const done = () => engine.currentStatus.state === 'ready' || engine.currentStatus.state === 'error';
        if (done()) return resolve(engine.currentStatus.state);
        const timer = setTimeout(() => {
          listener.dispose();
          resolve(engine.currentStatus.state);
        }, timeoutMs);
        const listener = engine.onDidChangeStatus(() => {
          if (!done()) return;
          clearTimeout(timer);
          listener.dispose();
          resolve(engine.currentStatus.state);
        });
      }),
  };
}

export function deactivate(): void {}
