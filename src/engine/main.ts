// Engine host process: started by the extension with VS Code's own Node, it loads the
// native engine and serves JSON-RPC on stdin/stdout. A crash here never takes the editor down.
import * as path from 'node:path';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';

import { loadAddon } from '../native/addon';
import { echoRequest, engineInfoRequest, logNotification, shutdownRequest } from './protocol';

const connection = createMessageConnection(new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));

// stdout carries the protocol: route stray console output to stderr, which the extension logs.
console.log = (...args: unknown[]) => console.error(...args);

const addon = loadAddon(path.dirname(__filename));

connection.onRequest(engineInfoRequest, () => {
  const cuda = addon.probeCuda();
  return {
    engineVersion: addon.engineVersion(),
    compiledBackends: addon.compiledBackends(),
    cuda: { usable: cuda.usable, deviceName: cuda.deviceName, message: cuda.message },
    pid: process.pid,
    nodeVersion: process.versions.node,
  };
});

connection.onRequest(echoRequest, ({ text }) => ({ text }));

// Answer first; the client then closes stdin (onClose below). The timer is a backstop for a
// client that never closes, long enough for the answer to be flushed.
connection.onRequest(shutdownRequest, () => {
  setTimeout(() => process.exit(0), 500).unref();
});

connection.onClose(() => process.exit(0));
connection.listen();
connection.sendNotification(logNotification, { level: 'info', message: `engine host ${process.pid} started` });
