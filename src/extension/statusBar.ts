// The status bar item: engine and model state and backend at a glance; a click opens the
// Tidal menu.
import * as path from 'node:path';
import * as vscode from 'vscode';

import type { EngineStatus } from './engineClient';
import type { ModelState } from './modelController';

export class TidalStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('tidal.status', vscode.StatusBarAlignment.Right, 100);

  constructor() {
    this.item.name = 'Tidal Code';
    this.item.command = 'tidal.showMenu';
    this.item.show();
  }

  update(status: EngineStatus, completionsEnabled: boolean, model?: ModelState): void {
    const completions = completionsEnabled ? '' : ' (completions off)';
    this.item.backgroundColor = undefined;
    switch (status.state) {
      case 'starting':
        this.item.text = '$(loading~spin) Tidal';
        this.item.tooltip = 'Tidal: starting the engine…';
        return;
      case 'error':
        this.item.text = '$(error) Tidal';
        this.item.tooltip = `Tidal: ${status.message ?? 'engine error'} — click for options`;
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        return;
      case 'stopped':
        this.item.text = '$(circle-slash) Tidal';
        this.item.tooltip = 'Tidal: engine stopped';
        return;
      case 'ready':
        break;
    }
    const gpu = status.info && !status.info.cuda.usable ? ` (GPU: ${status.info.cuda.message})` : '';
    switch (model?.state) {
      case 'loading':
        this.item.text = '$(loading~spin) Tidal';
        this.item.tooltip = `Tidal: loading ${path.basename(model.modelDir)}…`;
        return;
      case 'error':
        this.item.text = '$(warning) Tidal';
        this.item.tooltip = `Tidal: ${model.message} — click for options`;
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        return;
      case 'ready': {
        const backend = model.loaded.model.backend.toUpperCase();
        this.item.text = `$(pulse) Tidal ${backend}${completions}`;
        this.item.tooltip = `Tidal: ${model.embedded ? 'tidal-code-mini (embedded)' : model.loaded.modelDir} on ${backend}${gpu}`;
        return;
      }
      default:
        this.item.text = `$(pulse) Tidal${completions}`;
        this.item.tooltip = `Tidal: engine ${status.info?.engineVersion} ready${gpu}; ${model?.message ?? 'no model loaded'}`;
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}
