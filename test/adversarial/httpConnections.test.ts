// Connections that misbehave. Cause 6: uploads stalled mid-body were never timed out and the
// number of connections had no cap, so a few hundred stalled sockets took every file
// descriptor. Cause 13: a client that half-closed its side after sending the request got no
// answer. The limits here are small so the test runs in about a second.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { rawConnection, request, sseEvents, standInModel, startStandInServer, within } from './httpFixture';

const stalledUpload = (length = 1000) =>
  `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{"prompt": "`;

test('cause 6: a stalled upload or stalled headers are closed with 408 within the configured time', async () => {
  const server = await startStandInServer({ uploadTimeoutMs: 600, headersTimeoutMs: 400 });
  try {
    const body = rawConnection(server.port, stalledUpload());
    const headers = rawConnection(server.port, 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    for (const stalled of [body, headers]) {
      const closed = await within(5_000, 'the server closing a stalled request', stalled.closed);
      assert.match(closed.text, /^HTTP\/1\.1 408 /);
      assert.ok(closed.afterMs >= 300, `closed after ${closed.afterMs.toFixed(0)} ms, before its time`);
    }
    assert.equal((await request(`http://127.0.0.1:${server.port}/health`)).status, 200);
  } finally {
    await server.close();
  }
});

test('cause 6: connections beyond the cap are refused; /health works again once stalled ones are reaped', async () => {
  const server = await startStandInServer({ maxConnections: 4, uploadTimeoutMs: 800, headersTimeoutMs: 800 });
  try {
    let accepted = 0;
    server.server.on('connection', () => accepted++);
    const stalled = [0, 1, 2, 3].map(() => rawConnection(server.port, stalledUpload()));
    await within(
      5_000,
      'four connections accepted',
      (async () => {
        while (accepted < 4) await new Promise((resolve) => setTimeout(resolve, 10));
      })(),
    );
    const extra = rawConnection(server.port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const refused = await within(5_000, 'the fifth connection', extra.closed);
    assert.equal(refused.text, '', 'no answer over the cap');
    const reaped = await within(5_000, 'the stalled connections reaped', Promise.all(stalled.map((connection) => connection.closed)));
    assert.ok(reaped.every((closed) => closed.text.startsWith('HTTP/1.1 408 ')));
    assert.ok(refused.afterMs < Math.min(...reaped.map((closed) => closed.afterMs)), 'refused at once, not after the stalled ones');
    assert.equal((await request(`http://127.0.0.1:${server.port}/health`)).status, 200);
  } finally {
    await server.close();
  }
});

test('cause 13: a client that half-closes after sending its request still gets the whole answer', async () => {
  const server = await startStandInServer({ model: standInModel('the answer', 200) });
  try {
    for (const stream of [false, true]) {
      const body = JSON.stringify({ prompt: 'question', stream });
      const bytes = `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const exchange = rawConnection(server.port, bytes, { end: true });
      const { text } = await within(5_000, 'the answer to a half-closed request', exchange.closed);
      assert.match(text, /^HTTP\/1\.1 200 /, JSON.stringify(text));
      const payload = text.slice(text.indexOf('\r\n\r\n') + 4);
      if (stream) {
        // Chunked transfer encoding around the events: strip the chunk sizes.
        const events = sseEvents(payload.replace(/(^|\r\n)[0-9a-f]+\r\n/g, '$1').replace(/\r\n/g, ''));
        assert.equal(
          events.map((data) => (data === '[DONE]' ? '' : (JSON.parse(data) as { choices: { text: string }[] }).choices[0].text)).join(''),
          'the answer',
        );
      } else {
        assert.equal((JSON.parse(payload) as { choices: { text: string }[] }).choices[0].text, 'the answer');
      }
    }
  } finally {
    await server.close();
  }
});
