// The vscode.lm provider (vendor "tidal") follows the backend the settings select: with
// tidal.backend = remote it offers the remote server's model and streams its answers through
// the RemoteBackend (a stand-in OpenAI-compatible server on loopback records the requests),
// with the repository part as the remote backend sends it; with the local backend it offers the
// loaded model only, and a request goes to whichever backend is selected when it is made.
// Runs over a stand-in for the few `vscode` parts the provider uses.
import Module from 'node:module';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';

class EventEmitter<T> {
  private listeners: ((value: T) => void)[] = [];
  readonly event = (listener: (value: T) => void) => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  fire(value: T) {
    for (const listener of this.listeners) listener(value);
  }
  dispose() {
    this.listeners = [];
  }
}
class LanguageModelTextPart {
  constructor(readonly value: string) {}
}
class CancellationError extends Error {}
const fakeVscode = {
  EventEmitter,
  LanguageModelTextPart,
  CancellationError,
  version: '1.106.0',
  lm: { registerLanguageModelChatProvider: () => ({ dispose() {} }) },
  workspace: { onDidChangeConfiguration: () => ({ dispose() {} }) },
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? fakeVscode : load.call(this, request, ...rest);
};

const { TidalLanguageModelProvider, describeRemoteModel } =
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../../../src/vscode/languageModelProvider') as typeof import('../../../src/vscode/languageModelProvider');
import type { LanguageModelProviderDeps } from '../../../src/vscode/languageModelProvider';
import { RemoteBackend } from '../../../src/core/backend/remoteBackend';
import type { GenerationBackend } from '../../../src/core/backend/generationBackend';
import type { RepositoryPart } from '../../../src/core/backend/repositoryPart';
import type { GenerateParams, GenerateResult } from '../../../src/core/protocol/protocol';
import type { ModelState } from '../../../src/vscode/modelController';
import { ROLE_USER, type RequestMessage } from '../../../src/vscode/languageModelMessages';

/** An OpenAI-compatible server that streams `answer` in `pieces` and records the chat requests' bodies. */
const served = { answer: 'The sum of a and b.', pieces: 4, chatRequests: [] as Record<string, unknown>[] };
let server: http.Server;
let baseUrl: string;

