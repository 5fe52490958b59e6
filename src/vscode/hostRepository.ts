// The workspace as the engine host holds it (local backend): the extension opens the
// workspace folders (all of them; see context/workspaceFolders.ts for their paths) in the host once (workspace/open; the host reads the files from disk
// itself), then forwards only file events (workspace/events), batched, and keeps the host's
// latest RepositoryStatus for the status bar, the chat budget and the tests. No `vscode`
// import: hostRepositoryWatch.ts connects the editor's events to it.
import * as path from 'node:path';
import { ErrorCodes, type MessageConnection } from 'vscode-jsonrpc';

import { PathFilter } from '../core/context/pathFilter';
import type { UriParts } from '../core/context/uriPath';
import { folderPathNames, repositoryPathOf } from '../core/context/workspaceFolders';
import {
  workspaceCloseRequest,
  workspaceEventsNotification,
  workspaceOpenRequest,
  type RepositoryStatus,
  type WorkspaceFileEvent,
  type WorkspaceOpenParams,
} from '../core/protocol/protocol';
import type { EngineState } from './engineClient';
import { isConnectionGone } from '../core/backend/localBackend';
import type { ModelState } from './modelController';
import type { RepositoryPart } from '../core/backend/repositoryPart';
import { BYTES_PER_GB, type TidalSettings } from './settings';

/** Events closer together than this go to the host in one notification. */
export const EVENT_BATCH_MS = 50;

export interface FolderParts {
  uri: UriParts & { fsPath: string };
  name: string;
}

export type RepositoryConnection = Pick<MessageConnection, 'sendRequest' | 'sendNotification'>;

export interface HostRepositoryDeps {
  /** The engine host's connection while it is ready. */
  rpc(): RepositoryConnection | undefined;
  /**
   * What the host should have open now, or undefined when it should have nothing open (no
   * folder, the remote backend, a folder the host cannot read, no model loaded).
   */
  target(): { folders: FolderParts[]; params: WorkspaceOpenParams } | undefined;
  log: { info(message: string): void; warn(message: string): void };
  batchMs?: number;
}

/**
 * The workspace/open parameters for `folders` (at least one) under the current settings;
 * `workspaceName` names a workspace of several folders (VS Code's workspace name).
 */
export function workspaceOpenParams(
  folders: readonly FolderParts[],
  settings: TidalSettings,
  maxTokens: number,
  globalStorageDir: string,
  workspaceName?: string,
): WorkspaceOpenParams {
  const { include, exclude, reuseShiftedKv, persist, persistMaxGB } = settings.context;
  const persistOn = persist && persistMaxGB > 0;
  const names = folderPathNames(folders);
  return {
    root: folders[0].uri.fsPath,
    ...(folders.length > 1 ? { folders: folders.map((folder, index) => ({ name: names[index], path: folder.uri.fsPath })) } : {}),
    repoName: repositoryName(folders, workspaceName),
    include,
    exclude,
    maxTokens,
    reuseShiftedKv,
    ...(persistOn ? { persistDir: path.join(globalStorageDir, 'kv'), persistMaxBytes: Math.floor(persistMaxGB * BYTES_PER_GB) } : {}),
  };
}

/** The repository's name in prompts: the folder's, or for several the workspace's. */
export function repositoryName(folders: readonly { name: string }[], workspaceName?: string): string | undefined {
  if (folders.length <= 1) return folders[0]?.name;
  return workspaceName?.replace(/ \(Workspace\)$/, '') || folders.map((folder) => folder.name).join('+');
}

interface OpenWorkspace {
  folders: FolderParts[];
  rpc: RepositoryConnection;
  filter: PathFilter;
}

export class HostRepository {
  private opened: OpenWorkspace | undefined;
  private latest: RepositoryStatus | undefined;
  private generation = 0;
  private readonly pending = new Map<string, WorkspaceFileEvent['kind']>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(status: RepositoryStatus | undefined) => void>();
  private readonly batchMs: number;
  private reportedUnsupported = false;

  constructor(private readonly deps: HostRepositoryDeps) {
    this.batchMs = deps.batchMs ?? EVENT_BATCH_MS;
  }

  /** The host's latest report on the repository; undefined while nothing is open there. */
  get status(): RepositoryStatus | undefined {
    return this.latest;
  }

  /** The repository part a request gets from the host, with the host's latest counts. */
  part(): RepositoryPart {
    return { source: 'host', files: this.latest?.files ?? 0, tokens: this.latest?.totalTokens ?? 0 };
  }

