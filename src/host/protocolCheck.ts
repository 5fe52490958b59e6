// Checks the params of each request at the engine host's boundary against the types in
// protocol.ts: TypeScript checks both ends when they are built together, nothing checks what
// actually arrives. A bad field is refused by name (`messages[0].content must be a string, not
// a number`) before any of it reaches the tokenizer or the engine. Fields the host does not know
// are left alone, so a newer extension may send more.
import * as path from 'node:path';

import type { GenerateParams, LoadModelParams, WorkspaceFileEvent, WorkspaceOpenParams } from '../core/protocol/protocol';
import { TidalError } from '../native/errors';

/** Checks `value` at `at` (a field path such as `messages[0].content`); throws a TidalError ERR_TIDAL_REQUEST. */
type Check = (value: unknown, at: string) => void;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function fail(at: string, expected: string, value: unknown): never {
  throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be ${expected}, not ${describe(value)}.`);
}

const string: Check = (value, at) => {
  if (typeof value !== 'string') fail(at, 'a string', value);
};

const boolean: Check = (value, at) => {
  if (typeof value !== 'boolean') fail(at, 'true or false', value);
};

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Check {
  return (value, at) => {
    if (typeof value !== 'number' || !Number.isInteger(value)) fail(at, 'a whole number', value);
    if (value < min || value > max) throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be between ${min} and ${max}, not ${value}.`);
  };
}

function number(min: number, max = Number.MAX_VALUE): Check {
  return (value, at) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(at, 'a number', value);
    if (value < min || value > max) throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be between ${min} and ${max}, not ${value}.`);
  };
}

function oneOf(...choices: string[]): Check {
  return (value, at) => {
    if (typeof value !== 'string' || !choices.includes(value)) {
      throw new TidalError(
        'ERR_TIDAL_REQUEST',
        `${at} must be one of ${choices.map((choice) => `'${choice}'`).join(', ')}, not ${typeof value === 'string' ? `'${value.slice(0, 40)}'` : describe(value)}.`,
      );
    }
  };
}

function listOf(item: Check): Check {
  return (value, at) => {
    if (!Array.isArray(value)) fail(at, 'a list', value);
    value.forEach((entry, index) => item(entry, `${at}[${index}]`));
  };
}

/** An object whose listed fields are checked; a field marked optional may be absent (or undefined). */
function object(fields: Record<string, Check>, optional: readonly string[] = []): Check {
  return (value, at) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(at, 'an object', value);
    const record = value as Record<string, unknown>;
    for (const [name, check] of Object.entries(fields)) {
      const field = at === '' ? name : `${at}.${name}`;
      if (record[name] === undefined) {
        if (!optional.includes(name)) throw new TidalError('ERR_TIDAL_REQUEST', `${field} is missing.`);
        continue;
      }
      check(record[name], field);
    }
  };
}

/** Every field optional. */
const options = (fields: Record<string, Check>): Check => object(fields, Object.keys(fields));

const absolutePath: Check = (value, at) => {
  string(value, at);
  if (!path.isAbsolute(value as string)) throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be an absolute path.`);
};

