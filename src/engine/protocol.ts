// Messages between the extension and the engine host process (JSON-RPC 2.0 over stdio).
// Both sides import these types, so a change here is checked on both ends.
import { RequestType, RequestType0, NotificationType } from 'vscode-jsonrpc';

export type BackendSetting = 'auto' | 'cuda' | 'cpu' | 'remote';
export type AttentionMode = 'full' | 'tidal' | 'quest';

export interface EngineInfo {
  engineVersion: string;
  compiledBackends: string[];
  cuda: { usable: boolean; deviceName: string; message: string };
  pid: number;
  nodeVersion: string;
}

export interface LogMessage {
  level: 'info' | 'warn' | 'error';
  message: string;
}

export const engineInfoRequest = new RequestType0<EngineInfo, void>('engine/info');
export const shutdownRequest = new RequestType0<void, void>('engine/shutdown');
export const echoRequest = new RequestType<{ text: string }, { text: string }, void>('engine/echo');
export const logNotification = new NotificationType<LogMessage>('engine/log');
