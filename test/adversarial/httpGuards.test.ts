// Cause 2: any web page could use the local server. A page whose DNS name is rebound to
// 127.0.0.1 sends its own name as Host; a page calling across origins sends its Origin; a page
// may post text/plain anywhere without a preflight. Each is refused with a 403/415 that says
// what to change, and what the user allowed still works.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { errorOf, json, postJson, request, startStandInServer, type StandInServer } from './httpFixture';

let server: StandInServer;

before(async () => {
  server = await startStandInServer({ allowedHosts: ['tidal.box.lan'], allowedOrigins: ['https://app.example'] });
});
after(() => server.close());

test('cause 2: DNS rebinding: a Host that is not a name of this server gets 403 naming --allow-host', async () => {
  for (const route of ['/models', '/completions']) {
    const answer = await request(`${server.baseUrl}${route}`, {
      method: route === '/models' ? 'GET' : 'POST',
      headers: { Host: `rebind.evil.example:${server.port}`, ...json },
      body: route === '/models' ? undefined : JSON.stringify({ prompt: 'x' }),
    });
    const error = errorOf(answer, 403);
    assert.equal(error.code, 'host_not_allowed');
    assert.match(error.message, /rebind\.evil\.example[\s\S]*--allow-host rebind\.evil\.example/);
  }
  // The names of this machine and the configured one still work, with or without a port.
  for (const host of [
    'localhost',
    `localhost:${server.port}`,
    `127.0.0.1:${server.port}`,
    `[::1]:${server.port}`,
    'TIDAL.box.lan',
    `tidal.box.lan:${server.port}`,
  ]) {
    assert.equal((await request(`${server.baseUrl}/models`, { headers: { Host: host } })).status, 200, host);
  }
});

test('cause 2: a request from a web page whose Origin is not allowed gets 403 naming --allow-origin', async () => {
  for (const origin of ['https://evil.example', 'null', 'http://localhost:3000']) {
    const error = errorOf(await postJson(`${server.baseUrl}/completions`, { prompt: 'x' }, { Origin: origin }), 403);
    assert.equal(error.code, 'origin_not_allowed');
    assert.match(error.message, /--allow-origin/);
    errorOf(await request(`${server.baseUrl}/models`, { headers: { Origin: origin } }), 403);
  }
  // The allowed page: its preflight and its request pass, with CORS headers for the browser.
  const preflight = await request(`${server.baseUrl}/completions`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
  assert.match(String(preflight.headers['access-control-allow-headers']), /Content-Type/);
  const allowed = await postJson(`${server.baseUrl}/completions`, { prompt: 'x' }, { Origin: 'https://app.example' });
  assert.equal(allowed.status, 200, allowed.text);
  assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
});

test('cause 2: a POST body that is not declared as JSON gets 415 naming Content-Type', async () => {
  const body = JSON.stringify({ prompt: 'x' });
  for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
    const headers = type === undefined ? {} : { 'Content-Type': type };
    const error = errorOf(await request(`${server.baseUrl}/completions`, { method: 'POST', headers, body }), 415);
    assert.match(error.message, /Content-Type: application\/json/);
  }
  const ok = await request(`${server.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'Application/JSON; charset=utf-8' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(ok.status, 200, ok.text);
});
