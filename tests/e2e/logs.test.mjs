// The gateway's log, as an operator reads it (docs/OPERATIONS.md, "Logs"): every line the
// gateway writes is one JSON object with `ts`, `level` and `event`; the meaningful things are
// there with their fields; and no token, secret or message body ever is. The log is the real
// `wrangler dev` output of the whole suite so far (tests/run.mjs writes it to SB_WRANGLER_LOG),
// plus what this file does with markers it can look for.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  claims, connectRoom, connectUser, createRoom, http, push, refused, signHS256, token, uid, until,
} from './helpers.mjs';

const LEVELS = new Set(['error', 'warn', 'info', 'debug']);
const readLog = () => readFileSync(process.env.SB_WRANGLER_LOG, 'utf8');
const gatewayLines = (log) => log.split('\n').filter((line) => line.startsWith('{'));
const events = (log) => gatewayLines(log).map((line) => JSON.parse(line));

test('every gateway log line is JSON with ts, level and event; the meaningful things are there; no token, secret or message body is', async () => {
  const marker = `marker-${randomUUID()}`;
  const alice = uid('log');
  const bob = uid('log');
  const tokens = [];

  for (const carrier of ['header', 'subprotocol', 'query']) {
    const tok = token(alice);
    tokens.push(tok);
    const client = await connectUser(alice, { carrier, tok });
    await client.close();
  }
  const expired = signHS256(claims(alice, { exp: Math.floor(Date.now() / 1000) - 60 }));
  tokens.push(expired);
  const refusal = await refused('/v1/connect', expired, { carrier: 'query' });
  assert.equal(refusal.status, 401);
  assert.equal(refusal.body.error.code, 'token_expired');

  const rest = await http('GET', '/v1/me', { tok: 'not-a-token' });
  assert.equal(rest.status, 401);
  assert.match(rest.body.error.request_id, /^[0-9a-z-]{8,64}$/, 'an error body names its request');
  assert.equal(rest.headers.get('x-request-id'), rest.body.error.request_id);

  const bobTok = token(bob);
  tokens.push(bobTok);
  const bobSocket = await connectUser(bob, { tok: bobTok });
  const dm = await http('POST', '/v1/messages', { tok: token(alice), body: { to: [bob], body: `${marker}-dm` } });
  assert.equal(dm.status, 201);
  await bobSocket.next('message');
  const pushed = await push([bob], 'log.test', { text: `${marker}-push` });
  assert.equal(pushed.status, 200);
  await bobSocket.next('log.test');
  await bobSocket.close();

  const room = await createRoom(alice, [bob]);
  const member = await connectRoom(alice, room);
  member.send({ event: 'send', id: 1, data: { body: `${marker}-room` } });
  assert.equal((await member.next('ack')).id, 1);
  await member.close();

  const flooder = await connectUser(uid('log'));
  for (let i = 0; i < Number(process.env.SB_RATE_LIMIT_BURST) + 20; i++) flooder.send('{"event": "ping"}');
  assert.equal((await flooder.closed).code, 4008);

  // The runtime writes the log as it goes; wait for the lines of what was just done.
  const seen = await until(() => {
    const all = events(readLog());
    const has = (event, match = () => true) => all.some((line) => line.event === event && match(line));
    const ok = has('connect.accepted', (l) => l.carrier === 'query')
      && has('connect.accepted', (l) => l.carrier === 'subprotocol')
      && has('connect.refused', (l) => l.code === 'token_expired' && l.status === 401)
      && has('socket.opened', (l) => l.user_id === alice)
      && has('socket.closed', (l) => l.user_id === bob && typeof l.code === 'number' && typeof l.seconds === 'number')
      && has('push', (l) => l.name === 'log.test' && l.devices === 1)
      && has('limit.hit', (l) => l.limit === 'frame_rate' && l.code === 4008)
      && has('d1_copy', (l) => l.room_id === room)
      && has('alarm', (l) => Array.isArray(l.reasons));
    return ok && all;
  }, { timeoutMs: 15_000, what: 'the log lines of this test' });
  assert.ok(seen.length > 0);

  const log = readLog();
  for (const line of gatewayLines(log)) {
    let parsed;
    assert.doesNotThrow(() => { parsed = JSON.parse(line); }, `not JSON: ${line}`);
    assert.match(parsed.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
    assert.ok(LEVELS.has(parsed.level), line);
    assert.match(parsed.event, /^[a-z0-9_]+(\.[a-z0-9_]+)*$/, line);
  }

  const secrets = JSON.parse(process.env.SB_SECRETS ?? '[]');
  assert.ok(secrets.length >= 4, 'the runner names the gateway\'s secrets');
  for (const secret of secrets) assert.ok(!log.includes(secret), 'a secret was logged');
  for (const tok of tokens) {
    assert.ok(!log.includes(tok.split('.')[2]), 'a token was logged');
    assert.ok(!log.includes(tok.split('.')[1]), 'a token\'s claims were logged');
  }
  assert.ok(!log.includes(marker), 'a message body or push data was logged');
});
