// Request bodies that used to be misread. Cause 8: completions without `user` superseded each
// other, so concurrent clients cancelled one another (19 of 20 got 409). Cause 9: OpenAI fields
// the server cannot honour were silently ignored. Cause 10: a content part whose text was an
// object became "[object Object]". Cause 15: top_p 0 passed the HTTP check and the engine then
// refused it in its own words.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { ModelSession } from '../../src/host/modelSession';
import { errorOf, loadEmbeddedSession, postJson, startServer, type ServerFixture } from './httpFixture';

let session: ModelSession;
let server: ServerFixture;

before(async () => {
  session = await loadEmbeddedSession();
  server = await startServer(session, { maxQueue: 32 });
});
after(async () => {
  await server.close();
  await session.unload();
});

const completion = { prompt: 'const x = ', max_tokens: 2, temperature: 0 };
const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 };

async function refused(route: string, body: unknown, param: string, pattern: RegExp): Promise<void> {
  const error = errorOf(await postJson(`${server.baseUrl}${route}`, body), 400);
  assert.equal(error.param, param, `${JSON.stringify(body).slice(0, 120)}: ${error.message}`);
  assert.match(error.message, pattern);
}

test('cause 8: 20 concurrent completions without `user` all finish; none supersedes another', async () => {
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      postJson(`${server.baseUrl}/completions`, { prompt: `const value${i} = `, suffix: ';\n', max_tokens: 3, temperature: 0 }),
    ),
  );
  assert.deepEqual(
    answers.map((answer) => answer.status),
    Array(20).fill(200),
    answers.find((answer) => answer.status !== 200)?.text,
  );
});

test('cause 9: fields that would change the answer are refused by name; harmless ones are accepted', async () => {
  const unsupported: [Record<string, unknown>, string][] = [
    [{ response_format: { type: 'json_object' } }, 'response_format'],
    [{ tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
    [{ tool_choice: 'required' }, 'tool_choice'],
    [{ functions: [{ name: 'f' }] }, 'functions'],
    [{ logit_bias: { '42': 100 } }, 'logit_bias'],
    [{ frequency_penalty: 0.5 }, 'frequency_penalty'],
    [{ presence_penalty: -1 }, 'presence_penalty'],
    [{ n: 2 }, 'n'],
    [{ logprobs: true }, 'logprobs'],
    [{ top_logprobs: 3 }, 'top_logprobs'],
    [{ min_p: 0.1 }, 'min_p'],
    [{ repetition_penalty: 1.2 }, 'repetition_penalty'],
    [{ attention: { mode: 'tidal', budget: 64 } }, 'attention.budget'],
    [{ stream: true, stream_options: { include_usage: true, chunk_size: 4 } }, 'stream_options.chunk_size'],
  ];
  for (const [fields, param] of unsupported) {
    await refused('/chat/completions', { ...chat, ...fields }, param, new RegExp(param.replace('.', '\\.')));
  }
  await refused('/completions', { ...completion, echo: true }, 'echo', /echo/);
  await refused('/completions', { ...completion, best_of: 3 }, 'best_of', /best_of/);
  await refused('/chat/completions', { ...chat, messages: [{ role: 'user', content: 'hi', name: 'alice' }] }, 'messages[0].name', /name/);

  const harmless = {
    user: 'someone',
    stream_options: { include_usage: true },
    frequency_penalty: 0,
    presence_penalty: 0,
    logit_bias: {},
    response_format: { type: 'text' },
    tools: [],
    tool_choice: 'none',
    n: 1,
    logprobs: false,
    metadata: { trace: 'x' },
    seed: null,
  };
  for (const [route, body] of [
    ['/chat/completions', chat],
    ['/completions', completion],
  ] as const) {
    const answer = await postJson(`${server.baseUrl}${route}`, { ...body, ...harmless });
    assert.equal(answer.status, 200, answer.text);
  }
  // An assistant message as OpenAI client libraries hand it back, put into the history.
  const history = [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'hello', refusal: null, tool_calls: [], annotations: [] },
    { role: 'user', content: 'again' },
  ];
  assert.equal((await postJson(`${server.baseUrl}/chat/completions`, { ...chat, messages: history })).status, 200);
});

test('cause 10: message content must be a string or a list of text parts; the error names the path', async () => {
  const cases: [unknown, string][] = [
    [
      [
        { type: 'text', text: 'a' },
        { type: 'text', text: { nested: 'object' } },
      ],
      'messages[0].content[1].text',
    ],
    [[{ type: 'image_url', image_url: { url: 'https://x.example/a.png' } }], 'messages[0].content[0].type'],
    [[{ type: 'text' }], 'messages[0].content[0].text'],
    [['plain string part'], 'messages[0].content[0]'],
    [42, 'messages[0].content'],
    [{ type: 'text', text: 'not in a list' }, 'messages[0].content'],
  ];
  for (const [content, path] of cases) {
    await refused('/chat/completions', { ...chat, messages: [{ role: 'user', content }] }, path, new RegExp(path.replace(/[[\].]/g, '\\$&')));
  }
  await refused('/chat/completions', { ...chat, messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role', /role/);
  const parts = await postJson(`${server.baseUrl}/chat/completions`, {
    ...chat,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'h' },
          { type: 'text', text: 'i' },
        ],
      },
    ],
  });
  assert.equal(parts.status, 200, parts.text);
});

test('cause 15: sampling values out of range are refused by the server, naming the field and its range', async () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ top_p: 0 }, 'top_p', /\(0, 1\]/],
    [{ top_p: 1.5 }, 'top_p', /\(0, 1\]/],
    [{ temperature: 2.5 }, 'temperature', /\[0, 2\]/],
    [{ temperature: -0.1 }, 'temperature', /\[0, 2\]/],
    [{ top_k: -1 }, 'top_k', /integer/],
    [{ top_k: 2.5 }, 'top_k', /integer/],
    [{ seed: -1 }, 'seed', /integer in \[0, 9007199254740991\]/],
    [{ seed: 2 ** 53 }, 'seed', /integer/],
    [{ seed: 1.5 }, 'seed', /integer/],
  ];
  for (const [fields, param, pattern] of cases) {
    await refused('/completions', { ...completion, ...fields }, param, pattern);
  }
  const edges = await postJson(`${server.baseUrl}/completions`, { ...completion, top_p: 1, top_k: 0, temperature: 2, seed: Number.MAX_SAFE_INTEGER });
  assert.equal(edges.status, 200, edges.text);
});