  onDidChange(listener: (status: RepositoryStatus | undefined) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  // ---- When to (re)open: each trigger below. ----

  /** A model load in the host drops its workspace: open again once the model is ready. */
  modelChanged(state: ModelState['state']): void {
    if (state === 'loading') this.forget();
    else void this.open(state === 'ready' ? 'model ready' : `model ${state}`);
  }

  /** A stopped or restarting engine takes the workspace with it (the model load re-opens). */
  engineChanged(state: EngineState): void {
    if (state !== 'ready') this.forget();
  }

  settingsChanged(affects: (section: string) => boolean): void {
    if (affects('tidal.context')) void this.open('settings changed');
  }

  foldersChanged(): void {
    void this.open('workspace folder changed');
  }

  // ---- Events from the editor. ----

  /** A file of the folder was created, changed (a save counts) or deleted on disk. */
  fileEvent(uri: UriParts, kind: WorkspaceFileEvent['kind']): void {
    const opened = this.opened;
    if (!opened) return;
    const relative = repositoryPathOf(opened.folders, uri);
    if (relative === undefined || opened.filter.skipsDirectory(relative) || opened.filter.skipsAncestorOf(relative)) return;
    const before = this.pending.get(relative);
    // A file created and then changed within one batch is still new to the host.
    this.pending.set(relative, before === 'created' && kind === 'changed' ? 'created' : kind);
    this.flushTimer ??= setTimeout(() => this.flush(), this.batchMs);
  }

  /** workspace/status from the host. */
  statusNotified(status: RepositoryStatus): void {
    if (!this.opened) return;
    this.setStatus(status);
  }

  /**
   * Opens the target folder in the host (again: the host reads it from disk and keeps what it
   * can), or closes the workspace there when there is no target.
   */
  async open(reason: string): Promise<void> {
    const ticket = ++this.generation;
    this.dropPending();
    const rpc = this.deps.rpc();
    const target = this.deps.target();
    if (!rpc || !target) {
      const wasOpen = this.opened;
      this.opened = undefined;
      this.setStatus(undefined);
      if (wasOpen && rpc === wasOpen.rpc) await rpc.sendRequest(workspaceCloseRequest).catch(() => undefined);
      return;
    }
    const { folders, params } = target;
    const name = folders.length > 1 ? `${folders.length} folders (${folders.map((folder) => folder.name).join(', ')})` : folders[0].name;
    // Events from here on follow the open request on the same stream, so the host sees them after it.
    this.opened = { folders, rpc, filter: new PathFilter(params.include, params.exclude, folders.length > 1 ? 1 : 0) };
    try {
      const status = await rpc.sendRequest(workspaceOpenRequest, params);
      if (ticket !== this.generation) return;
      this.deps.log.info(
        `repository: ${name} opened in the engine host (${reason}): ${status.state}, ${status.files} files, ${status.totalTokens} tokens` +
          `${status.restoredTokens ? `, ${status.restoredTokens} restored from disk` : ''}`,
      );
      this.setStatus(status);
    } catch (error) {
      if (ticket !== this.generation) return;
      this.opened = undefined;
      if ((error as { code?: number }).code === ErrorCodes.MethodNotFound) {
        // An engine host without the workspace layer: requests go without a repository part.
        if (!this.reportedUnsupported)
          this.deps.log.info('repository: this engine host does not take workspace/open; completions and chat run without the repository');
        this.reportedUnsupported = true;
        this.setStatus(undefined);
        return;
      }
      const message = (error as Error).message ?? String(error);
      if (isConnectionGone(error)) {
        // The engine stopped meanwhile; its restart and model load open the workspace again.
        this.setStatus(undefined);
        return;
      }
      this.deps.log.warn(`repository: opening ${name} in the engine host failed: ${message}`);
      this.setStatus({ state: 'error', files: 0, droppedFiles: 0, skippedFiles: 0, totalTokens: 0, warmTokens: 0, message });
    }
  }

  /** The host no longer has the workspace (engine down, model loading): nothing to send to. */
  forget(): void {
    this.generation++;
    this.dropPending();
    this.opened = undefined;
    this.setStatus(undefined);
  }

  dispose(): void {
    this.forget();
    this.listeners.clear();
  }

  private flush(): void {
    this.flushTimer = undefined;
    const opened = this.opened;
    if (!opened || this.pending.size === 0) return;
    const events = [...this.pending].map(([path, kind]) => ({ path, kind }));
    this.pending.clear();
    opened.rpc.sendNotification(workspaceEventsNotification, { events }).catch((error: Error) => {
      this.deps.log.warn(`repository: sending ${events.length} file events to the engine host failed: ${error.message}`);
    });
  }

  private dropPending(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.pending.clear();
  }

  private setStatus(status: RepositoryStatus | undefined): void {
    if (status === undefined && this.latest === undefined) return;
    this.latest = status;
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch {
        // A failing listener must not break the others.
      }
    }
  }
}