const requestId: Check = (value, at) => {
  string(value, at);
  if ((value as string).length === 0 || (value as string).length > 256) throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be 1 to 256 characters long.`);
};

// The fields every generate request may have, then those of each kind (GenerateParams is a union
// on `kind`): a chat needs its messages, a completion its prefix, a raw request its prompt.
const generateCommon = {
  requestId,
  kind: oneOf('chat', 'completion', 'raw'),
  maxTokens: integer(1),
  attention: options({
    mode: oneOf('full', 'tidal', 'quest'),
    tokenBudget: integer(1),
    denseLayers: integer(0),
    selectionLayers: listOf(integer(0)),
    selectionPolicy: oneOf('perQueryHead', 'perKvHeadMax', 'perKvHeadSum'),
    correctionInterval: integer(0),
    sparseFirstStep: boolean,
    sparsePrefill: boolean,
  }),
  sampling: options({ temperature: number(0, 100), topK: integer(0), topP: number(0, 1), seed: integer(0) }),
  purpose: oneOf('completion', 'chat', 'ask', 'edit', 'raw'),
};
const commonOptional = ['maxTokens', 'attention', 'sampling', 'purpose'];
const repositoryFields = { repository: boolean, repoName: string, repositoryContext: listOf(object({ path: string, content: string })) };
const repositoryOptional = Object.keys(repositoryFields);

const generateParamsOfKind: Record<GenerateParams['kind'], Check> = {
  chat: object(
    {
      ...generateCommon,
      ...repositoryFields,
      messages: listOf(object({ role: oneOf('system', 'user', 'assistant'), content: string })),
      answerPrefix: string,
      stopOnRepetition: boolean,
    },
    [...commonOptional, ...repositoryOptional, 'answerPrefix', 'stopOnRepetition'],
  ),
  completion: object({ ...generateCommon, ...repositoryFields, prefix: string, suffix: string, filePath: string, client: string }, [
    ...commonOptional,
    ...repositoryOptional,
    'suffix',
    'filePath',
    'client',
  ]),
  raw: object({ ...generateCommon, prompt: string }, commonOptional),
};

const generateParams: Check = (value, at) => {
  object({ requestId, kind: generateCommon.kind })(value, at);
  generateParamsOfKind[(value as GenerateParams).kind](value, at);
};

const loadModelParams = object(
  {
    modelDir: string,
    tokenizerDir: string,
    options: options({
      backend: oneOf('cpu', 'cuda', 'webgpu'),
      threads: integer(0),
      maxContext: integer(0),
      prefillChunk: integer(0),
      maxKvBytes: number(0),
      kvFp8: boolean,
    }),
  },
  ['tokenizerDir', 'options'],
);

const folderName: Check = (value, at) => {
  string(value, at);
  const name = value as string;
  if (name.length === 0 || name.length > 256 || name.includes('/') || name === '.' || name === '..') {
    throw new TidalError('ERR_TIDAL_REQUEST', `${at} must be a folder name of 1 to 256 characters without '/'.`);
  }
};

const workspaceFolder = object({ name: folderName, path: absolutePath });

/** Workspace folders: at least one, names unique (they prefix the paths). */
const uniqueFolders: Check = (value, at) => {
  listOf(workspaceFolder)(value, at);
  const names = (value as { name: string }[]).map((folder) => folder.name);
  if (names.length === 0) throw new TidalError('ERR_TIDAL_REQUEST', `${at} must name at least one folder.`);
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated !== undefined) throw new TidalError('ERR_TIDAL_REQUEST', `${at} names the folder ${JSON.stringify(repeated)} twice.`);
};

const workspaceOpenParams = object(
  {
    root: absolutePath,
    folders: uniqueFolders,
    repoName: string,
    include: listOf(string),
    exclude: listOf(string),
    maxTokens: integer(0),
    reuseShiftedKv: boolean,
    persistDir: absolutePath,
    persistMaxBytes: number(0),
  },
  ['folders', 'repoName', 'reuseShiftedKv', 'persistDir', 'persistMaxBytes'],
);

const workspaceFileEvent = object({ path: string, kind: oneOf('created', 'changed', 'deleted'), text: string }, ['text']);

/** The checked params of a request, typed; throws a TidalError ERR_TIDAL_REQUEST naming the first bad field. */
function checked<T>(check: Check, value: unknown): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('params', 'an object', value);
  check(value, '');
  return value as T;
}

export const checkGenerateParams = (value: unknown) => checked<GenerateParams>(generateParams, value);
export const checkLoadModelParams = (value: unknown) => checked<LoadModelParams>(loadModelParams, value);
export const checkWorkspaceOpenParams = (value: unknown) => checked<WorkspaceOpenParams>(workspaceOpenParams, value);
export const checkEchoParams = (value: unknown) => checked<{ text: string }>(object({ text: string }), value);
export const checkCancelParams = (value: unknown) => checked<{ requestId: string }>(object({ requestId: string }), value);

/** The events of a workspace/events notification that are well formed, and how many were not. */
export function wellFormedEvents(value: unknown): { events: WorkspaceFileEvent[]; dropped: number } {
  const events = typeof value === 'object' && value !== null ? (value as { events?: unknown }).events : undefined;
  if (!Array.isArray(events)) return { events: [], dropped: value === undefined ? 0 : 1 };
  const good = events.filter((event): event is WorkspaceFileEvent => {
    try {
      workspaceFileEvent(event, 'event');
      return true;
    } catch {
      return false;
    }
  });
  return { events: good, dropped: events.length - good.length };
}
