// An OpenAI-compatible server on loopback for tests whose answers must be fixed: the extension
// talks to it as its remote backend (tidal.backend = remote), so the whole path runs as in use
// (panel, messages, commands, the remote backend) and only the model's words are chosen.
'use strict';

const assert = require('node:assert/strict');
const http = require('node:http');
const vscode = require('vscode');

const { waitFor } = require('./harness');

/**
 * An OpenAI-compatible server on 127.0.0.1 (a port the OS picks) that answers chat requests
 * with `server.answer` and completions with nothing. `server.chatRequests` holds the chat
 * requests' bodies, in order. While `server.gate` is a promise, chat answers wait for it (a test
 * looks at the editor while a request is still running, then resolves it).
 *
 * With `server.pause = { after, until }` a streamed request (`stream: true`, as the remote
 * backend sends) gets the answer as server-sent events: the text up to and including `after`,
 * then nothing until the promise `until` settles, then the rest and the finish. A test looks at
 * the panel while the answer is half written.
 */
async function startFakeServer() {
  const state = { answer: '', chatRequests: [], gate: undefined, pause: undefined };
  const streamAnswer = async (response, answer, pause) => {
    const cut = answer.indexOf(pause.after);
    assert.ok(cut >= 0, `server.pause.after is not in the answer: ${JSON.stringify(pause.after)}`);
    const event = (value) => response.write(`data: ${JSON.stringify(value)}\n\n`);
    const delta = (content) => event({ choices: [{ index: 0, delta: { content }, finish_reason: null }] });
    response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    delta(answer.slice(0, cut + pause.after.length));
    await pause.until;
    delta(answer.slice(cut + pause.after.length));
    event({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 100, completion_tokens: 20 } });
    response.end('data: [DONE]\n\n');
  };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const reply = (value) => {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify(value));
      };
      if (request.method === 'GET' && request.url === '/v1/models') return reply({ object: 'list', data: [{ id: 'fixed-answers', object: 'model' }] });
      if (request.method === 'POST' && request.url === '/v1/chat/completions') {
        const parsed = JSON.parse(body);
        state.chatRequests.push(parsed);
        const pause = state.pause;
        if (pause && parsed.stream === true) {
          return void Promise.resolve(state.gate)
            .then(() => streamAnswer(response, state.answer, pause))
            .catch((error) => {
              console.error(`fake server: ${error.message}`);
              response.destroy();
            });
        }
        return void Promise.resolve(state.gate).then(() =>
          reply({
            choices: [{ index: 0, message: { role: 'assistant', content: state.answer }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 100, completion_tokens: 20 },
          }),
        );
      }
      if (request.method === 'POST' && request.url === '/v1/completions') return reply({ choices: [{ index: 0, text: '', finish_reason: 'stop' }] });
      response.writeHead(404).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, { url: `http://127.0.0.1:${server.address().port}/v1`, close: () => new Promise((resolve) => server.close(resolve)) });
}

/** Runs `body` with the extension on the fake server; the local model is back afterwards. */
async function withFakeServer(api, body) {
  assert.equal(await api.waitForModel(120_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
  const server = await startFakeServer();
  const config = vscode.workspace.getConfiguration('tidal');
  try {
    await config.update('remoteUrl', server.url, vscode.ConfigurationTarget.Global);
    await config.update('backend', 'remote', vscode.ConfigurationTarget.Global);
    assert.ok(
      await waitFor(() => /Remote backend/.test(api.getState().model.message ?? ''), { timeoutMs: 30_000 }),
      `model state ${JSON.stringify(api.getState().model)}`,
    );
    await body(server);
  } finally {
    await config.update('backend', undefined, vscode.ConfigurationTarget.Global);
    await config.update('remoteUrl', undefined, vscode.ConfigurationTarget.Global);
    await server.close();
  }
  assert.equal(await api.waitForModel(120_000), 'ready', 'the local model did not come back after the fake server');
}

module.exports = { startFakeServer, withFakeServer };
