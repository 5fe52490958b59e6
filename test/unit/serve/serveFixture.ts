// A `tidal serve` HTTP server on loopback over the embedded model, with a spy on the results
// the engine returns (to see cancellations that the HTTP client cannot see).
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { ModelSession } from '../../../src/host/modelSession';
import type { GenerateParams, GenerateResult } from '../../../src/core/protocol/protocol';
import { loadAddon } from '../../../src/native/addon';
import { createTidalServer, ServedModel, ServeOptions } from '../../../src/serve/httpServer';

export const embeddedModelDir = path.resolve('models/tidal-code-mini');

/**
 * The embedded model at 16K tokens of context (its own is 128K), as `tidal serve --max-context
 * 16384` would serve it: a prompt over the context is refused before any work, where one just
 * under 128K would take minutes to read on two cores.
 */
export function loadEmbeddedSession(): Promise<ModelSession> {
  return ModelSession.load(loadAddon(path.resolve('dist')), { modelDir: embeddedModelDir, options: { threads: 2, backend: 'cpu', maxContext: 16384 } });
}

export interface ServerFixture {
  baseUrl: string; // ends in /v1
  port: number;
  results: GenerateResult[];
  close(): Promise<void>;
}

export async function startServer(session: ModelSession, options: Partial<ServeOptions> = {}): Promise<ServerFixture> {
  const results: GenerateResult[] = [];
  const spy: ServedModel = {
    fimFormat: session.fimFormat,
    tokenizer: session.tokenizer,
    info: () => session.info(),
    cancel: (id) => session.cancel(id),
    generate: async (params: GenerateParams, onText?: (text: string) => void) => {
      const result = await session.generate(params, onText);
      results.push(result);
      return result;
    },
  };
  const server = createTidalServer({ model: spy, modelId: 'tidal-code-mini', ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    results,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// Waits until the spy has seen `count` results (a cancelled request settles after its client left).
export async function waitForResults(fixture: ServerFixture, count: number): Promise<void> {
  for (let i = 0; i < 500 && fixture.results.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
}
