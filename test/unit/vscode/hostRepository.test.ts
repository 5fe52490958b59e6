// The workspace as the engine host holds it, against a fake connection that records what the
// extension sends: when the workspace is (re)opened or closed, what workspace/open carries,
// how file events are batched and filtered, and how the host's status and failures are kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCodes, ResponseError } from 'vscode-jsonrpc';

import type { RepositoryStatus, WorkspaceFileEvent, WorkspaceOpenParams } from '../../../src/core/protocol/protocol';
import { relativePathIn } from '../../../src/core/context/uriPath';
import { EVENT_BATCH_MS, HostRepository, workspaceOpenParams, type FolderParts, type RepositoryConnection } from '../../../src/vscode/hostRepository';
import { DEFAULT_SETTINGS, type TidalSettings } from '../../../src/vscode/settings';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const afterBatch = () => sleep(EVENT_BATCH_MS + 30);

const uri = (path: string, scheme = 'file') => ({ scheme, authority: '', path, fsPath: path });
const folder = (path: string): FolderParts => ({ uri: uri(path), name: path.slice(path.lastIndexOf('/') + 1) });

const ready: RepositoryStatus = {
  state: 'ready',
  files: 12,
  droppedFiles: 1,
  skippedFiles: 0,
  totalTokens: 45_000,
  warmTokens: 45_000,
  restoredTokens: 40_000,
};

class FakeRpc {
  readonly requests: { method: string; params?: unknown }[] = [];
  readonly notifications: { method: string; params?: unknown }[] = [];
  answerOpen: (params: WorkspaceOpenParams) => Promise<RepositoryStatus> = async () => ready;

  get opens(): WorkspaceOpenParams[] {
    return this.requests.filter((request) => request.method === 'workspace/open').map((request) => request.params as WorkspaceOpenParams);
  }

  get events(): WorkspaceFileEvent[][] {
    return this.notifications.filter((n) => n.method === 'workspace/events').map((n) => (n.params as { events: WorkspaceFileEvent[] }).events);
  }

  readonly connection = {
    sendRequest: async (type: { method: string }, params?: unknown) => {
      this.requests.push({ method: type.method, params });
      if (type.method === 'workspace/open') return this.answerOpen(params as WorkspaceOpenParams);
      return undefined;
    },
    sendNotification: async (type: { method: string }, params?: unknown) => {
      this.notifications.push({ method: type.method, params });
    },
  } as unknown as RepositoryConnection;
}

function setup(options: { settings?: TidalSettings } = {}) {
  const rpc = new FakeRpc();
  const world = {
    rpc: rpc.connection as RepositoryConnection | undefined,
    folder: folder('/home/dev/demo') as FolderParts | undefined,
    /** More folders after `folder` (a multi-root workspace). */
    moreFolders: [] as FolderParts[],
    settings: options.settings ?? DEFAULT_SETTINGS,
    modelReady: true,
    maxTokens: 30_000,
  };
  const logged: string[] = [];
  const repository = new HostRepository({
    rpc: () => world.rpc,
    target: () =>
      world.folder && world.modelReady
        ? {
            folders: [world.folder, ...world.moreFolders],
            params: workspaceOpenParams([world.folder, ...world.moreFolders], world.settings, world.maxTokens, '/storage/tidal', 'team (Workspace)'),
          }
        : undefined,
    log: { info: (message) => logged.push(`info ${message}`), warn: (message) => logged.push(`warn ${message}`) },
  });
  const seen: (RepositoryStatus | undefined)[] = [];
  repository.onDidChange((status) => seen.push(status));
  return { rpc, world, repository, logged, seen };
}

test('model ready opens the folder in the host with the settings; the answer is the status', async () => {
  const { rpc, repository, seen } = setup();
  repository.modelChanged('ready');
  await afterBatch();
  assert.deepEqual(rpc.opens, [
    {
      root: '/home/dev/demo',
      repoName: 'demo',
      include: DEFAULT_SETTINGS.context.include,
      exclude: DEFAULT_SETTINGS.context.exclude,
      maxTokens: 30_000,
      reuseShiftedKv: true,
      persistDir: '/storage/tidal/kv',
      persistMaxBytes: 20 * 1024 ** 3,
    },
  ]);
  assert.deepEqual(repository.status, ready);
  assert.deepEqual(seen, [ready]);
  assert.deepEqual(repository.part(), { source: 'host', files: 12, tokens: 45_000 });
});

test('workspace/open: persistence off (or a 0 GB bound) sends no persistDir; reuseShiftedKv follows the setting', () => {
  const off = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, persist: false, reuseShiftedKv: false } };
  const params = workspaceOpenParams([folder('/w')], off, 100, '/storage');
  assert.equal(params.persistDir, undefined);
  assert.equal(params.persistMaxBytes, undefined);
  assert.equal(params.reuseShiftedKv, false);
  const zero = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, persistMaxGB: 0 } };
  assert.equal(workspaceOpenParams([folder('/w')], zero, 100, '/storage').persistDir, undefined);
});

