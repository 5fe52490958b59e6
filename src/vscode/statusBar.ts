// The status bar item: engine state (loading / ready / busy / error), backend, context tokens
// in use and the last completion's latency at a glance, the repository's warm-up in the engine
// host while it runs; a click opens the Tidal menu (toggle completions, select model, show
// log, ...). Engine and model problems take precedence over the repository's. Without a local
// engine on this platform it says so, and its tooltip leads to the remote backend's settings.
import * as path from 'node:path';
import * as vscode from 'vscode';

import type { PrefillProgress, RepositoryStatus } from '../core/protocol/protocol';
import type { EngineStatus } from './engineClient';
import { addonLoadResultOf, localEngineOffer, platformName, remoteTooltipNote } from './localEngine';
import type { ModelState } from './modelController';
import { compactCount, humanDuration, prefillStatusText, repositoryProgressText, repositoryTooltipLine } from './repositoryStatusText';

/** What the tooltip says about the embedded model, with a link to choose a real one. */
export const DEMO_MODEL_NOTE =
  'tidal-code-mini, the embedded **demo** model: it is there to try the extension out, and its answers are not useful. [Select a real model](command:tidal.selectModel)';

/** What the inline completions add to the status bar. */
export interface CompletionActivity {
  /** A completion is in flight. */
  busy: boolean;
  /** The chat is answering (reading the context or writing). */
  answering?: boolean;
  /** Edit Selection with Instruction is writing its proposal. */
  editing?: boolean;
  /** Prompt tokens of the last completion (repository context + file window). */
  contextTokens?: number;
  lastLatencyMs?: number;
  lastFirstTokenMs?: number;
  /** Tokens the last completion generated, and the engine's decode time for them. */
  lastTokens?: number;
  lastDecodeMs?: number;
  lastError?: string;
  /** Set when tidal.backend is 'remote': the server's URL. */
  remoteUrl?: string;
  /** The engine host's repository (local backend), as its last workspace/status said. */
  repository?: RepositoryStatus;
  /** A request (chat, completion, ...) whose long prompt the engine is reading now. */
  prefill?: PrefillProgress;
}

export class TidalStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('tidal.status', vscode.StatusBarAlignment.Right, 100);

  /** `platform`: as platformName gives it, named in the text when there is no local engine. */
  constructor(private readonly platform = platformName(process.platform, process.arch)) {
    this.item.name = 'Tidal Code';
    this.item.command = 'tidal.showMenu';
    this.item.show();
  }

  /** The item's current text (for the integration tests). */
  get text(): string {
    return this.item.text;
  }

  /** The item's tooltip as text (for the integration tests). */
  get tooltipText(): string {
    const tooltip = this.item.tooltip;
    return typeof tooltip === 'string' ? tooltip : (tooltip?.value ?? '');
  }

  update(status: EngineStatus, completionsEnabled: boolean, model?: ModelState, activity?: CompletionActivity): void {
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
      case 'unavailable': {
        if (activity?.remoteUrl) break; // the remote backend needs no local engine
        const offer = localEngineOffer(this.platform, addonLoadResultOf(status));
        if (offer.local) break;
        this.item.text = offer.statusText;
        const tooltip = new vscode.MarkdownString(offer.tooltip, true);
        tooltip.isTrusted = { enabledCommands: ['workbench.action.openSettings'] };
        this.item.tooltip = tooltip;
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        return;
      }
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
        const repository = activity?.repository;
        const icon = repository?.state === 'error' ? '$(warning)' : working(activity) ? '$(sync~spin)' : '$(pulse)';
        const figures = activityFigures(activity);
        this.item.text = `${repositoryProgressText(repository) ?? prefillStatusText(activity?.prefill) ?? `${icon} Tidal ${backend}${figures.short}`}${completions}`;
        const tooltip = new vscode.MarkdownString(undefined, true);
        tooltip.isTrusted = { enabledCommands: ['tidal.selectModel', 'tidal.showMenu'] };
        const doing = [activity?.busy ? 'completing' : '', activity?.answering ? 'answering in the chat' : '', activity?.editing ? 'editing the selection' : '']
          .filter(Boolean)
          .join(', ');
        tooltip.appendMarkdown(`**Tidal Code** — ${doing ? `busy (${doing})` : 'ready'}\n\n`);
        if (model.embedded) tooltip.appendMarkdown(`Model: ${DEMO_MODEL_NOTE}\n\n`);
        else tooltip.appendMarkdown('Model: ').appendText(model.loaded.modelDir).appendMarkdown('\n\n');
        const device =
          model.loaded.model.backend === 'cuda' && status.info?.cuda.deviceName
            ? `GPU (${status.info.cuda.deviceName})`
            : model.loaded.model.backend === 'cuda'
              ? 'GPU'
              : model.loaded.model.backend === 'webgpu'
                ? 'GPU (WebGPU)'
                : 'CPU';
        tooltip.appendText(`Runs on: ${device}${gpu}`).appendMarkdown('\n\n');
        const repositoryLine = repositoryTooltipLine(repository);
        if (repositoryLine) tooltip.appendText(repositoryLine).appendMarkdown('\n\n');
        const share = repositoryShare(repository);
        if (share) tooltip.appendText(share).appendMarkdown('\n\n');
        for (const line of figures.lines) tooltip.appendMarkdown(`${line}\n\n`);
        tooltip.appendMarkdown(`Inline completions: ${completionsEnabled ? 'on' : 'off'} — click for options`);
        this.item.tooltip = tooltip;
        return;
      }
      default:
        if (activity?.remoteUrl) {
          this.item.text = `${working(activity) ? '$(sync~spin)' : '$(pulse)'} Tidal REMOTE${activityFigures(activity).short}${completions}`;
          const note = remoteTooltipNote(localEngineOffer(this.platform, addonLoadResultOf(status)));
          this.item.tooltip = `Tidal: OpenAI-compatible server at ${activity.remoteUrl}${activity.lastError ? `; last completion failed: ${activity.lastError}` : ''}${note ? `. ${note}` : ''} — click for options`;
          return;
        }
        this.item.text = `$(pulse) Tidal${completions}`;
        this.item.tooltip = `Tidal: engine ${status.info?.engineVersion} ready${gpu}; ${model?.message ?? 'no model loaded'}`;
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}

