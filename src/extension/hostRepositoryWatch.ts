// Connects the editor to the HostRepository: what (re)opens the workspace in the engine host
// (the model ready, the engine restarted, the folder or tidal.context.* changed) and the file
// events it forwards (the first folder's FileSystemWatcher, and saves, which the watcher may
// report late or not at all). Unsaved edits are never forwarded: the repository part is built
// from files as saved; the live text around the cursor travels with each completion.
import * as vscode from 'vscode';

import type { EngineClient } from './engineClient';
import type { HostRepository } from './hostRepository';
import type { ModelController } from './modelController';

export function watchHostRepository(repository: HostRepository, engine: EngineClient, model: ModelController): vscode.Disposable[] {
  let watcher: vscode.Disposable | undefined;
  const watchFirstFolder = () => {
    watcher?.dispose();
    watcher = undefined;
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder || folder.uri.scheme !== 'file') return;
    const fileWatcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '**/*'));
    const subscriptions = [
      fileWatcher,
      fileWatcher.onDidCreate((uri) => repository.fileEvent(uri, 'created')),
      fileWatcher.onDidChange((uri) => repository.fileEvent(uri, 'changed')),
      fileWatcher.onDidDelete((uri) => repository.fileEvent(uri, 'deleted')),
    ];
    watcher = vscode.Disposable.from(...subscriptions);
  };
  watchFirstFolder();
  return [
    { dispose: () => watcher?.dispose() },
    { dispose: () => repository.dispose() },
    engine.onRepositoryStatus((status) => repository.statusNotified(status)),
    engine.onDidChangeStatus((status) => repository.engineChanged(status.state)),
    model.onDidChange((state) => repository.modelChanged(state.state)),
    vscode.workspace.onDidSaveTextDocument((document) => repository.fileEvent(document.uri, 'changed')),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      watchFirstFolder();
      repository.foldersChanged();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => repository.settingsChanged((section) => event.affectsConfiguration(section))),
  ];
}
