// Which GenerationBackend a request goes to: the local engine, or the OpenAI-compatible server
// of tidal.remoteUrl when tidal.backend is `remote` (one client per URL, model and key). The
// server's API key lives in VS Code's secret storage, never in settings: `Tidal: Set Remote
// Server API Key` stores or removes it.
import * as vscode from 'vscode';

import type { GenerationBackend } from '../core/backend/generationBackend';
import { RemoteBackend } from '../core/backend/remoteBackend';
import { Disposable } from './lifecycle';
import type { TidalSettings } from './settings';

const REMOTE_KEY_SECRET = 'tidal.remoteApiKey';

export class BackendSelection extends Disposable {
  private remote: { key: string; backend: RemoteBackend } | undefined;

  /** Reads the stored key first, so the first request already has it. */
  static async create(secrets: vscode.SecretStorage, settings: () => TidalSettings, local: GenerationBackend): Promise<BackendSelection> {
    return new BackendSelection(secrets, settings, local, (await secrets.get(REMOTE_KEY_SECRET)) || undefined);
  }

  private constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly settings: () => TidalSettings,
    private readonly local: GenerationBackend,
    private apiKey: string | undefined,
  ) {
    super();
    this._register(
      secrets.onDidChange(async (event) => {
        if (event.key === REMOTE_KEY_SECRET) this.apiKey = (await secrets.get(REMOTE_KEY_SECRET)) || undefined;
      }),
    );
    this._register(vscode.commands.registerCommand('tidal.setRemoteApiKey', () => this.askForKey()));
  }

  /** The backend the settings choose now. */
  readonly backend = (): GenerationBackend => {
    const current = this.settings();
    if (current.backend !== 'remote') return this.local;
    const key = JSON.stringify([current.remoteUrl, current.remoteModel, this.apiKey ?? '']);
    if (this.remote?.key !== key) {
      // The window's session id names this editor to the server (completions supersede per client).
      this.remote = {
        key,
        backend: new RemoteBackend({ baseUrl: current.remoteUrl, model: current.remoteModel || undefined, apiKey: this.apiKey, client: vscode.env.sessionId }),
      };
    }
    return this.remote.backend;
  };

  private async askForKey(): Promise<void> {
    const value = await vscode.window.showInputBox({
      title: 'Tidal: Remote Server API Key',
      prompt: `The key ${this.settings().remoteUrl} expects (sent as "Authorization: Bearer …"). Empty: remove the stored key.`,
      password: true,
      ignoreFocusOut: true,
    });
    if (value === undefined) return;
    if (value.trim() === '') await this.secrets.delete(REMOTE_KEY_SECRET);
    else await this.secrets.store(REMOTE_KEY_SECRET, value.trim());
    this.apiKey = value.trim() || undefined;
    vscode.window.setStatusBarMessage(`Tidal: remote API key ${this.apiKey ? 'stored' : 'removed'}`, 3000);
  }
}