before(async () => {
  server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      if (request.method === 'GET' && request.url === '/v1/models') {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        return response.end(JSON.stringify({ object: 'list', data: [{ id: 'served-coder', object: 'model' }] }));
      }
      if (request.method === 'POST' && request.url === '/v1/chat/completions') {
        served.chatRequests.push(JSON.parse(body) as Record<string, unknown>);
        response.writeHead(200, { 'Content-Type': 'text/event-stream' });
        const size = Math.ceil(served.answer.length / served.pieces);
        for (let at = 0; at < served.answer.length; at += size) {
          const delta = { choices: [{ index: 0, delta: { content: served.answer.slice(at, at + size) }, finish_reason: null }] };
          response.write(`data: ${JSON.stringify(delta)}\n\n`);
        }
        response.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
        return response.end('data: [DONE]\n\n');
      }
      response.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const log = { warn() {}, info() {} } as unknown as LanguageModelProviderDeps['log'];
const none = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
const user = (text: string): RequestMessage => ({ role: ROLE_USER, content: [new LanguageModelTextPart(text)] }) as unknown as RequestMessage;

/** A local backend that must not be asked (the remote one is selected), or that answers `text`. */
function localBackend(text?: string): GenerationBackend & { asked: GenerateParams[] } {
  const asked: GenerateParams[] = [];
  return {
    kind: 'local',
    asked,
    async generate(params, onText): Promise<GenerateResult> {
      asked.push(params);
      if (text === undefined) throw new Error('the local engine was asked while the remote backend is selected');
      onText(text);
      return { text, finishReason: 'stop' } as unknown as GenerateResult;
    },
  };
}

const readyModel = {
  state: 'ready',
  embedded: true,
  loadMs: 1,
  loaded: { modelDir: '', model: { architecture: 'qwen2', backend: 'cpu', maxContext: 4096 } },
} as unknown as ModelState;

function provider(options: { backend: () => GenerationBackend; model?: ModelState; repository?: RepositoryPart }) {
  return new TidalLanguageModelProvider({
    backend: options.backend,
    settings: () => ({ remoteUrl: baseUrl, remoteModel: 'served-coder' }),
    model: () => options.model ?? { state: 'idle', message: `Remote backend: ${baseUrl}` },
    onDidChangeModel: () => ({ dispose() {} }),
    repositoryPart: async () => options.repository ?? { files: [], tokens: 0 },
    repoName: () => 'demo',
    newRequestId: () => 'lm-1',
    log,
  });
}

async function ask(lm: InstanceType<typeof TidalLanguageModelProvider>, text: string, modelOptions?: Record<string, unknown>): Promise<string[]> {
  const [model] = lm.provideLanguageModelChatInformation();
  assert.ok(model, 'no model offered');
  const chunks: string[] = [];
  await lm.provideLanguageModelChatResponse(model, [user(text)], { modelOptions }, { report: (part) => chunks.push(part.value) }, none as never);
  return chunks;
}

test('remote backend: the remote server model is offered, named by tidal.remoteModel and the host', () => {
  const remote = new RemoteBackend({ baseUrl });
  const [model] = provider({ backend: () => remote }).provideLanguageModelChatInformation();
  assert.equal(model.id, 'remote-served-coder');
  assert.match(model.name, /served-coder/);
  assert.ok(model.name.includes(new URL(baseUrl).host), model.name);
  assert.equal(model.detail, 'remote');
  assert.ok(model.maxInputTokens > 0 && model.maxOutputTokens > 0);
  // Without tidal.remoteModel (the server's first model is used) and with a URL that is not one.
  assert.equal(describeRemoteModel({ remoteUrl: 'not a url', remoteModel: '' }).id, 'remote');
  assert.match(describeRemoteModel({ remoteUrl: 'not a url', remoteModel: ' ' }).name, /not a url/);
});

test('remote backend: a request streams the server answer through the RemoteBackend, the local engine untouched', async () => {
  served.chatRequests.length = 0;
  const local = localBackend();
  let selected: GenerationBackend = new RemoteBackend({ baseUrl });
  const lm = provider({ backend: () => selected });
  const chunks = await ask(lm, 'What does add() return?', { maxTokens: 32 });
  assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
  assert.equal(chunks.join(''), served.answer);
  assert.equal(served.chatRequests.length, 1);
  const request = served.chatRequests[0] as { model: string; max_tokens: number; messages: { role: string; content: string }[] };
  assert.equal(request.model, 'served-coder');
  assert.equal(request.max_tokens, 32);
  assert.equal(request.messages.at(-1)?.content, 'What does add() return?');
  assert.equal(local.asked.length, 0);
  // Selected back to local: the next request goes to the local engine, not the server.
  selected = localBackend('local answer');
  assert.deepEqual(await ask(provider({ backend: () => selected, model: readyModel }), 'Again?'), ['local answer']);
  assert.equal(served.chatRequests.length, 1);
});

test('remote backend: the repository part travels as the remote backend sends it, and not when asked to leave it out', async () => {
  served.chatRequests.length = 0;
  const repository: RepositoryPart = { files: [{ path: 'src/math.ts', content: 'export const add = (a: number, b: number) => a + b;\n' }], tokens: 20 };
  const lm = provider({ backend: () => new RemoteBackend({ baseUrl }), repository });
  await ask(lm, 'Where is add defined?');
  await ask(lm, 'Where is add defined?', { repository: false });
  const texts = served.chatRequests.map((body) => JSON.stringify(body));
  assert.equal(texts.length, 2);
  assert.ok(texts[0].includes('export const add'), texts[0]);
  assert.ok(!texts[1].includes('export const add'), texts[1]);
});

test('local backend: the loaded model is offered, none while it loads; requests go to the local engine', async () => {
  const local = localBackend('from the engine');
  assert.deepEqual(provider({ backend: () => local, model: { state: 'loading', modelDir: '/m' } }).provideLanguageModelChatInformation(), []);
  const lm = provider({ backend: () => local, model: readyModel });
  const [model] = lm.provideLanguageModelChatInformation();
  assert.equal(model.id, 'tidal-code-mini');
  assert.deepEqual(await ask(lm, 'Hello?'), ['from the engine']);
  assert.equal(local.asked.length, 1);
});

test('remote backend: a server that is down gives a message that names it', async () => {
  const down = new RemoteBackend({ baseUrl: 'http://127.0.0.1:9/v1' });
  await assert.rejects(ask(provider({ backend: () => down }), 'Hello?'), /127\.0\.0\.1:9/);
});
