// The engine addon built to WebAssembly (native/wasm/build.sh: tidal_native.js, .wasm and
// .worker.js, the CPU and WebGPU backends over Emscripten's pthreads, Node-API through emnapi),
// for the platforms without a native build (macOS, Windows on Arm): the same exports as
// tidal_native.node once loaded. Loading is asynchronous: Emscripten compiles the module and
// starts its pool of worker threads first.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';

import { getDefaultContext } from '@emnapi/runtime';

/** Files of one WebAssembly build, all in one folder. */
export const WASM_ADDON_FILES = ['tidal_native.js', 'tidal_native.wasm', 'tidal_native.worker.js'] as const;

interface EmscriptenPThread {
  unusedWorkers: Worker[];
  runningWorkers: Worker[];
  getNewWorker(...args: unknown[]): Worker | undefined;
}

interface EmscriptenModule {
  PThread: EmscriptenPThread;
  emnapiInit(options: { context: unknown; filename: string; asyncWorkPoolSize: number }): unknown;
}

type CreateModule = (settings: { wasmBinary: Uint8Array; printErr: (line: string) => void }) => Promise<EmscriptenModule>;

/** Whether `folder` holds a complete WebAssembly build. */
export function isWasmAddonFolder(folder: string): boolean {
  return WASM_ADDON_FILES.every((file) => fs.existsSync(path.join(folder, file)));
}

/**
 * Loads the build in `folder` and resolves to its exports (the caller types them). Engine calls
 * run as Node-API async work on `asyncWorkPoolSize` of the module's threads; the CPU backend's
 * own threads come from the same pool (native/wasm/build.sh sizes it).
 */
export async function loadWasmAddon(folder: string, asyncWorkPoolSize = 2): Promise<unknown> {
  folder = path.resolve(folder);
  // The glue is Emscripten's CommonJS module (MODULARIZE): require() with a path known only here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const create = require(path.join(folder, 'tidal_native.js')) as CreateModule;
  const module = await create({
    // Emscripten 3.1.6 would fetch() the .wasm where a global fetch exists (Node 18 and later),
    // which fails for a file; the bytes are handed over instead.
    wasmBinary: fs.readFileSync(path.join(folder, 'tidal_native.wasm')),
    // It also reports every emnapi message from a worker as unknown; they are handled anyway.
    printErr: (line) => {
      if (!String(line).startsWith('worker sent an unknown command')) process.stderr.write(`${line}\n`);
    },
  });
  // Idle workers of the pool must not keep the process alive (3.1.6 keeps them referenced);
  // emnapi references a worker while async work runs on it.
  const pthread = module.PThread;
  for (const worker of [...pthread.unusedWorkers, ...pthread.runningWorkers]) worker.unref();
  const getNewWorker = pthread.getNewWorker.bind(pthread);
  pthread.getNewWorker = (...args: unknown[]) => {
    const worker = getNewWorker(...args);
    worker?.unref();
    return worker;
  };
  return module.emnapiInit({ context: getDefaultContext(), filename: path.join(folder, 'tidal_native.wasm'), asyncWorkPoolSize });
}
