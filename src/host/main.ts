// Engine host process: started by the extension with VS Code's own Node, it loads the
// native engine and serves JSON-RPC on stdin/stdout. A crash here never takes the editor down.
// Every request's params are checked on arrival (protocolCheck.ts); input whose framing is
// broken ends the process with a non-zero code, since no later message can be found in it, and
// the extension starts a new one.
import * as path from 'node:path';
import { createMessageConnection, ErrorCodes, ResponseError, StreamMessageWriter } from 'vscode-jsonrpc/node';

import { AddonLoadError, addonBuild, loadEngineAddon, type NativeAddon } from '../native/addon';
import { TidalError } from '../native/errors';
import { StrictMessageReader } from './messageReader';
import { formatFailedRequestLog, formatRequestLog, requestLogEntry } from './requestLog';
import { ModelSession } from './modelSession';
import {
  cancelRequest,
  echoRequest,
  engineInfoRequest,
  generateRequest,
  loadModelRequest,
  logNotification,
  prefetchNotification,
  shutdownRequest,
  statsRequest,
  progressNotification,
  tokenNotification,
  unloadModelRequest,
  workspaceCloseRequest,
  workspaceEventsNotification,
  workspaceOpenRequest,
  workspaceStatusNotification,
  workspaceStatusRequest,
  NO_LOCAL_ENGINE_CODE,
  type RepositoryStatus,
} from '../core/protocol/protocol';
import { checkCancelParams, checkEchoParams, checkGenerateParams, checkLoadModelParams, checkWorkspaceOpenParams, wellFormedEvents } from './protocolCheck';

const reader = new StrictMessageReader(process.stdin);
const writer = new StreamMessageWriter(process.stdout);
const connection = createMessageConnection(reader, writer);

reader.onError((error) => {
  process.stderr.write(`engine host ${process.pid}: stopping, its input is not JSON-RPC any more: ${error.message}\n`);
  process.exit(2);
});
writer.onError(([error]) => process.stderr.write(`engine host ${process.pid}: could not write a message: ${error.message}\n`));

// stdout carries the protocol: route stray console output to stderr, which the extension logs.
console.log = (...args: unknown[]) => console.error(...args);

// An addon that does not load here (built for another platform or Node-API version, a shared
// library missing) leaves the host running: every request that needs it, engine/info first, is
// answered with NO_LOCAL_ENGINE_CODE and the reason, and the extension stops the host and offers
// the remote backend instead of restarting it in a loop.
// The native addon, or where there is none for this platform the WebAssembly build
// (loadEngineAddon); the latter loads asynchronously, so requests wait for it.
let addonProblem: AddonLoadError | undefined;
const addonLoading: Promise<NativeAddon | undefined> = loadEngineAddon(path.dirname(__filename), undefined, (message) =>
  process.stderr.write(`engine host ${process.pid}: ${message}\n`),
).then(
  (addon) => addon,
  (error: unknown) => {
    addonProblem = error instanceof AddonLoadError ? error : new AddonLoadError((error as Error).message);
    process.stderr.write(`engine host ${process.pid}: ${addonProblem.message}\n`);
    return undefined;
  },
);

async function nativeAddon(): Promise<NativeAddon> {
  const addon = await addonLoading;
  if (addon) return addon;
  throw new ResponseError(ErrorCodes.InternalError, addonProblem?.message ?? 'The Tidal native engine is not available.', {
    code: NO_LOCAL_ENGINE_CODE,
    kind: addonProblem?.kind ?? 'unloadable',
  });
}

connection.onRequest(engineInfoRequest, async () => {
  const addon = await nativeAddon();
  const cuda = addon.probeCuda();
  return {
    engineVersion: addon.engineVersion(),
    compiledBackends: addon.compiledBackends(),
    cuda: { usable: cuda.usable, deviceName: cuda.deviceName, message: cuda.message },
    pid: process.pid,
    nodeVersion: process.versions.node,
    build: addonBuild(addon),
  };
});

// A request's params, checked: a bad field is answered with InvalidParams naming it.
function checkedParams<T>(method: string, check: (value: unknown) => T, params: unknown): T {
  try {
    return check(params);
  } catch (error) {
    if (!(error instanceof TidalError) || error.code !== 'ERR_TIDAL_REQUEST') throw error;
    throw new ResponseError(ErrorCodes.InvalidParams, `${method}: ${error.message}`, { code: error.code });
  }
}

connection.onRequest(echoRequest, (params) => ({ text: checkedParams(echoRequest.method, checkEchoParams, params).text }));

// The model layer: one loaded model at a time; loading another unloads the previous one.
let session: ModelSession | undefined;

