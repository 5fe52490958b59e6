// Connects a RepositoryContext to the VS Code workspace folders (several: paths '<name>/<path>', see
// workspaceFolders.ts): their files through
// vscode.workspace.fs, disk changes through a FileSystemWatcher, unsaved edits through
// onDidChangeTextDocument, and the active / visible editors through the window events.
import * as vscode from 'vscode';

import { FoldersFileSystem } from '../core/context/foldersFileSystem';
import { RepositoryContext } from '../core/context/repositoryContext';
import { folderPathNames, repositoryPathOf } from '../core/context/workspaceFolders';
import type { ContextFileSystem, CountTokens, DirectoryEntry, FileStat } from '../core/context/types';

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

export interface WatchedRepositoryContextOptions {
  countTokens: CountTokens;
  include: readonly string[];
  exclude: readonly string[];
  fileSeparator?: string;
  maxFileBytes?: number;
}

/** A RepositoryContext that follows the workspace folders (one or several); dispose it to stop listening. */
export class WatchedRepositoryContext implements vscode.Disposable {
  readonly context: RepositoryContext;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly folders: readonly vscode.WorkspaceFolder[],
    options: WatchedRepositoryContextOptions,
  ) {
    const names = folderPathNames(folders);
    this.context = new RepositoryContext({
      ...options,
      fileSystem:
        folders.length > 1
          ? new FoldersFileSystem(folders.map((folder, index) => ({ name: names[index], fileSystem: new VscodeFileSystem(folder.uri) })))
          : new VscodeFileSystem(folders[0].uri),
      folderLevel: folders.length > 1 ? 1 : 0,
    });

    const onDisk = (kind: 'created' | 'changed' | 'deleted') => (uri: vscode.Uri) => {
      const path = this.relativePath(uri);
      if (path !== undefined) void this.context.applyChange({ path, kind });
    };
    for (const folder of folders) {
      const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '**/*'));
      this.disposables.push(watcher, watcher.onDidCreate(onDisk('created')), watcher.onDidChange(onDisk('changed')), watcher.onDidDelete(onDisk('deleted')));
    }
    this.disposables.push(
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

  /** Repository path of a file of the folders, or undefined for anything else. */
  private relativePath(uri: vscode.Uri): string | undefined {
    return repositoryPathOf(this.folders, uri);
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
