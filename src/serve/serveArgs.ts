// Command line of `tidal serve` (see USAGE). The API key comes from --api-key-file or the
// TIDAL_API_KEY environment variable (never from the command line, where other users of the
// machine could read it).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { TidalError } from '../native/errors';

import { SERVE_DEFAULTS } from './httpServer';
import { normalizeOrigin } from './requestGuards';

export interface ServeArgs {
  modelDir: string;
  tokenizerDir?: string;
  modelName: string;
  host: string;
  port: number;
  apiKey?: string;
  backend?: 'cpu' | 'cuda' | 'webgpu';
  threads?: number;
  maxContext?: number;
  maxBodyBytes: number;
  allowedHosts: string[];
  allowedOrigins: string[];
  maxTokens: number;
  requestTimeoutMs: number;
  maxQueue: number;
  maxConnections: number;
}

/** A command line that cannot be used: ERR_TIDAL_USAGE; main prints the message and the usage. */
export const usageError = (message: string) => new TidalError('ERR_TIDAL_USAGE', message);

export const USAGE = [
  'usage: tidal-serve --model DIR [--tokenizer DIR] [--host 127.0.0.1] [--port 8765] [--api-key-file FILE]',
  '                   [--model-name NAME] [--backend cpu|cuda|webgpu] [--threads N] [--max-context N]',
  '                   [--allow-host NAME]... [--allow-origin URL]... [--max-body-mb N] [--max-tokens N]',
  '                   [--request-timeout-s N] [--max-queue N] [--max-connections N]',
  'The API key may also come from the TIDAL_API_KEY environment variable.',
  '  --allow-host NAME       also answer requests whose Host is NAME (besides localhost, 127.0.0.1, [::1]',
  '                          and the listening address); repeatable',
  '  --allow-origin URL      let the web page at URL (e.g. https://app.example) call the server; without it',
  '                          requests that carry an Origin are refused; repeatable',
  `  --max-body-mb N         largest request body (default ${SERVE_DEFAULTS.maxBodyBytes / (1024 * 1024)})`,
  `  --max-tokens N          largest max_tokens a request may ask for (default ${SERVE_DEFAULTS.maxTokens})`,
  `  --request-timeout-s N   time one request may take, waiting included; then it ends with what it has (default ${SERVE_DEFAULTS.requestTimeoutMs / 1000})`,
  `  --max-queue N           requests that may wait for the model; more get 503 (default ${SERVE_DEFAULTS.maxQueue})`,
  `  --max-connections N     open connections; more are closed at once (default ${SERVE_DEFAULTS.maxConnections})`,
].join('\n');

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function integer(flag: string, value: string, min: number, max: number): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) throw usageError(`${flag} must be an integer in [${min}, ${max}], not "${value}".`);
  return number;
}

const REPEATABLE = new Set(['--allow-host', '--allow-origin']);

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeArgs {
  const values = new Map<string, string>();
  const lists = new Map<string, string[]>([...REPEATABLE].map((flag) => [flag, []]));
  const flags = new Set([
    '--model',
    '--tokenizer',
    '--host',
    '--port',
    '--api-key-file',
    '--model-name',
    '--backend',
    '--threads',
    '--max-context',
    '--max-body-mb',
    '--max-tokens',
    '--request-timeout-s',
    '--max-queue',
    '--max-connections',
    ...REPEATABLE,
  ]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!flags.has(flag)) throw usageError(`Unknown option ${arg}.`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw usageError(`${flag} needs a value.`);
    if (REPEATABLE.has(flag)) (lists.get(flag) as string[]).push(value);
    else values.set(flag, value);
  }
  const optionalInteger = (flag: string, min: number, max: number, fallback: number) =>
    values.has(flag) ? integer(flag, values.get(flag) as string, min, max) : fallback;
  const allowedHosts = lists.get('--allow-host') as string[];
  for (const name of allowedHosts) {
    if (!/^(\[[0-9a-f:.]+\]|[0-9a-z.:-]+)$/i.test(name))
      throw usageError(`--allow-host takes a host name or address without scheme, port or path, not "${name}".`);
  }
  const allowedOrigins = (lists.get('--allow-origin') as string[]).map((origin) => {
    const normalized = normalizeOrigin(origin);
    if (normalized === undefined) throw usageError(`--allow-origin takes an origin such as https://app.example or http://localhost:3000, not "${origin}".`);
    return normalized;
  });
  const modelDir = values.get('--model');
  if (modelDir === undefined) throw usageError('--model DIR is required (a Hugging Face model folder or a GGUF file).');
  let apiKey: string | undefined;
  const keyFile = values.get('--api-key-file');
  if (keyFile !== undefined) {
    try {
      apiKey = fs.readFileSync(keyFile, 'utf8').trim();
    } catch (error) {
      throw usageError(`Cannot read the API key file ${keyFile}: ${(error as Error).message}`);
    }
    if (apiKey.length === 0) throw usageError(`The API key file ${keyFile} is empty.`);
  } else if (env.TIDAL_API_KEY !== undefined && env.TIDAL_API_KEY.trim() !== '') {
    apiKey = env.TIDAL_API_KEY.trim();
  }
  const backend = values.get('--backend');
  if (backend !== undefined && backend !== 'cpu' && backend !== 'cuda' && backend !== 'webgpu')
    throw usageError(`--backend must be cpu, cuda or webgpu, not "${backend}".`);
  const host = values.get('--host') ?? '127.0.0.1';
  const port = values.has('--port') ? integer('--port', values.get('--port') as string, 0, 65535) : 8765;
  return {
    modelDir: path.resolve(modelDir),
    tokenizerDir: values.has('--tokenizer') ? path.resolve(values.get('--tokenizer') as string) : undefined,
    modelName: values.get('--model-name') ?? path.basename(path.resolve(modelDir)),
    host,
    port,
    apiKey,
    backend: backend as ServeArgs['backend'],
    threads: values.has('--threads') ? integer('--threads', values.get('--threads') as string, 0, 1024) : undefined,
    maxContext: values.has('--max-context') ? integer('--max-context', values.get('--max-context') as string, 0, 1 << 24) : undefined,
    maxBodyBytes: optionalInteger('--max-body-mb', 1, 4096, SERVE_DEFAULTS.maxBodyBytes / (1024 * 1024)) * 1024 * 1024,
    allowedHosts,
    allowedOrigins,
    maxTokens: optionalInteger('--max-tokens', 1, 1 << 20, SERVE_DEFAULTS.maxTokens),
    requestTimeoutMs: optionalInteger('--request-timeout-s', 1, 86_400, SERVE_DEFAULTS.requestTimeoutMs / 1000) * 1000,
    maxQueue: optionalInteger('--max-queue', 0, 100_000, SERVE_DEFAULTS.maxQueue),
    maxConnections: optionalInteger('--max-connections', 1, 100_000, SERVE_DEFAULTS.maxConnections),
  };
}

// A server reachable from other machines without a key is worth a warning.
export function exposureWarning(args: ServeArgs): string | undefined {
  if (LOOPBACK.has(args.host) || args.apiKey !== undefined) return undefined;
  return `warning: listening on ${args.host} without an API key: anyone who can reach this port can use the model. Set TIDAL_API_KEY or --api-key-file.`;
}
