// Owns the engine host child process: starts it with VS Code's own Node runtime
// (process.execPath + ELECTRON_RUN_AS_NODE), speaks JSON-RPC to it, restarts it when it
// crashes or stops answering (a watchdog pings it), and reports its state to whoever listens
// (status bar, chat view). Without a native engine on this machine (no addon file, or one the
// host cannot load) it reports 'unavailable' once and starts nothing more: the remote backend
// needs no engine host.
import { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { MessageConnection } from 'vscode-jsonrpc/node';

import { startEngineHost } from '../host/hostProcess';
import {
  echoRequest,
  EngineInfo,
  engineInfoRequest,
  logNotification,
  NO_LOCAL_ENGINE_CODE,
  progressNotification,
  shutdownRequest,
  tokenNotification,
  workspaceStatusNotification,
  type PrefillProgress,
  type RepositoryStatus,
  type TokenChunk,
} from '../core/protocol/protocol';
import { addonCandidates, findAddon, findWasmAddon, wasmAddonCandidates, type AddonProblemKind } from '../native/addon';
import { ResponseWatchdog, RestartPolicy, type WatchdogOptions } from './restartPolicy';

/** `unavailable`: there is no native engine here (see `problem`); nothing is restarted. */
export type EngineState = 'stopped' | 'starting' | 'ready' | 'error' | 'unavailable';

export interface EngineStatus {
  state: EngineState;
  info?: EngineInfo;
  message?: string;
  /** Set with `unavailable`: why the native addon is not there. */
  problem?: { kind: AddonProblemKind; message: string };
}

export class EngineClient implements vscode.Disposable {
  private child?: ChildProcess;
  private connection?: MessageConnection;
  private status: EngineStatus = { state: 'stopped' };
  private readonly policy = new RestartPolicy();
  private readonly changed = new vscode.EventEmitter<EngineStatus>();
  private readonly tokens = new vscode.EventEmitter<TokenChunk>();
  private readonly progress = new vscode.EventEmitter<PrefillProgress>();
  private readonly repositoryStatuses = new vscode.EventEmitter<RepositoryStatus>();
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: ResponseWatchdog;
  // Why the current process was killed by us while it still ran (it stopped answering).
  private killedBecause?: string;
  private disposed = false;
  readonly onDidChangeStatus = this.changed.event;
  /** engine/token notifications: the streamed text of running requests. */
  readonly onToken = this.tokens.event;
  /** engine/progress notifications: how far running requests' prompts are. */
  readonly onProgress = this.progress.event;
  /** workspace/status notifications: the host's repository warming up, ready, or failing. */
  readonly onRepositoryStatus = this.repositoryStatuses.event;

  constructor(
    private readonly hostScript: string,
    private readonly log: vscode.LogOutputChannel,
    private readonly watchdogOptions: Pick<WatchdogOptions, 'intervalMs' | 'timeoutMs' | 'timers'> = {},
  ) {}

  get currentStatus(): EngineStatus {
    return this.status;
  }

  get rpc(): MessageConnection | undefined {
    return this.status.state === 'ready' ? this.connection : undefined;
  }

  async start(): Promise<void> {
    if (this.disposed) return;
    // No addon beside the host script, native or WebAssembly: no process to start.
    const bundleDir = path.dirname(this.hostScript);
    if (!findAddon(bundleDir) && !findWasmAddon(bundleDir)) {
      const message =
        `The Tidal engine is not in this installation (looked for ${addonCandidates(bundleDir).join(', ')} ` +
        `and the WebAssembly build in ${wasmAddonCandidates(bundleDir).join(', ')}).`;
      this.log.warn(`no local engine on ${process.platform}-${process.arch}: ${message}`);
      this.setStatus({ state: 'unavailable', message, problem: { kind: 'missing', message } });
      return;
    }
    this.setStatus({ state: 'starting' });
    this.killedBecause = undefined;
    const { child, connection } = startEngineHost(this.hostScript);
    this.child = child;
    this.connection = connection;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) this.log.warn(`[engine] ${line}`);
    });
    connection.onNotification(logNotification, ({ level, message }) => this.log[level](`[engine] ${message}`));
    connection.onNotification(tokenNotification, (chunk) => this.tokens.fire(chunk));
    connection.onNotification(progressNotification, (progress) => this.progress.fire(progress));
    connection.onNotification(workspaceStatusNotification, (status) => this.repositoryStatuses.fire(status));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    child.on('error', (error) => this.log.error(`engine process error: ${error.message}`));
    connection.listen();
    try {
      const info = await withTimeout(connection.sendRequest(engineInfoRequest), 30_000, 'the engine did not answer within 30 s');
      if (this.child !== child) return;
      this.log.info(
        `engine ${info.engineVersion}${info.build === 'wasm' ? ' (the WebAssembly build: no native engine loads here)' : ''} ready ` +
          `(pid ${info.pid}, Node ${info.nodeVersion}, backends ${info.compiledBackends.join('/')}` +
          `, CUDA: ${info.cuda.usable ? info.cuda.deviceName : info.cuda.message})`,
      );
      this.setStatus({ state: 'ready', info });
      this.watch(child, connection);
    } catch (error) {
      if (this.child !== child) return;
      const data = (error as { data?: { code?: unknown; kind?: unknown } }).data;
      if (data?.code === NO_LOCAL_ENGINE_CODE) {
        // The host runs but its addon did not load: stop it without counting a crash.
        const message = (error as Error).message;
        this.log.warn(`no local engine on ${process.platform}-${process.arch}: ${message}`);
        this.child = undefined;
        this.connection = undefined;
        connection.dispose();
        child.kill();
        this.setStatus({ state: 'unavailable', message, problem: { kind: data.kind === 'missing' ? 'missing' : 'unloadable', message } });
        return;
      }
      this.log.error(`engine failed to start: ${(error as Error).message}`);
      this.setStatus({ state: 'error', message: (error as Error).message });
      child.kill();
    }
  }

  // A host that stays alive but leaves a ping unanswered is killed, and its exit goes through
  // onExit like a crash: the restart policy decides what comes next.
  private watch(child: ChildProcess, connection: MessageConnection): void {
    this.watchdog?.stop();
    this.watchdog = new ResponseWatchdog({
      ...this.watchdogOptions,
      ping: () => connection.sendRequest(echoRequest, { text: 'ping' }),
      onUnresponsive: (waitedMs) => {
        if (this.child !== child) return;
        this.killedBecause = `it did not answer for ${Math.round(waitedMs / 1000)} s`;
        this.log.error(`engine process ${child.pid} stopped answering (no reply to a ping within ${Math.round(waitedMs / 1000)} s); stopping it`);
        child.kill('SIGKILL');
      },
    });
    this.watchdog.start();
  }

  async restart(): Promise<void> {
    this.policy.reset();
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    this.watchdog?.stop();
    const child = this.child;
    const connection = this.connection;
    this.child = undefined;
    this.connection = undefined;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await withTimeout(connection!.sendRequest(shutdownRequest), 2_000, 'shutdown timed out');
      connection!.dispose();
      child.stdin?.end();
    } catch {
      child.kill('SIGKILL');
    }
    await withTimeout(exited, 3_000, 'exit timed out').catch(() => child.kill('SIGKILL'));
    connection?.dispose();
    this.setStatus({ state: 'stopped' });
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return; // an exit we asked for
    this.watchdog?.stop();
    this.connection?.dispose();
    this.child = undefined;
    this.connection = undefined;
    const why = this.killedBecause ?? (signal ? `signal ${signal}` : `exit code ${code}`);
    this.killedBecause = undefined;
    const decision = this.policy.onCrash(Date.now());
    this.log.error(`engine process stopped unexpectedly (${why}); ${decision.reason}`);
    this.setStatus({ state: 'error', message: `The engine stopped unexpectedly (${why}).` });
    if (decision.restart && !this.disposed) {
      this.restartTimer = setTimeout(() => void this.start(), decision.delayMs);
    } else if (!this.disposed) {
      void vscode.window.showErrorMessage(`Tidal: ${decision.reason}. See the engine log for details.`, 'Show Log', 'Restart').then((choice) => {
        if (choice === 'Show Log') this.log.show();
        if (choice === 'Restart') void this.restart();
      });
    }
  }

  private setStatus(status: EngineStatus): void {
    this.status = status;
    this.changed.fire(status);
  }

  dispose(): void {
    this.disposed = true;
    void this.stop();
    this.changed.dispose();
    this.tokens.dispose();
    this.progress.dispose();
    this.repositoryStatuses.dispose();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
