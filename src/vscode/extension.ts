// Extension entry: builds the extension's parts (tidalExtension.ts), which register themselves
// and go onto context.subscriptions, and starts the engine. Under the integration tests it also
// returns their read-only API (testApi.ts).
import type * as vscode from 'vscode';

import { createTestApi, isTestMode, type TidalApi } from './testApi';
import { TidalExtension } from './tidalExtension';

export type { ChatAnswerState, TidalApi } from './testApi';

export async function activate(context: vscode.ExtensionContext): Promise<TidalApi | undefined> {
  const tidal = await TidalExtension.create(context);
  context.subscriptions.push(tidal);
  tidal.start();
  return isTestMode(context) ? createTestApi(tidal, context) : undefined;
}

export function deactivate(): void {}
