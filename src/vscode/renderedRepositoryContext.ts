// The whole-repository context rendered by the extension, for the remote backend (whose server
// cannot read this disk) and folders the engine host cannot read (virtual file systems): a
// WatchedRepositoryContext over every workspace folder (paths '<name>/<path>' when there are several), counted with the loaded model's tokenizer
// (else estimated), rendered to the files sent in front of a completion or a chat question
// within the token budget. For the local backend the engine host owns the repository
// (hostRepository.ts) and this stays empty: nothing is scanned or tokenized here.
import * as vscode from 'vscode';

import type { CountTokens, RenderedFiles } from '../core/context/types';
import { WatchedRepositoryContext } from './watchedRepositoryContext';
import { repositoryPathOf } from '../core/context/workspaceFolders';
import { tokenizerForModel } from '../core/tokenizer/modelTokenizer';
import { estimateTokens } from '../core/context/contextBudget';
import type { TidalSettings } from './settings';

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

export class RenderedRepositoryContext implements vscode.Disposable {
  private workspace: WatchedRepositoryContext | undefined;
  private scanning: Promise<void> | undefined;
  private key = '';

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** (Re)builds the context when the folder, the model (its tokenizer) or the globs changed. */
  configure(settings: TidalSettings, modelPath: string | undefined): void {
    const folders = vscode.workspace.workspaceFolders ?? [];
    const key = JSON.stringify([folders.map((folder) => [folder.name, folder.uri.toString()]), modelPath, settings.context.include, settings.context.exclude]);
    if (key === this.key) return;
    this.key = key;
    this.workspace?.dispose();
    this.workspace = undefined;
    this.scanning = undefined;
    if (folders.length === 0) return;
    const counter = tokenCounterFor(modelPath);
    const workspace = new WatchedRepositoryContext(folders, {
      countTokens: counter.count,
      include: settings.context.include,
      exclude: settings.context.exclude,
    });
    this.workspace = workspace;
    const started = Date.now();
    this.scanning = workspace.scan().then(
      () =>
        this.log.info(
          `repository context: ${workspace.context.paths.length} files from ${folders.map((folder) => folder.name).join(', ')} in ${Date.now() - started} ms (${counter.exact ? 'model tokenizer' : 'estimated tokens'})`,
        ),
      (error) => this.log.warn(`repository context scan failed: ${(error as Error).message}`),
    );
  }

  /** Stops following the folder and forgets its files (the engine host renders the repository). */
  clear(): void {
    this.key = '';
    this.workspace?.dispose();
    this.workspace = undefined;
    this.scanning = undefined;
  }

  /**
   * The files that fit `budgetTokens`, least relevant first, leaving out `excludePath` (the
   * file being completed, which goes into the prompt as prefix and suffix) before the budget.
   */
  async snapshot(budgetTokens: number, excludePath?: string): Promise<RenderedFiles> {
    const workspace = this.workspace;
    if (!workspace || budgetTokens <= 0) return { files: [], tokens: 0, droppedFiles: [] };
    await this.scanning;
    await workspace.context.idle();
    return workspace.context.renderFiles(budgetTokens, excludePath);
  }

  /**
   * The repository path of a document in a workspace folder (with the folder's name in front
   * when there are several), as the repository part names the file; undefined outside them.
   */
  relativePath(uri: vscode.Uri): string | undefined {
    return repositoryPathOf(vscode.workspace.workspaceFolders ?? [], uri);
  }

  dispose(): void {
    this.workspace?.dispose();
    this.workspace = undefined;
  }
}
