// `tidal serve` entry point: loads one model and serves it over HTTP until SIGINT/SIGTERM.
import * as path from 'node:path';

import { ModelSession } from '../host/modelSession';
import { loadEngineAddon } from '../native/addon';
import { createTidalServer } from './httpServer';
import { exposureWarning, parseServeArgs, ServeArgs, USAGE } from './serveArgs';
import { tidalErrorCode } from '../native/errors';

async function main(): Promise<void> {
  let args: ServeArgs;
  try {
    if (process.argv.includes('--help') || process.argv.includes('-h')) {
      console.log(USAGE);
      return;
    }
    args = parseServeArgs(process.argv.slice(2));
  } catch (error) {
    if (tidalErrorCode(error) !== 'ERR_TIDAL_USAGE') throw error;
    console.error(`tidal-serve: ${(error as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const addon = await loadEngineAddon(path.dirname(__filename));
  const session = await ModelSession.load(addon, {
    modelDir: args.modelDir,
    tokenizerDir: args.tokenizerDir,
    options: { backend: args.backend, threads: args.threads, maxContext: args.maxContext },
  });
  const info = session.info();
  const server = createTidalServer({
    model: session,
    modelId: args.modelName,
    apiKey: args.apiKey,
    maxBodyBytes: args.maxBodyBytes,
    host: args.host,
    allowedHosts: args.allowedHosts,
    allowedOrigins: args.allowedOrigins,
    maxTokens: args.maxTokens,
    requestTimeoutMs: args.requestTimeoutMs,
    maxQueue: args.maxQueue,
    maxConnections: args.maxConnections,
    log: (line) => console.error(line),
  });
  const warning = exposureWarning(args);
  if (warning) console.error(warning);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.port, args.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : args.port;
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  console.error(
    `tidal-serve: ${args.modelName} (${info.model.architecture}, ${info.model.backend}, context ${info.model.maxContext} tokens) ` +
      `at http://${host}:${port}/v1${args.apiKey ? ' (API key required)' : ''}`,
  );
  const stop = () => {
    console.error('tidal-serve: shutting down');
    server.close();
    server.closeAllConnections();
    session.unload().finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  const message = (error as Error)?.message ?? String(error);
  console.error(`tidal-serve: ${message}`);
  if ((error as { code?: string }).code === 'EADDRINUSE') console.error('Another program uses that port: pick another one with --port.');
  process.exit(1);
});
