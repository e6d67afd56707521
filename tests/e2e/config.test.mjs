// Configuration that fails safe: a second gateway (started by tests/run.mjs from the same build)
// runs with JWT_PUBLIC_KEYS but no JWT_AUDIENCE, a short INTERNAL_API_TOKEN and the development
// JWT_SECRET without DEV_MODE. It must admit nothing, and its health check must fail naming
// every problem (and no secret).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { claims, signES256, signHS256, uid } from './helpers.mjs';

const BAD = process.env.SB_BAD_BASE;

const call = async (method, path, tok, body) => {
  const res = await fetch(BAD + path, {
    method,
    headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
};

const upgrade = (path, tok) => new Promise((resolve, reject) => {
  const ws = new WebSocket(BAD.replace(/^http/, 'ws') + path, { headers: { authorization: `Bearer ${tok}` } });
  ws.on('open', () => { ws.close(); reject(new Error('the misconfigured gateway accepted an upgrade')); });
  ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
  ws.on('error', reject);
});

test('a misconfigured gateway admits no socket and no call, and its health check names every problem', async () => {
  const user = uid();
  const hs = signHS256(claims(user), 'switchboard-development-secret-not-for-production');
  const es = signES256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600, aud: 'another-app' });
  for (const tok of [hs, es]) {
    assert.equal(await upgrade('/v1/connect', tok), 500);
    const rest = await call('GET', '/v1/rooms', tok);
    assert.equal(rest.status, 500);
    assert.equal(rest.body.error.code, 'internal');
    assert.match(rest.body.error.message, /misconfigured/);
  }
  const internal = await call('POST', '/internal/v1/push', 'short', { users: [user], event: 'a.b', data: {} });
  assert.equal(internal.status, 500);
  assert.equal((await call('POST', '/dev/token', undefined, { sub: user })).status, 500);

  const health = await call('GET', '/health');
  assert.equal(health.status, 503);
  assert.equal(health.body.status, 'misconfigured');
  const problems = health.body.problems.join('\n');
  assert.match(problems, /JWT_PUBLIC_KEYS needs JWT_AUDIENCE/);
  assert.match(problems, /INTERNAL_API_TOKEN must be at least 32 bytes/);
  assert.match(problems, /JWT_SECRET is the development value/);
  assert.equal(health.body.problems.length, 3);
  assert.ok(!problems.includes('switchboard-development-secret-not-for-production'), 'no secret is shown');
});
