// The status bar item: engine state and backend at a glance; a click opens the Tidal menu.
import * as vscode from 'vscode';

import type { EngineStatus } from './engineClient';

export class TidalStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('tidal.status', vscode.StatusBarAlignment.Right, 100);

  constructor() {
    this.item.name = 'Tidal Code';
    this.item.command = 'tidal.showMenu';
    this.item.show();
  }

  update(status: EngineStatus, completionsEnabled: boolean): void {
    const backend = status.info ? (status.info.cuda.usable ? 'CUDA' : 'CPU') : '';
    const completions = completionsEnabled ? '' : ' (completions off)';
    switch (status.state) {
      case 'starting':
        this.item.text = '$(loading~spin) Tidal';
        this.item.tooltip = 'Tidal: starting the engine…';
        this.item.backgroundColor = undefined;
        break;
      case 'ready':
        this.item.text = `$(pulse) Tidal ${backend}${completions}`;
        this.item.tooltip = `Tidal: engine ${status.info?.engineVersion} ready on ${backend}` +
          (status.info && !status.info.cuda.usable ? ` (GPU: ${status.info.cuda.message})` : '');
        this.item.backgroundColor = undefined;
        break;
      case 'error':
        this.item.text = '$(error) Tidal';
        this.item.tooltip = `Tidal: ${status.message ?? 'engine error'} — click for options`;
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
      case 'stopped':
        this.item.text = '$(circle-slash) Tidal';
        this.item.tooltip = 'Tidal: engine stopped';
        this.item.backgroundColor = undefined;
        break;
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}
