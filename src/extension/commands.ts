// The command palette surface of the extension: one function per contributed command
// (tidal.selectModel lives in modelPicker.ts).
import * as vscode from 'vscode';

import type { ChatViewProvider } from './chatViewProvider';
import type { EngineClient } from './engineClient';

export const COMMAND_IDS = [
  'tidal.askAboutRepo',
  'tidal.openChat',
  'tidal.selectModel',
  'tidal.toggleInlineCompletions',
  'tidal.restartEngine',
  'tidal.showEngineLog',
  'tidal.showMenu',
  'tidal.setRemoteApiKey',
] as const;

export interface CommandContext {
  engine: EngineClient;
  chat: ChatViewProvider;
  log: vscode.LogOutputChannel;
}

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('tidal.askAboutRepo', async (question?: string) => {
      const text =
        typeof question === 'string'
          ? question
          : await vscode.window.showInputBox({
              title: 'Tidal: Ask About This Repository',
              prompt: 'Your question is answered with the whole workspace in context.',
              placeHolder: 'e.g. Where is the KV cache trimmed after an edit?',
              ignoreFocusOut: true,
            });
      if (text && text.trim()) await ctx.chat.ask(text.trim());
    }),
    vscode.commands.registerCommand('tidal.openChat', async () => {
      await vscode.commands.executeCommand(`${'tidal.chat'}.focus`);
    }),
    vscode.commands.registerCommand('tidal.toggleInlineCompletions', async () => {
      const config = vscode.workspace.getConfiguration('tidal');
      const enabled = !config.get<boolean>('inlineCompletions.enabled', true);
      await config.update('inlineCompletions.enabled', enabled, vscode.ConfigurationTarget.Global);
      vscode.window.setStatusBarMessage(`Tidal: inline completions ${enabled ? 'on' : 'off'}`, 3000);
      return enabled;
    }),
    vscode.commands.registerCommand('tidal.restartEngine', async () => {
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Tidal: restarting the engine…' },
        () => ctx.engine.restart(),
      );
      return ctx.engine.currentStatus.state;
    }),
    vscode.commands.registerCommand('tidal.showEngineLog', () => ctx.log.show(true)),
    vscode.commands.registerCommand('tidal.showMenu', async () => {
      const enabled = vscode.workspace.getConfiguration('tidal').get<boolean>('inlineCompletions.enabled', true);
      const items: (vscode.QuickPickItem & { command: string })[] = [
        { label: `$(${enabled ? 'debug-pause' : 'play'}) ${enabled ? 'Disable' : 'Enable'} Inline Completions`, command: 'tidal.toggleInlineCompletions' },
        { label: '$(comment-discussion) Open Chat', command: 'tidal.openChat' },
        { label: '$(question) Ask About This Repository', command: 'tidal.askAboutRepo' },
        { label: '$(folder-opened) Select Model…', command: 'tidal.selectModel' },
        { label: '$(debug-restart) Restart Engine', command: 'tidal.restartEngine' },
        { label: '$(output) Show Engine Log', command: 'tidal.showEngineLog' },
      ];
      const choice = await vscode.window.showQuickPick(items, { title: 'Tidal Code' });
      if (choice) await vscode.commands.executeCommand(choice.command);
    }),
  ];
}
