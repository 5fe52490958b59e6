// The command palette surface of the extension: one function per contributed command
// (tidal.selectModel lives in modelPicker.ts).
import * as vscode from 'vscode';

import { completionsOnFor, isLanguageSwitch, toggleLanguage, DEFAULT_LANGUAGE_SWITCH } from '../core/completion/languageSwitch';
import { registerChatPanelCommands } from './chatPanelCommands';
import type { ChatViewProvider } from './chatViewProvider';
import type { EngineClient } from './engineClient';

export { COMMAND_IDS } from './commandIds';

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
    // The Continue button under an answer that stopped at its token limit, for the keyboard.
    vscode.commands.registerCommand('tidal.continueAnswer', () => ctx.chat.continueAnswer()),
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
    vscode.commands.registerCommand('tidal.toggleInlineCompletionsForLanguage', async (languageId?: string) => {
      const language = typeof languageId === 'string' ? languageId : vscode.window.activeTextEditor?.document.languageId;
      if (!language) {
        vscode.window.showInformationMessage('Tidal: open a file first; inline completions are switched per language of the active editor.');
        return undefined;
      }
      const config = vscode.workspace.getConfiguration('tidal');
      const languages = toggleLanguage(languageSwitchOf(config), language);
      await config.update('inlineCompletions.languages', languages, vscode.ConfigurationTarget.Global);
      vscode.window.setStatusBarMessage(`Tidal: inline completions ${languages[language] ? 'on' : 'off'} for ${language}`, 3000);
      return languages[language];
    }),
    vscode.commands.registerCommand('tidal.restartEngine', async () => {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Tidal: restarting the engine…' }, () => ctx.engine.restart());
      return ctx.engine.currentStatus.state;
    }),
    vscode.commands.registerCommand('tidal.showEngineLog', () => ctx.log.show(true)),
    vscode.commands.registerCommand('tidal.showMenu', async () => {
      const config = vscode.workspace.getConfiguration('tidal');
      const enabled = config.get<boolean>('inlineCompletions.enabled', true);
      const language = vscode.window.activeTextEditor?.document.languageId;
      const languageOn = language !== undefined && completionsOnFor(languageSwitchOf(config), language);
      const items: (vscode.QuickPickItem & { command: string })[] = [
        { label: `$(${enabled ? 'debug-pause' : 'play'}) ${enabled ? 'Disable' : 'Enable'} Inline Completions`, command: 'tidal.toggleInlineCompletions' },
        ...(language
          ? [
              {
                label: `$(${languageOn ? 'debug-pause' : 'play'}) ${languageOn ? 'Disable' : 'Enable'} Inline Completions for ${language}`,
                command: 'tidal.toggleInlineCompletionsForLanguage',
              },
            ]
          : []),
        { label: '$(comment-discussion) Open Chat', command: 'tidal.openChat' },
        { label: '$(question) Ask About This Repository', command: 'tidal.askAboutRepo' },
        { label: '$(folder-opened) Select Model…', command: 'tidal.selectModel' },
        { label: '$(debug-restart) Restart Engine', command: 'tidal.restartEngine' },
        { label: '$(output) Show Engine Log', command: 'tidal.showEngineLog' },
      ];
      const choice = await vscode.window.showQuickPick(items, { title: 'Tidal Code' });
      if (choice) await vscode.commands.executeCommand(choice.command);
    }),
    ...registerChatPanelCommands(ctx.chat),
  ];
}

/** tidal.inlineCompletions.languages as set, or the default when it is not a valid one. */
function languageSwitchOf(config: vscode.WorkspaceConfiguration) {
  const value = config.get('inlineCompletions.languages');
  return isLanguageSwitch(value) ? value : DEFAULT_LANGUAGE_SWITCH;
}
