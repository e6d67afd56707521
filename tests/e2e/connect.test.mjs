// Issue 1: admission before the upgrade, the three token carriers, ready, heartbeat, bad frames.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import {
  claims, connectUser, http, open, refused, signES256, signHS256, signRS256, token, uid,
} from './helpers.mjs';

// The key-confusion attack: an HS256 token whose HMAC key is the server's RSA public key.
const rsaPublicPem = () =>
  createPublicKey(createPrivateKey({ key: JSON.parse(process.env.SB_PRIVATE_KEYS).rsa, format: 'jwk' }))
    .export({ type: 'spki', format: 'pem' });

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

test('health answers with the version', async () => {
  const res = await http('GET', '/health');
  assert.equal(res.status, 200);
  assert.equal(res.body.status, 'ok');
  assert.match(res.body.version, /^\d+\.\d+\.\d+/);
});

test('unknown routes and methods are JSON errors', async () => {
  const missing = await http('GET', '/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'not_found');
  const method = await http('POST', '/health');
  assert.equal(method.status, 405);
  assert.equal(method.body.error.code, 'method_not_allowed');
});

test('a plain request on the connect route is 426', async () => {
  const res = await http('GET', '/v1/connect', { tok: token(uid()) });
  assert.equal(res.status, 426);
  assert.equal(res.body.error.code, 'upgrade_required');
});

test('no token is 401 and no socket', async () => {
  const err = await refused('/v1/connect');
  assert.equal(err.status, 401);
  assert.equal(err.body.error.code, 'token_missing');
});

test('a disallowed Origin is 403; an allowed one connects', async () => {
  const user = uid();
  const err = await refused('/v1/connect', token(user), { headers: { origin: 'https://evil.test' } });
  assert.equal(err.status, 403);
  assert.equal(err.body.error.code, 'origin_not_allowed');
  const client = await connectUser(user, { headers: { origin: 'https://allowed.test' } });
  assert.equal(client.ready.data.user_id, user);
  await client.close();
});

for (const carrier of ['header', 'subprotocol', 'query']) {
  test(`a valid token through the ${carrier} gets ready`, async () => {
    const user = uid();
    const client = await connectUser(user, { carrier });
    const { data } = client.ready;
    assert.equal(data.user_id, user);
    assert.equal(typeof data.conn_id, 'string');
    assert.equal(data.seq, 0);
    assert.ok(data.expires_at > Date.now() / 1000);
    if (carrier === 'subprotocol') assert.equal(client.ws.protocol, 'bearer');
    await client.close();
  });
}

test('ping is answered with exactly pong', async () => {
  const client = await connectUser(uid());
  client.send('{"event":"ping"}');
  await client.next('pong');
  assert.equal(client.raw.at(-1), '{"event":"pong"}');
  await client.close();
});

test('ES256 and RS256 tokens from the JWKS connect', async () => {
  for (const sign of [signES256, signRS256]) {
    const user = uid();
    const client = await connectUser(user, { tok: sign(claims(user)) });
    assert.equal(client.ready.data.user_id, user);
    await client.close();
  }
});

test('bad tokens are refused with 401 before the upgrade', async () => {
  const user = uid();
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const good = token(user);
  const [head, , sig] = good.split('.');
  const cases = {
    expired: [signHS256(claims(user, { exp: Math.floor(Date.now() / 1000) - 120 })), 'token_expired'],
    'not yet valid': [signHS256(claims(user, { nbf: Math.floor(Date.now() / 1000) + 600 })), 'token_not_yet_valid'],
    'wrong issuer': [signHS256(claims(user, { iss: 'https://other.test' })), 'token_invalid'],
    'wrong audience': [signHS256(claims(user, { aud: 'someone-else' })), 'token_invalid'],
    'wrong secret': [signHS256(claims(user), 'a-different-secret-that-is-long-enough'), 'token_invalid'],
    'unknown signing key': [signES256(claims(user), 'ec-1', stranger), 'token_invalid'],
    'unknown kid': [signES256(claims(user), 'ec-404'), 'token_invalid'],
    'alg none': [`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims(user))}.`, undefined],
    'tampered payload': [`${head}.${b64(claims('mallory'))}.${sig}`, 'token_invalid'],
    'HS256 keyed with the RSA public key': [signHS256(claims(user), rsaPublicPem(), { kid: 'rsa-1' }), 'token_invalid'],
    'missing exp': [signHS256({ sub: user, iss: claims(user).iss, aud: claims(user).aud }), 'token_invalid'],
    garbage: ['not-a-jwt', 'token_malformed'],
  };
  for (const [name, [tok, code]] of Object.entries(cases)) {
    for (const carrier of ['header', 'query']) {
      const err = await refused('/v1/connect', tok, { carrier });
      assert.equal(err.status, 401, `${name} via ${carrier}`);
      assert.match(err.body.error.code, /^token_/, `${name} via ${carrier}`);
      if (code) assert.equal(err.body.error.code, code, `${name} via ${carrier}`);
    }
  }
});

test('a malformed Authorization header is 401 even with a query token', async () => {
  const user = uid();
  const err = await refused(`/v1/connect?token=${token(user)}`, undefined, {
    headers: { authorization: 'Basic abc' },
  });
  assert.equal(err.status, 401);
  assert.equal(err.body.error.code, 'token_malformed');
});

test('bad since and device are 400', async () => {
  const user = uid();
  for (const path of ['/v1/connect?since=-1', '/v1/connect?since=x', '/v1/connect?device=a%20b']) {
    const err = await refused(path, token(user));
    assert.equal(err.status, 400, path);
    assert.equal(err.body.error.code, 'validation', path);
  }
});

test('bad frames get error events and the socket keeps working', async () => {
  const client = await connectUser(uid());
  client.send('not json');
  assert.equal((await client.next('error')).data.code, 'bad_frame');
  client.send('[1,2]');
  assert.equal((await client.next('error')).data.code, 'bad_frame');
  client.send(JSON.stringify({ event: 5, id: 'x1' }));
  const withId = await client.next('error');
  assert.equal(withId.id, 'x1');
  assert.equal(withId.data.code, 'bad_frame');
  const unknown = await client.request('no.such.event', {});
  assert.equal(unknown.data.code, 'unknown_event');
  client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await client.next('error')).data.code, 'bad_frame');
  client.send('{"event":"ping"}');
  await client.next('pong');
  await client.close();
});

