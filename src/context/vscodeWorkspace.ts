// Connects a RepoContext to one VS Code workspace folder: its files through
// vscode.workspace.fs, disk changes through a FileSystemWatcher, unsaved edits through
// onDidChangeTextDocument, and the active / visible editors through the window events.
import * as vscode from 'vscode';

import { RepoContext } from './repoContext';
import { relativePathIn } from './uriPath';
import type { ContextFileSystem, CountTokens, DirectoryEntry, FileStat } from './types';

function kindOf(type: vscode.FileType): DirectoryEntry['kind'] {
  if (type & vscode.FileType.SymbolicLink) return 'other';
  if (type === vscode.FileType.File) return 'file';
  if (type === vscode.FileType.Directory) return 'directory';
  return 'other';
}

export class VscodeFileSystem implements ContextFileSystem {
  constructor(private readonly root: vscode.Uri) {}

  private uri(relativePath: string): vscode.Uri {
    return relativePath === '' ? this.root : vscode.Uri.joinPath(this.root, ...relativePath.split('/'));
  }

  async readDirectory(relativeDir: string): Promise<DirectoryEntry[]> {
    const entries = await vscode.workspace.fs.readDirectory(this.uri(relativeDir));
    return entries.map(([name, type]) => ({ name, kind: kindOf(type) }));
  }

  async stat(relativePath: string): Promise<FileStat | undefined> {
    try {
      const stat = await vscode.workspace.fs.stat(this.uri(relativePath));
      return { kind: kindOf(stat.type), size: stat.size, mtimeMs: stat.mtime };
    } catch {
      return undefined;
    }
  }

  readFile(relativePath: string): Promise<Uint8Array> {
    return Promise.resolve(vscode.workspace.fs.readFile(this.uri(relativePath)));
  }
}

export interface WorkspaceContextOptions {
  countTokens: CountTokens;
  include: readonly string[];
  exclude: readonly string[];
  fileSeparator?: string;
  maxFileBytes?: number;
}

/** A RepoContext that follows the first workspace folder; dispose it to stop listening. */
export class WorkspaceContext implements vscode.Disposable {
  readonly context: RepoContext;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly folder: vscode.WorkspaceFolder, options: WorkspaceContextOptions) {
    this.context = new RepoContext({ ...options, fileSystem: new VscodeFileSystem(folder.uri) });

    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '**/*'));
    const onDisk = (kind: 'created' | 'changed' | 'deleted') => (uri: vscode.Uri) => {
      const path = this.relativePath(uri);
      if (path !== undefined) void this.context.applyChange({ path, kind });
    };
    this.disposables.push(
      watcher,
      watcher.onDidCreate(onDisk('created')),
      watcher.onDidChange(onDisk('changed')),
      watcher.onDidDelete(onDisk('deleted')),
      vscode.workspace.onDidChangeTextDocument((event) => {
        const path = this.relativePath(event.document.uri);
        if (path !== undefined && event.contentChanges.length > 0) {
          void this.context.applyChange({ path, kind: 'changed', text: event.document.getText() });
        }
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.syncEditors()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.syncEditors()),
    );
    this.syncEditors();
  }

  /** Walks the folder; call once after construction and whenever the settings change. */
  scan(): Promise<void> {
    return this.context.scan();
  }

  /** Workspace-relative path of a file of this folder, or undefined for anything else. */
  private relativePath(uri: vscode.Uri): string | undefined {
    return relativePathIn(this.folder.uri, uri);
  }

  private syncEditors(): void {
    const active = vscode.window.activeTextEditor;
    this.context.setActiveFile(active ? this.relativePath(active.document.uri) : undefined);
    const open = vscode.window.visibleTextEditors.flatMap((editor) => this.relativePath(editor.document.uri) ?? []);
    this.context.markOpen(open);
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}