// Errors reach the extension with their message and, where the engine gave one, their code
// (ERR_TIDAL_*) in `data.code`, so the extension can tell a bad request from a broken engine.
async function answering<T>(work: () => Promise<T> | T): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ResponseError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new ResponseError(ErrorCodes.InternalError, (error as Error).message ?? String(error), {
      code: typeof code === 'string' ? code : 'ERR_TIDAL_ENGINE',
    });
  }
}

function loadedSession(): ModelSession {
  if (session === undefined) {
    throw Object.assign(new Error('No model is loaded: send engine/loadModel first.'), { code: 'ERR_TIDAL_REQUEST' });
  }
  return session;
}

connection.onRequest(loadModelRequest, (raw) =>
  answering(async () => {
    const params = checkedParams(loadModelRequest.method, checkLoadModelParams, raw);
    const previous = session;
    session = undefined;
    await previous?.unload();
    session = await ModelSession.load(await nativeAddon(), params, (message) => connection.sendNotification(logNotification, { level: 'info', message }));
    session.onRepositoryStatus((status) => connection.sendNotification(workspaceStatusNotification, status));
    const info = session.info();
    connection.sendNotification(logNotification, {
      level: 'info',
      message: `loaded ${info.model.architecture} model from ${params.modelDir} (${info.model.backend}, vocabulary of ${info.tokenizer.vocabSize} tokens)`,
    });
    return info;
  }),
);

connection.onRequest(unloadModelRequest, async () => {
  const previous = session;
  session = undefined;
  await previous?.unload();
});

// One log line per request (requestLog.ts), answered or failed.
const logRequest = (message: string) => connection.sendNotification(logNotification, { level: 'info', message });

connection.onRequest(generateRequest, (raw) =>
  answering(async () => {
    const params = checkedParams(generateRequest.method, checkGenerateParams, raw);
    const arrived = performance.now();
    try {
      const result = await loadedSession().generate(
        params,
        (text) => connection.sendNotification(tokenNotification, { requestId: params.requestId, text }),
        (progress) => connection.sendNotification(progressNotification, { requestId: params.requestId, ...progress }),
      );
      logRequest(formatRequestLog(requestLogEntry(params, result)));
      return result;
    } catch (error) {
      logRequest(formatFailedRequestLog(params, performance.now() - arrived, (error as Error).message ?? String(error)));
      throw error;
    }
  }),
);

// The workspace: the host reads the files itself; the extension sends events only. A model
// load starts with no workspace: the extension opens it again once the model is ready.
const closedRepository: RepositoryStatus = { state: 'closed', files: 0, droppedFiles: 0, skippedFiles: 0, totalTokens: 0, warmTokens: 0 };

connection.onRequest(workspaceOpenRequest, (raw) =>
  answering(() => loadedSession().openWorkspace(checkedParams(workspaceOpenRequest.method, checkWorkspaceOpenParams, raw))),
);

// Notifications cannot be answered: malformed events are dropped, and the log says so.
connection.onNotification(workspaceEventsNotification, (params) => {
  const { events, dropped } = wellFormedEvents(params);
  if (dropped > 0) connection.sendNotification(logNotification, { level: 'warn', message: `workspace/events: dropped ${dropped} malformed event(s)` });
  if (events.length > 0)
    void session
      ?.workspaceEvents(events)
      .catch((error) => connection.sendNotification(logNotification, { level: 'warn', message: `workspace events failed: ${(error as Error).message}` }));
});

connection.onRequest(workspaceCloseRequest, async () => {
  await session?.closeWorkspace();
});

connection.onRequest(workspaceStatusRequest, () => session?.repositoryStatus() ?? closedRepository);

connection.onNotification(prefetchNotification, (raw) => {
  let params;
  try {
    params = checkGenerateParams(raw);
  } catch (error) {
    connection.sendNotification(logNotification, { level: 'warn', message: `engine/prefetch: dropped, ${(error as Error).message}` });
    return;
  }
  if (params.kind !== 'completion') return;
  session?.prefetch(params).catch(() => undefined);
});

connection.onRequest(cancelRequest, (params) => ({
  cancelled: session?.cancel(checkedParams(cancelRequest.method, checkCancelParams, params).requestId) ?? false,
}));

connection.onRequest(
  statsRequest,
  () =>
    session?.stats() ?? {
      model: null,
      usage: null,
      prefixCache: { slots: 0, cachedTokens: 0, requests: 0, tokensReused: 0, tokensRecomputed: 0 },
      queue: { queued: 0, running: null, completed: 0, cancelled: 0 },
    },
);

// Answer first; the client then closes stdin (onClose below). The timer is a backstop for a
// client that never closes, long enough for the answer to be flushed.
connection.onRequest(shutdownRequest, () => {
  setTimeout(() => process.exit(0), 500).unref();
});

connection.onClose(() => process.exit(0));
connection.listen();
connection.sendNotification(logNotification, { level: 'info', message: `engine host ${process.pid} started` });
