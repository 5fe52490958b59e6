// Command line of `tidal serve`:
//   node dist/tidal-serve.js --model DIR [--tokenizer DIR] [--host 127.0.0.1] [--port 8765]
//     [--api-key-file FILE] [--model-name NAME] [--backend cpu|cuda] [--threads N]
//     [--max-context N] [--max-body-mb N]
// The API key comes from --api-key-file or the TIDAL_API_KEY environment variable (never from
// the command line, where other users of the machine could read it).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ServeArgs {
  modelDir: string;
  tokenizerDir?: string;
  modelName: string;
  host: string;
  port: number;
  apiKey?: string;
  backend?: 'cpu' | 'cuda';
  threads?: number;
  maxContext?: number;
  maxBodyBytes: number;
}

export class UsageError extends Error {}

export const USAGE =
  'usage: tidal-serve --model DIR [--tokenizer DIR] [--host 127.0.0.1] [--port 8765] [--api-key-file FILE]\n' +
  '                   [--model-name NAME] [--backend cpu|cuda] [--threads N] [--max-context N] [--max-body-mb N]\n' +
  'The API key may also come from the TIDAL_API_KEY environment variable.';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function integer(flag: string, value: string, min: number, max: number): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) throw new UsageError(`${flag} must be an integer in [${min}, ${max}], not "${value}".`);
  return number;
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeArgs {
  const values = new Map<string, string>();
  const flags = new Set(['--model', '--tokenizer', '--host', '--port', '--api-key-file', '--model-name', '--backend', '--threads', '--max-context', '--max-body-mb']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!flags.has(flag)) throw new UsageError(`Unknown option ${arg}.`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value.`);
    values.set(flag, value);
  }
  const modelDir = values.get('--model');
  if (modelDir === undefined) throw new UsageError('--model DIR is required (a Hugging Face model folder or a GGUF file).');
  let apiKey: string | undefined;
  const keyFile = values.get('--api-key-file');
  if (keyFile !== undefined) {
    try {
      apiKey = fs.readFileSync(keyFile, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`Cannot read the API key file ${keyFile}: ${(error as Error).message}`);
    }
    if (apiKey.length === 0) throw new UsageError(`The API key file ${keyFile} is empty.`);
  } else if (env.TIDAL_API_KEY !== undefined && env.TIDAL_API_KEY.trim() !== '') {
    apiKey = env.TIDAL_API_KEY.trim();
  }
  const backend = values.get('--backend');
  if (backend !== undefined && backend !== 'cpu' && backend !== 'cuda') throw new UsageError(`--backend must be cpu or cuda, not "${backend}".`);
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
    maxBodyBytes: (values.has('--max-body-mb') ? integer('--max-body-mb', values.get('--max-body-mb') as string, 1, 4096) : 16) * 1024 * 1024,
  };
}

// A server reachable from other machines without a key is worth a warning.
export function exposureWarning(args: ServeArgs): string | undefined {
  if (LOOPBACK.has(args.host) || args.apiKey !== undefined) return undefined;
  return `warning: listening on ${args.host} without an API key: anyone who can reach this port can use the model. Set TIDAL_API_KEY or --api-key-file.`;
}