test('a save becomes one changed event, also when the watcher reports the same change', async () => {
  const { rpc, repository } = setup();
  await repository.open('test');
  repository.fileEvent(uri('/home/dev/demo/src/a.ts'), 'changed'); // onDidSaveTextDocument
  repository.fileEvent(uri('/home/dev/demo/src/a.ts'), 'changed'); // the watcher, a little later
  assert.deepEqual(rpc.events, [], 'nothing is sent before the batch closes');
  await afterBatch();
  assert.deepEqual(rpc.events, [[{ path: 'src/a.ts', kind: 'changed' }]]);
});

test('a burst of watcher events within 50 ms is one notification; a file created then changed stays created', async () => {
  const { rpc, repository } = setup();
  await repository.open('test');
  repository.fileEvent(uri('/home/dev/demo/src/new.ts'), 'created');
  await sleep(10);
  repository.fileEvent(uri('/home/dev/demo/src/b.ts'), 'changed');
  repository.fileEvent(uri('/home/dev/demo/src/new.ts'), 'changed');
  await sleep(10);
  repository.fileEvent(uri('/home/dev/demo/old/c.py'), 'deleted');
  await afterBatch();
  assert.deepEqual(rpc.events, [
    [
      { path: 'src/new.ts', kind: 'created' },
      { path: 'src/b.ts', kind: 'changed' },
      { path: 'old/c.py', kind: 'deleted' },
    ],
  ]);
  // The next event starts a new batch.
  repository.fileEvent(uri('/home/dev/demo/src/b.ts'), 'deleted');
  await afterBatch();
  assert.equal(rpc.events.length, 2);
  assert.deepEqual(rpc.events[1], [{ path: 'src/b.ts', kind: 'deleted' }]);
});

test('events outside the folder, in another scheme, or in skipped folders are not sent', async () => {
  const { rpc, repository } = setup();
  await repository.open('test');
  repository.fileEvent(uri('/home/dev/other/a.ts'), 'changed');
  repository.fileEvent(uri('/home/dev/demo-two/a.ts'), 'changed');
  repository.fileEvent(uri('/home/dev/demo/a.ts', 'untitled'), 'changed');
  repository.fileEvent(uri('/home/dev/demo/.git/index'), 'changed');
  repository.fileEvent(uri('/home/dev/demo/node_modules/x/index.js'), 'created');
  repository.fileEvent(uri('/home/dev/demo/node_modules'), 'deleted');
  await afterBatch();
  assert.deepEqual(rpc.events, []);
  assert.equal(relativePathIn(uri('/home/dev/demo/'), uri('/home/dev/demo/src/a.ts')), 'src/a.ts');
});

test('nothing is forwarded before the workspace is open, nor after the engine went down', async () => {
  const { rpc, repository, world } = setup();
  repository.fileEvent(uri('/home/dev/demo/a.ts'), 'changed');
  await afterBatch();
  await repository.open('test');
  repository.fileEvent(uri('/home/dev/demo/a.ts'), 'changed');
  repository.engineChanged('error');
  world.rpc = undefined;
  await afterBatch();
  assert.deepEqual(rpc.events, [], 'the pending batch was dropped with the engine');
  assert.equal(repository.status, undefined);
});

test('re-opens on model ready (after a load dropped it), on tidal.context.* changes and on a folder change; closes without a folder', async () => {
  const { rpc, repository, world } = setup();
  repository.modelChanged('ready');
  await afterBatch();
  repository.modelChanged('loading'); // the host drops its workspace; nothing to send
  assert.equal(repository.status, undefined);
  repository.modelChanged('ready');
  await afterBatch();
  assert.equal(rpc.opens.length, 2);

  repository.settingsChanged((section) => section === 'tidal.inlineCompletions');
  await afterBatch();
  assert.equal(rpc.opens.length, 2, 'settings outside tidal.context do not re-open');
  world.maxTokens = 9000;
  world.settings = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, exclude: ['**/vendor/**'] } };
  repository.settingsChanged((section) => section === 'tidal.context' || section === 'tidal');
  await afterBatch();
  assert.equal(rpc.opens.length, 3);
  assert.deepEqual(rpc.opens[2].exclude, ['**/vendor/**']);
  assert.equal(rpc.opens[2].maxTokens, 9000);

  world.folder = folder('/home/dev/next');
  repository.foldersChanged();
  await afterBatch();
  assert.equal(rpc.opens.at(-1)?.root, '/home/dev/next');
  repository.fileEvent(uri('/home/dev/demo/a.ts'), 'changed');
  repository.fileEvent(uri('/home/dev/next/b.ts'), 'changed');
  await afterBatch();
  assert.deepEqual(rpc.events, [[{ path: 'b.ts', kind: 'changed' }]], 'events follow the folder now open');

  world.folder = undefined;
  repository.foldersChanged();
  await afterBatch();
  assert.equal(rpc.requests.at(-1)?.method, 'workspace/close');
  assert.equal(repository.status, undefined);
});

