// The whole-repository context as the editor features use it: a WorkspaceContext over the
// first workspace folder, counted with the loaded model's tokenizer, rendered to the files
// that go in front of a completion or a chat question within the token budget.
import * as vscode from 'vscode';

import type { CountTokens } from '../context/types';
import { WorkspaceContext } from '../context/vscodeWorkspace';
import type { ContextFileParam } from '../engine/protocol';
import { tokenizerForModel } from '../models/modelTokenizer';
import { estimateTokens } from './contextBudget';
import type { TidalSettings } from './settings';

export interface ContextSnapshot {
  files: ContextFileParam[];
  /** Tokens of the rendered files (separators and path lines included). */
  tokens: number;
  /** Files that did not fit the budget. */
  droppedFiles: number;
}


export function tokenCounterFor(modelPath: string | undefined): { count: CountTokens; exact: boolean } {
  if (modelPath) {
    try {
      const tokenizer = tokenizerForModel(modelPath);
      return { count: (text) => tokenizer.encode(text).length, exact: true };
    } catch {
      // Fall through to the estimate; the engine host reports tokenizer problems itself.
    }
  }
  return { count: estimateTokens, exact: false };
}

export class RepositoryContext implements vscode.Disposable {
  private workspace: WorkspaceContext | undefined;
  private scanning: Promise<void> | undefined;
  private key = '';
  private lastTokens = 0;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** Tokens of the last rendered context (for the status bar). */
  get tokensInUse(): number {
    return this.lastTokens;
  }

  /** (Re)builds the context when the folder, the model (its tokenizer) or the globs changed. */
  configure(settings: TidalSettings, modelPath: string | undefined): void {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const key = JSON.stringify([folder?.uri.toString(), modelPath, settings.context.include, settings.context.exclude]);
    if (key === this.key) return;
    this.key = key;
    this.workspace?.dispose();
    this.workspace = undefined;
    this.scanning = undefined;
    if (!folder) return;
    const counter = tokenCounterFor(modelPath);
    const workspace = new WorkspaceContext(folder, {
      countTokens: counter.count,
      include: settings.context.include,
      exclude: settings.context.exclude,
    });
    this.workspace = workspace;
    const started = Date.now();
    this.scanning = workspace.scan().then(
      () => this.log.info(`repository context: ${workspace.context.paths.length} files from ${folder.name} in ${Date.now() - started} ms (${counter.exact ? 'model tokenizer' : 'estimated tokens'})`),
      (error) => this.log.warn(`repository context scan failed: ${(error as Error).message}`),
    );
  }

  /**
   * The files that fit `budgetTokens`, least relevant first, leaving out `excludePath` (the
   * file being completed, which goes into the prompt as prefix and suffix) before the budget.
   */
  async snapshot(budgetTokens: number, excludePath?: string): Promise<ContextSnapshot> {
    const workspace = this.workspace;
    if (!workspace || budgetTokens <= 0) return { files: [], tokens: 0, droppedFiles: 0 };
    await this.scanning;
    await workspace.context.idle();
    const rendered = workspace.context.renderFiles(budgetTokens, excludePath);
    this.lastTokens = rendered.tokens;
    return { files: rendered.files, tokens: rendered.tokens, droppedFiles: rendered.droppedFiles.length };
  }

  /** Workspace-relative path of a document of the context's folder. */
  relativePath(uri: vscode.Uri): string | undefined {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    if (!folder || folder !== vscode.workspace.workspaceFolders?.[0]) return undefined;
    return vscode.workspace.asRelativePath(uri, false);
  }

  dispose(): void {
    this.workspace?.dispose();
    this.workspace = undefined;
  }
}

