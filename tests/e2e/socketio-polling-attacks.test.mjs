// Issue #19, hostile: clients that speak HTTP long-polling without playing along — sessions
// that never authenticate, POST floods and oversized bodies, overlapping polls, made-up sids.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BASE, push, token, uid } from './helpers.mjs';

const MAX_PENDING = Number(process.env.SB_MAX_PENDING_PER_ADDRESS);
const CONNECT_TIMEOUT = Number(process.env.SB_SOCKETIO_CONNECT_TIMEOUT_MS);
const BURST = Number(process.env.SB_RATE_LIMIT_BURST);
const RS = '\x1e';

const url = (query) => `${BASE}/socket.io/?EIO=4&transport=polling${query}`;

/** The handshake: the status, and the open packet's fields when it succeeded. */
async function handshake(headers = {}) {
  const res = await fetch(url(''), { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, open: res.ok ? JSON.parse(text.slice(1)) : undefined };
}

/** One poll of session `sid`: its status and packets. */
async function poll(sid) {
  const res = await fetch(url(`&sid=${sid}`));
  const text = await res.text();
  return { status: res.status, text, packets: res.ok ? text.split(RS) : [] };
}

async function post(sid, packets) {
  const body = Array.isArray(packets) ? packets.join(RS) : packets;
  const res = await fetch(url(`&sid=${sid}`), { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
  return { status: res.status, text: await res.text() };
}

/** Polls until a packet matching `match` arrives; every packet seen on the way. */
async function pollFor(sid, match) {
  const seen = [];
  for (;;) {
    const { status, packets } = await poll(sid);
    assert.equal(status, 200, `poll answered ${status} before ${match}: ${JSON.stringify(seen)}`);
    seen.push(...packets);
    if (packets.some((p) => match.test(p))) return seen;
  }
}

/** A session admitted for `user` with the token in its CONNECT, as socket.io-client does. */
async function session(user) {
  const { open } = await handshake();
  assert.equal((await post(open.sid, [`40${JSON.stringify({ token: token(user) })}`])).status, 200);
  await pollFor(open.sid, /^40\{/);
  return open.sid;
}

test('socketio-polling-attacks: a session that never sends CONNECT ends at the deadline, and is then unknown', async () => {
  const { status, open } = await handshake();
  assert.equal(status, 200);
  assert.deepEqual(open.upgrades, ['websocket']);
  const started = Date.now();
  const seen = await pollFor(open.sid, /^1$/);
  assert.ok(Date.now() - started >= CONNECT_TIMEOUT - 200, 'ended at the deadline, not before');
  assert.deepEqual(seen.filter((p) => p !== '6'), ['1']);
  const after = await poll(open.sid);
  assert.equal(after.status, 400);
  assert.deepEqual(JSON.parse(after.text), { code: 1, message: 'Session ID unknown' });
});

test('socketio-polling-attacks: one address holds at most MAX_PENDING_PER_ADDRESS unauthenticated sessions', async () => {
  const held = [];
  for (let i = 0; i < MAX_PENDING; i++) {
    const { status, open } = await handshake();
    assert.equal(status, 200);
    held.push(open.sid);
  }
  const refused = await handshake();
  assert.equal(refused.status, 429);
  assert.equal(JSON.parse(refused.text).error.code, 'too_many_pending');
  // Each ends at the connect deadline, and its place is free again.
  await Promise.all(held.map((sid) => pollFor(sid, /^1$/)));
  const again = await handshake();
  assert.equal(again.status, 200);
  await pollFor(again.open.sid, /^1$/);
});

test('socketio-polling-attacks: a POST flood closes the session at the frame rate, and later POSTs find no session', async () => {
  const user = uid();
  const sid = await session(user);
  const flood = Array.from({ length: BURST + 5 }, () => '42["ack",{"seq":0}]');
  assert.equal((await post(sid, flood)).status, 200);
  await pollFor(sid, /^1$/);
  const late = await post(sid, ['42["ack",{"seq":0}]']);
  assert.equal(late.status, 400);
  assert.equal(JSON.parse(late.text).code, 1);
});

test('socketio-polling-attacks: a body beyond MAX_FRAME_BYTES is 413 and ends the session; a malformed one is 400', async () => {
  const sid = await session(uid());
  const big = await post(sid, `42["x","${'a'.repeat(70_000)}"]`);
  assert.equal(big.status, 413);
  assert.equal((await poll(sid)).status, 400);
  const other = await session(uid());
  assert.equal((await post(other, `3${RS}${RS}3`)).status, 400);
  assert.equal((await poll(other)).status, 400);
});

test('socketio-polling-attacks: a second poll while one is held is refused and ends the session', async () => {
  const user = uid();
  const sid = await session(user);
  // Right after a ping the next is an interval away: the first poll is held until then.
  await pollFor(sid, /^2$/);
  await post(sid, ['3']);
  const first = poll(sid);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const second = await poll(sid);
  assert.equal(second.status, 400, `${second.text} ${JSON.stringify(await Promise.race([first, 'first still held']))}`);
  assert.deepEqual(JSON.parse(second.text), { code: 3, message: 'Bad request' });
  assert.equal((await first).status, 200);
  assert.equal((await poll(sid)).status, 400, 'the session is over');
});

test('socketio-polling-attacks: made-up and ended sids reach no session; a session\'s sid is not its socket id', async () => {
  for (const sid of ['nope', randomBytes(16).toString('hex'), '../../x', 'A'.repeat(32)]) {
    const got = await poll(sid);
    assert.equal(got.status, 400, sid);
    assert.deepEqual(JSON.parse(got.text), { code: 1, message: 'Session ID unknown' });
    assert.equal((await post(sid, ['3'])).status, 400);
  }
  const user = uid();
  const { open } = await handshake();
  await post(open.sid, [`40${JSON.stringify({ token: token(user) })}`]);
  const seen = await pollFor(open.sid, /^40\{/);
  const socketId = JSON.parse(seen.find((p) => p.startsWith("40{")).slice(2)).sid;
  assert.notEqual(socketId, open.sid, 'the socket id others may learn does not open the session');
  assert.equal((await poll(socketId)).status, 400);
  const pushed = await push([user], 'order.shipped', { order: 1 });
  assert.equal(pushed.status, 200);
  await pollFor(open.sid, /order\.shipped/);
});

test('socketio-polling-attacks: polling answers CORS for allowed origins only, credentials included', async () => {
  const allowed = await handshake({ origin: 'https://allowed.test' });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://allowed.test');
  assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
  const evil = await handshake({ origin: 'https://evil.test' });
  assert.equal(evil.status, 403);
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  const preflight = await fetch(`${BASE}/socket.io/?EIO=4&transport=polling`, {
    method: 'OPTIONS',
    headers: { origin: 'https://allowed.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');
  await pollFor(allowed.open.sid, /^1$/);
});
