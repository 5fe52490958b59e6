// Connects the editor to the HostRepository: what (re)opens the workspace in the engine host
// (the model ready, the engine restarted, the folder or tidal.context.* changed) and the file
// events it forwards (a FileSystemWatcher per workspace folder, and saves, which the watcher may
// report late or not at all). Unsaved edits are never forwarded: the repository part is built
// from files as saved; the live text around the cursor travels with each completion.
import * as vscode from 'vscode';

import type { EngineClient } from './engineClient';
import { HostRepository, workspaceOpenParams } from './hostRepository';
import type { ModelController } from './modelController';
import { hostRendersRepository } from '../core/backend/repositoryPart';
import type { TidalSettings } from './settings';

export interface HostRepositoryWiring {
  repository: HostRepository;
  /** Whether the engine host renders the repository now (local backend, folder on disk). */
  hostRenders(): boolean;
  disposables: vscode.Disposable[];
}

export function connectHostRepository(deps: {
  engine: EngineClient;
  model: ModelController;
  settings: () => TidalSettings;
  /** The repository's token budget (what the files rendered here would get). */
  repositoryTokens: () => number;
  globalStorageDir: string;
  log: vscode.LogOutputChannel;
}): HostRepositoryWiring {
  const { engine, model, settings } = deps;
  const folders = () => vscode.workspace.workspaceFolders ?? [];
  // The host reads the files itself: every folder must be on this machine's disk.
  const hostRenders = () => {
    const current = folders();
    return current.length === 0
      ? hostRendersRepository(settings().backend, undefined)
      : current.every((folder) => hostRendersRepository(settings().backend, folder.uri.scheme));
  };
  const repository = new HostRepository({
    rpc: () => engine.rpc,
    target: () => {
      const current = [...folders()];
      if (current.length === 0 || !hostRenders() || !model.loaded) return undefined;
      return { folders: current, params: workspaceOpenParams(current, settings(), deps.repositoryTokens(), deps.globalStorageDir, vscode.workspace.name) };
    },
    log: deps.log,
  });

  let watcher: vscode.Disposable | undefined;
  const watchFolders = () => {
    watcher?.dispose();
    watcher = undefined;
    const watched = folders().filter((folder) => folder.uri.scheme === 'file');
    watcher = vscode.Disposable.from(
      ...watched.flatMap((folder) => {
        const fileWatcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '**/*'));
        return [
          fileWatcher,
          fileWatcher.onDidCreate((uri) => repository.fileEvent(uri, 'created')),
          fileWatcher.onDidChange((uri) => repository.fileEvent(uri, 'changed')),
          fileWatcher.onDidDelete((uri) => repository.fileEvent(uri, 'deleted')),
        ];
      }),
    );
  };
  watchFolders();
  const disposables: vscode.Disposable[] = [
    { dispose: () => watcher?.dispose() },
    { dispose: () => repository.dispose() },
    engine.onRepositoryStatus((status) => repository.statusNotified(status)),
    engine.onDidChangeStatus((status) => repository.engineChanged(status.state)),
    model.onDidChange((state) => repository.modelChanged(state.state)),
    vscode.workspace.onDidSaveTextDocument((document) => repository.fileEvent(document.uri, 'changed')),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      watchFolders();
      repository.foldersChanged();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => repository.settingsChanged((section) => event.affectsConfiguration(section))),
  ];
  return { repository, hostRenders, disposables };
}
