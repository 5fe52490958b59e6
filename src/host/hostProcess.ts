// Starts the engine host process (dist/engine-host.js) the way the extension does — with the
// current runtime, which inside VS Code is its own Electron run as Node — and connects
// JSON-RPC over its stdin/stdout. The caller calls `connection.listen()` after registering
// its notification handlers.
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';
import { createMessageConnection, MessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';

export interface EngineHostProcess {
  child: ChildProcessWithoutNullStreams;
  connection: MessageConnection;
}

export function startEngineHost(hostScript: string): EngineHostProcess {
  const child = spawn(process.execPath, [hostScript], {
    cwd: path.dirname(hostScript),
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  return { child, connection };
}