test('the remote backend or a model that failed closes the workspace in the host', async () => {
  const { rpc, repository, world } = setup();
  repository.modelChanged('ready');
  await afterBatch();
  world.modelReady = false;
  repository.modelChanged('idle');
  await afterBatch();
  assert.deepEqual(
    rpc.requests.map((request) => request.method),
    ['workspace/open', 'workspace/close'],
  );
});

test('a host without workspace/open: logged once, no status, requests still get the (empty) host part', async () => {
  const { rpc, repository, logged, seen } = setup();
  rpc.answerOpen = async () => {
    throw new ResponseError(ErrorCodes.MethodNotFound, 'Unhandled method workspace/open');
  };
  await repository.open('model ready');
  await repository.open('model ready');
  assert.equal(repository.status, undefined);
  assert.deepEqual(seen, []);
  assert.equal(logged.filter((line) => /does not take workspace\/open/.test(line)).length, 1);
  assert.deepEqual(repository.part(), { source: 'host', files: 0, tokens: 0 });
  repository.fileEvent(uri('/home/dev/demo/a.ts'), 'changed');
  await afterBatch();
  assert.deepEqual(rpc.events, []);
});

test('an open that fails otherwise is the error state with its message', async () => {
  const { rpc, repository } = setup();
  rpc.answerOpen = async () => {
    throw new ResponseError(ErrorCodes.InternalError, 'the folder /home/dev/demo cannot be read');
  };
  await repository.open('model ready');
  assert.equal(repository.status?.state, 'error');
  assert.equal(repository.status?.message, 'the folder /home/dev/demo cannot be read');
});

test("the host's workspace/status notifications are the latest status while the workspace is open", async () => {
  const { repository, seen } = setup();
  const warming: RepositoryStatus = { state: 'warming', files: 12, droppedFiles: 0, skippedFiles: 0, totalTokens: 99_000, warmTokens: 45_000, etaMs: 12_000 };
  repository.statusNotified(warming);
  assert.equal(repository.status, undefined, 'ignored while nothing is open');
  await repository.open('test');
  repository.statusNotified(warming);
  assert.deepEqual(repository.status, warming);
  assert.deepEqual(repository.part(), { source: 'host', files: 12, tokens: 99_000 });
  assert.deepEqual(seen, [ready, warming]);
});

test('an open cut short by the engine stopping is no error: the restart opens again', async () => {
  const { rpc, repository, logged } = setup();
  rpc.answerOpen = async () => {
    // What vscode-jsonrpc rejects a pending request with when the connection is disposed.
    throw new ResponseError(ErrorCodes.PendingResponseRejected, 'Pending response rejected since connection got disposed');
  };
  await repository.open('model ready');
  assert.equal(repository.status, undefined);
  assert.deepEqual(
    logged.filter((line) => line.startsWith('warn')),
    [],
  );
});

test('several workspace folders: all of them are opened (names made unique), and file events of each carry the folder name; files outside every folder and excluded ones are dropped', async () => {
  const { rpc, world, repository } = setup();
  const suffix = Math.random().toString(36).slice(2, 7);
  // Two folders named alike (different parents) and a third nested inside the first.
  world.folder = folder(`/home/dev/app-${suffix}`);
  world.moreFolders = [folder(`/srv/other/app-${suffix}`), folder(`/home/dev/app-${suffix}/vendor/lib`)];
  await repository.open('test');
  assert.equal(rpc.opens.length, 1);
  const opened = rpc.opens[0] as { root: string; folders?: { name: string; path: string }[]; repoName?: string };
  assert.equal(opened.root, `/home/dev/app-${suffix}`);
  assert.deepEqual(opened.folders, [
    { name: `app-${suffix}`, path: `/home/dev/app-${suffix}` },
    { name: `app-${suffix} (2)`, path: `/srv/other/app-${suffix}` },
    { name: 'lib', path: `/home/dev/app-${suffix}/vendor/lib` },
  ]);
  assert.equal(opened.repoName, 'team');

  repository.fileEvent(uri(`/home/dev/app-${suffix}/src/main.ts`), 'changed');
  repository.fileEvent(uri(`/srv/other/app-${suffix}/index.ts`), 'created');
  // In the nested folder: the innermost folder names it.
  repository.fileEvent(uri(`/home/dev/app-${suffix}/vendor/lib/util.ts`), 'deleted');
  repository.fileEvent(uri(`/tmp/elsewhere/x.ts`), 'changed');
  repository.fileEvent(uri(`/srv/other/app-${suffix}/node_modules/dep/index.js`), 'changed');
  await afterBatch();
  assert.deepEqual(rpc.events, [
    [
      { path: `app-${suffix}/src/main.ts`, kind: 'changed' },
      { path: `app-${suffix} (2)/index.ts`, kind: 'created' },
      { path: 'lib/util.ts', kind: 'deleted' },
    ],
  ]);
});
