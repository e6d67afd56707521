// The browser-facing REST surface: CORS for /v1 routes driven by ALLOWED_ORIGINS (the runner
// allows https://allowed.test), and GET /v1/me, which tells a client why a token is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claims, http, signHS256, token, uid } from './helpers.mjs';

const ALLOWED = 'https://allowed.test';
const DISALLOWED = 'https://evil.test';

const preflight = (path, origin) => http('OPTIONS', path, {
  headers: {
    origin,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization, content-type',
  },
});

test('a preflight from an allowed origin is 204 with methods, headers and max-age', async () => {
  const res = await preflight('/v1/rooms', ALLOWED);
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  assert.match(res.headers.get('access-control-allow-methods'), /DELETE/);
  assert.match(res.headers.get('access-control-allow-methods'), /PATCH/, 'rename and edit are PATCH');
  assert.match(res.headers.get('access-control-allow-headers'), /authorization/);
  assert.match(res.headers.get('access-control-allow-headers'), /content-type/);
  assert.equal(res.headers.get('access-control-max-age'), '600');
  assert.equal(res.headers.get('access-control-allow-credentials'), null);
});

test('a disallowed origin gets no CORS headers, on the preflight or the call', async () => {
  const pre = await preflight('/v1/rooms', DISALLOWED);
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  assert.equal(pre.headers.get('access-control-allow-methods'), null);
  const res = await http('GET', '/v1/me', { tok: token(uid()), headers: { origin: DISALLOWED } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});

test('answers to an allowed origin carry its origin, errors included; internal routes never do', async () => {
  const ok = await http('GET', '/v1/me', { tok: token(uid()), headers: { origin: ALLOWED } });
  assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(ok.headers.get('vary'), /Origin/);
  const refused = await http('GET', '/v1/me', { headers: { origin: ALLOWED } });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('access-control-allow-origin'), ALLOWED);
  const pre = await preflight('/internal/v1/push', ALLOWED);
  assert.notEqual(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  const internal = await http('POST', '/internal/v1/push', { body: {}, headers: { origin: ALLOWED } });
  assert.equal(internal.headers.get('access-control-allow-origin'), null);
});

test('GET /v1/me names the user for a good token and the upgrade codes for a bad one', async () => {
  const user = uid('me');
  const good = await http('GET', '/v1/me', { tok: token(user, { roles: ['admin'] }) });
  assert.equal(good.status, 200);
  assert.equal(good.body.user_id, user);
  assert.deepEqual(good.body.roles, ['admin']);
  assert.ok(good.body.expires_at > Date.now() / 1000);

  const now = Math.floor(Date.now() / 1000);
  const expired = signHS256({ ...claims(user), exp: now - 120, iat: now - 600 });
  const cases = [
    [undefined, 'token_missing'],
    [expired, 'token_expired'],
    [signHS256(claims(user), 'x'.repeat(40)), 'token_invalid'],
    ['not-a-jwt', 'token_malformed'],
  ];
  for (const [tok, code] of cases) {
    const res = await http('GET', '/v1/me', { tok });
    assert.equal(res.status, 401, code);
    assert.equal(res.body.error.code, code);
  }
});
