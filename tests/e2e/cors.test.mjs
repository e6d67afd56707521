// The browser-facing REST surface: CORS for /v1 routes driven by ALLOWED_ORIGINS (the runner
// allows https://allowed.test), with the preflight's methods held to what docs/PROTOCOL.md
// promises and docs/openapi.json routes, and GET /v1/me, which tells a client why a token is
// refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

/** A comma-separated method list as a sorted array. */
const methods = (list) => list.split(',').map((m) => m.trim()).filter(Boolean).sort();

/** The Access-Control-Allow-Methods list docs/PROTOCOL.md promises (its CORS section). */
function documentedMethods() {
  const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### CORS'));
  const match = /`Access-Control-Allow-Methods:\s*([^`]+)`/.exec(section);
  assert.ok(match, 'PROTOCOL.md names Access-Control-Allow-Methods in its CORS section');
  return methods(match[1]);
}

/** Every method docs/openapi.json gives a /v1 path, and OPTIONS (the preflight's own). */
function routedMethods() {
  const api = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
  const used = new Set(['OPTIONS']);
  for (const [path, operations] of Object.entries(api.paths)) {
    if (path.startsWith('/v1/')) for (const method of Object.keys(operations)) used.add(method.toUpperCase());
  }
  return [...used].sort();
}

test('the preflight allows exactly the methods PROTOCOL.md lists, which are those of the /v1 routes', async () => {
  const documented = documentedMethods();
  assert.deepEqual(documented, routedMethods(), 'the documented list is what the routes take');
  for (const path of ['/v1/rooms/r1', '/v1/rooms/r1/notifications', '/v1/messages', '/v1/no-such-route']) {
    for (const method of documented) {
      const res = await http('OPTIONS', path, {
        headers: { origin: ALLOWED, 'access-control-request-method': method, 'access-control-request-headers': 'authorization' },
      });
      assert.equal(res.status, 204, `${method} ${path}`);
      assert.deepEqual(methods(res.headers.get('access-control-allow-methods') ?? ''), documented, `${method} ${path}`);
    }
  }
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