test('a frame over the limit closes the socket with 1009', async () => {
  const client = await connectUser(uid());
  client.send(JSON.stringify({ event: 'ack', data: { pad: 'x'.repeat(70 * 1024) } }));
  const { code } = await client.closed;
  assert.equal(code, 1009);
});

test('development tokens are minted in DEV_MODE and verify', async () => {
  const user = uid();
  const res = await http('POST', '/dev/token', { body: { sub: user, roles: ['admin'], ttl: 60 } });
  assert.equal(res.status, 200);
  assert.ok(res.body.expires_at > Date.now() / 1000);
  const client = await connectUser(user, { tok: res.body.token });
  assert.equal(client.ready.data.user_id, user);
  await client.close();
  const bad = await http('POST', '/dev/token', { body: { sub: 'a b' } });
  assert.equal(bad.status, 400);
  const unknown = await http('POST', '/dev/token', { body: { sub: user, admin: true } });
  assert.equal(unknown.status, 400);
});

test('tokens never appear in the gateway log', async () => {
  const { readFileSync } = await import('node:fs');
  const signatures = [];
  for (const carrier of ['header', 'subprotocol', 'query']) {
    const user = uid();
    const tok = token(user);
    signatures.push(tok.split('.')[2]);
    const client = await connectUser(user, { carrier, tok });
    await client.close();
  }
  const log = readFileSync(process.env.SB_WRANGLER_LOG, 'utf8');
  for (const signature of signatures) assert.ok(!log.includes(signature), 'a token was logged');
});

test('a socket over its rate limit is closed with 4008', async () => {
  const burst = Number(process.env.SB_RATE_LIMIT_BURST);
  const client = await connectUser(uid());
  // A spelling the runtime's auto-response does not match, so every frame reaches the hub.
  for (let i = 0; i < burst + 20; i++) client.send('{"event": "ping"}');
  const { code, reason } = await client.closed;
  assert.equal(code, 4008);
  assert.equal(reason, 'rate limited');
  const pongs = client.raw.filter((t) => t === '{"event":"pong"}').length;
  assert.ok(pongs >= burst - 1 && pongs <= burst + 1, `about the burst was answered (${pongs})`);
});