function activityFigures(activity: CompletionActivity | undefined): { short: string; lines: string[] } {
  if (!activity) return { short: '', lines: [] };
  const parts: string[] = [];
  const lines: string[] = [];
  if (activity.contextTokens !== undefined) {
    parts.push(`${compactCount(activity.contextTokens)} ctx`);
    lines.push(`Context in use: ${activity.contextTokens.toLocaleString('en-US')} tokens`);
  }
  if (activity.lastLatencyMs !== undefined) {
    parts.push(humanDuration(activity.lastLatencyMs));
    const first = activity.lastFirstTokenMs !== undefined ? `, first token after ${humanDuration(activity.lastFirstTokenMs)}` : '';
    const rate = tokensPerSecond(activity.lastTokens, activity.lastDecodeMs);
    const generated =
      activity.lastTokens !== undefined ? `, ${activity.lastTokens} token${activity.lastTokens === 1 ? '' : 's'}${rate ? ` at ${rate}` : ''}` : '';
    lines.push(`Last completion: ${humanDuration(activity.lastLatencyMs)}${first}${generated}`);
  }
  if (activity.lastError) lines.push(`Last completion failed: ${activity.lastError}`);
  return { short: parts.length > 0 ? ` · ${parts.join(' · ')}` : '', lines };
}

/** "42 tokens/s" from a decode of `tokens` in `ms`; undefined when too short to say. */
/** Whether any request of the user's is running: a completion, a chat answer or an edit. */
export function working(activity: CompletionActivity | undefined): boolean {
  return !!(activity?.busy || activity?.answering || activity?.editing);
}

export function tokensPerSecond(tokens: number | undefined, ms: number | undefined): string | undefined {
  if (tokens === undefined || ms === undefined || tokens < 2 || !(ms > 0)) return undefined;
  const rate = (tokens / ms) * 1000;
  return `${rate >= 100 ? Math.round(rate) : rate.toFixed(1)} tokens/s`;
}

/** The repository's share in the prompt: "In the prompt: 120 of 123 repository files (98%)". */
export function repositoryShare(status: RepositoryStatus | undefined): string | undefined {
  if (status?.state !== 'ready') return undefined;
  const all = status.files + status.droppedFiles;
  if (all === 0) return undefined;
  const percent = Math.floor((status.files / all) * 100);
  return `In the prompt: ${status.files.toLocaleString('en-US')} of ${all.toLocaleString('en-US')} repository files (${percent}%)`;
}
