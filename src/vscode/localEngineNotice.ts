// The notification shown once when there is no local engine on this machine and a local backend
// is selected: [Use Remote Server] sets tidal.backend to remote (and opens tidal.remoteUrl while
// it is still the default), [Open Settings] opens the remote server's settings, [Don't Show
// Again] is remembered in globalState. The decisions live in localEngine.ts.
import * as vscode from 'vscode';

import type { EngineClient } from './engineClient';
import {
  LOCAL_ENGINE_NOTICE_ACTIONS,
  LOCAL_ENGINE_NOTICE_KEY,
  REMOTE_SETTINGS_QUERY,
  shouldShowLocalEngineNotice,
  type LocalEngineNoticeAction,
} from './localEngine';
import type { ModelController } from './modelController';
import type { ModelNotifications } from './modelNotifications';
import type { TidalSettings } from './settings';
import { Disposable } from './lifecycle';

export class LocalEngineNotice extends Disposable {
  private shownInThisWindow = false;

  constructor(
    engine: EngineClient,
    private readonly model: ModelController,
    private readonly notifications: ModelNotifications,
    private readonly settings: () => TidalSettings,
    private readonly globalState: vscode.Memento,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this._register(engine.onDidChangeStatus(() => this.consider()));
    this._register(vscode.workspace.onDidChangeConfiguration((event) => event.affectsConfiguration('tidal.backend') && this.consider()));
  }

  private consider(): void {
    const offer = this.model.localEngine();
    if (!shouldShowLocalEngineNotice(offer, this.settings().backend, this.globalState.get<string>(LOCAL_ENGINE_NOTICE_KEY), this.shownInThisWindow)) return;
    if (offer.local) return;
    this.shownInThisWindow = true;
    void this.notifications.show('warning', offer.noticeMessage, [...LOCAL_ENGINE_NOTICE_ACTIONS]).then((answer) => this.act(answer));
  }

  private async act(answer: LocalEngineNoticeAction | undefined): Promise<void> {
    switch (answer) {
      case 'Use Remote Server': {
        const config = vscode.workspace.getConfiguration('tidal');
        await config.update('backend', 'remote', vscode.ConfigurationTarget.Global);
        this.log.info('tidal.backend set to remote (user settings): there is no local engine here');
        const url = config.inspect<string>('remoteUrl');
        const chosen = url?.globalValue ?? url?.workspaceValue ?? url?.workspaceFolderValue;
        if (chosen === undefined) await vscode.commands.executeCommand('workbench.action.openSettings', 'tidal.remoteUrl');
        return;
      }
      case 'Open Settings':
        await vscode.commands.executeCommand('workbench.action.openSettings', REMOTE_SETTINGS_QUERY);
        return;
      case "Don't Show Again":
        await this.globalState.update(LOCAL_ENGINE_NOTICE_KEY, 'dismissed');
        return;
      default:
        return;
    }
  }
}
