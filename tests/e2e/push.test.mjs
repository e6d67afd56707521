// Issue 2: backend push to every device, the durable per-user stream, replay, retention,
// idempotency, token lifecycle, forced disconnect and presence.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectUser, http, internal, push, token, uid, INTERNAL_TOKEN } from './helpers.mjs';

const RETENTION = Number(process.env.SB_RETENTION_EVENTS);
const GRACE_MS = Number(process.env.SB_PRESENCE_GRACE_SECONDS) * 1000;

async function pushMany(user, n, prefix = 'e') {
  const seqs = [];
  for (let i = 0; i < n; i++) {
    const res = await push([user], 'test.event', { i, prefix });
    assert.equal(res.status, 200, res.text);
    seqs.push(res.body.results[0].seq);
  }
  return seqs;
}

/** Polls `fn` until it returns a truthy value, for state that no event announces. */
async function eventually(fn, what, timeoutMs = 15_000) {
  const start = Date.now();
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('a push reaches all three devices of a user and not another user', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const devices = await Promise.all([1, 2, 3].map(() => connectUser(alice)));
  const other = await connectUser(bob);
  const res = await push([alice], 'permission.changed', { role: 'editor' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.results, [{ user: alice, seq: 1, devices: 3, duplicate: false }]);
  for (const device of devices) {
    const frame = await device.next('permission.changed');
    assert.deepEqual(frame, { event: 'permission.changed', data: { role: 'editor' }, seq: 1 });
  }
  const marker = await push([bob], 'marker.event', {});
  assert.equal(marker.status, 200);
  assert.equal((await other.next()).event, 'marker.event', 'bob saw nothing before his own event');
  await Promise.all([...devices, other].map((c) => c.close()));
});

test('a 1,000-user batch push answers per user, in order', async () => {
  const users = Array.from({ length: 1000 }, (_, i) => `batch-${uid('b')}-${i}`);
  const online = await connectUser(users[500]);
  const res = await push(users, 'batch.event', { n: 1 }, { idempotency_key: 'batch-1' });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.results.length, 1000);
  res.body.results.forEach((r, i) => {
    assert.equal(r.user, users[i]);
    assert.equal(r.seq, 1);
    assert.equal(r.devices, i === 500 ? 1 : 0);
  });
  assert.equal((await online.next('batch.event')).seq, 1);
  await online.close();
});

test('an idempotent retry returns the original seq and delivers nothing twice', async () => {
  const user = uid();
  const client = await connectUser(user);
  const first = await push([user], 'order.shipped', { id: 1 }, { idempotency_key: 'ship-1' });
  const retry = await push([user], 'order.shipped', { id: 1 }, { idempotency_key: 'ship-1' });
  assert.deepEqual(first.body.results[0], { user, seq: 1, devices: 1, duplicate: false });
  assert.deepEqual(retry.body.results[0], { user, seq: 1, devices: 0, duplicate: true });
  const next = await push([user], 'order.shipped', { id: 2 }, { idempotency_key: 'ship-2' });
  assert.equal(next.body.results[0].seq, 2);
  assert.equal((await client.next()).seq, 1);
  assert.equal((await client.next()).seq, 2, 'the retry was not delivered');
  await client.close();
});

test('an offline user gets the events on connect with since', async () => {
  const user = uid();
  await pushMany(user, 3);
  const client = await connectUser(user, { path: '/v1/connect?since=0' });
  assert.equal(client.ready.data.seq, 3);
  const replayed = await client.take('test.event', 3);
  assert.deepEqual(replayed.map((f) => f.seq), [1, 2, 3]);
  assert.deepEqual(replayed.map((f) => f.data.i), [0, 1, 2]);
  assert.deepEqual((await client.next('synced')).data, { seq: 3, recovered: true, more: false });
  await client.close();
});

test('a replay under concurrent pushes has no gap, duplicate or reorder', async () => {
  const user = uid();
  await pushMany(user, 30, 'before');
  const during = pushMany(user, 30, 'during');
  const client = await connectUser(user, { path: '/v1/connect?since=10' });
  await during;
  const frames = await client.take('test.event', 50);
  assert.deepEqual(frames.map((f) => f.seq), Array.from({ length: 50 }, (_, i) => i + 11));
  const synced = client.raw.findIndex((t) => t.includes('"synced"'));
  assert.ok(synced > 0, 'synced was sent');
  assert.equal(client.unread('test.event').length, 0, 'no duplicates');
  await client.close();
});

test('resume beyond retention says recovered:false and replays what is left', async () => {
  const user = uid();
  const total = RETENTION + 30;
  await pushMany(user, total);
  const oldest = await eventually(async () => {
    const probe = await connectUser(user, { path: '/v1/connect?since=0' });
    const synced = await probe.next('synced');
    const replayed = probe.raw.filter((t) => t.includes('"test.event"')).length;
    await probe.close();
    return synced.data.recovered === false && replayed === RETENTION ? synced : null;
  }, 'the retention pass');
  assert.equal(oldest.data.seq, total);
  const recent = await connectUser(user, { path: `/v1/connect?since=${total - 5}` });
  const frames = await recent.take('test.event', 5);
  assert.deepEqual(frames.map((f) => f.seq), [total - 4, total - 3, total - 2, total - 1, total]);
  assert.deepEqual((await recent.next('synced')).data, { seq: total, recovered: true, more: false });
  await recent.close();
});

test('a since ahead of the stream is not recovered', async () => {
  const user = uid();
  await pushMany(user, 2);
  const client = await connectUser(user, { path: '/v1/connect?since=50' });
  assert.deepEqual((await client.next('synced')).data, { seq: 2, recovered: false, more: false });
  await client.close();
});

test('device cursors are stored, reported in ready, and never move back', async () => {
  const user = uid();
  await pushMany(user, 5);
  const first = await connectUser(user, { path: '/v1/connect?device=phone-1' });
  assert.equal(first.ready.data.device, 'phone-1');
  assert.equal(first.ready.data.cursor, null);
  assert.deepEqual((await first.request('ack', { seq: 4 })).data, { cursor: 4 });
  assert.deepEqual((await first.request('ack', { seq: 2 })).data, { cursor: 4 });
  const ahead = await first.request('ack', { seq: 99 });
  assert.equal(ahead.event, 'error');
  assert.equal(ahead.data.code, 'validation');
  const bad = await first.request('ack', { seq: 'x' });
  assert.equal(bad.data.code, 'validation');
  await first.close();
  const again = await connectUser(user, { path: '/v1/connect?device=phone-1' });
  assert.equal(again.ready.data.cursor, 4);
  assert.equal(again.ready.data.seq, 5);
  await again.close();
});

test('an expiring token closes the socket with token.expired and 4001', async () => {
  const user = uid();
  const client = await connectUser(user, { tok: token(user, { ttl: 2 }) });
  const expired = await client.next('token.expired', 15_000);
  assert.equal(expired.data.expires_at, client.ready.data.expires_at);
  assert.equal((await client.closed).code, 4001);
});

test('an auth refresh extends the socket; bad refreshes change nothing', async () => {
  const user = uid();
  const client = await connectUser(user, { tok: token(user, { ttl: 3 }) });
  const other = await client.request('auth', { token: token(uid()) });
  assert.equal(other.event, 'error');
  assert.equal(other.data.code, 'forbidden');
  const invalid = await client.request('auth', { token: 'nope' });
  assert.equal(invalid.data.code, 'token_malformed');
  const missing = await client.request('auth', {});
  assert.equal(missing.data.code, 'validation');
  const refreshed = await client.request('auth', { token: token(user, { ttl: 600 }) });
  assert.equal(refreshed.event, 'ack');
  assert.ok(refreshed.data.expires_at >= client.ready.data.expires_at + 500);
  const oldExpiryMs = client.ready.data.expires_at * 1000 - Date.now();
  const outcome = await Promise.race([
    client.closed.then(() => 'closed'),
    new Promise((r) => setTimeout(() => r('open'), oldExpiryMs + 2_000)),
  ]);
  assert.equal(outcome, 'open', 'the socket outlived its first token');
  const res = await push([user], 'still.here', {});
  assert.equal(res.body.results[0].devices, 1);
  await client.next('still.here');
  await client.close();
});

test('a forced disconnect closes every device with 4003 and the reason', async () => {
  const user = uid();
  const devices = await Promise.all([1, 2].map(() => connectUser(user)));
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'password changed' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { user, devices: 2, room_sockets: 0, sockets: 2, revoked_before: null });
  for (const device of devices) {
    assert.deepEqual(await device.closed, { code: 4003, reason: 'password changed' });
  }
  const tooLong = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'x'.repeat(200) });
  assert.equal(tooLong.status, 400);
});

async function presenceOf(user, tok) {
  const res = await http('GET', `/v1/presence?users=${user}`, { tok });
  assert.equal(res.status, 200, res.text);
  return res.body.users[0];
}

test('presence counts devices and holds online through the grace period', async () => {
  const user = uid();
  const viewerId = uid('viewer');
  // A room a backend made: members a user adds are pending (membership-attacks.test.mjs).
  const room = await internal('POST', '/internal/v1/rooms', { name: 'viewing', owner: viewerId, members: [user] });
  assert.equal(room.status, 201, room.text);
  const viewer = token(viewerId);
  const never = await presenceOf(user, viewer);
  assert.deepEqual(never, { user_id: user, online: false, devices: 0, last_seen: null });
  const a = await connectUser(user);
  const b = await connectUser(user);
  assert.deepEqual([(await presenceOf(user, viewer)).online, (await presenceOf(user, viewer)).devices], [true, 2]);
  await a.close();
  assert.equal((await eventually(async () => {
    const p = await presenceOf(user, viewer);
    return p.devices === 1 ? p : null;
  }, 'one device')).online, true);
  await b.close();
  const closedAt = Date.now();
  const gone = await eventually(async () => {
    const p = await presenceOf(user, viewer);
    return p.devices === 0 ? p : null;
  }, 'no devices');
  if (Date.now() - closedAt < GRACE_MS - 500) assert.equal(gone.online, true, 'inside the grace period');
  const reconnect = await connectUser(user);
  assert.equal((await presenceOf(user, viewer)).online, true);
  await reconnect.close();
  const offline = await eventually(async () => {
    const p = await presenceOf(user, viewer);
    return p.online ? null : p;
  }, 'offline after the grace period');
  assert.equal(offline.devices, 0);
  assert.ok(offline.last_seen >= closedAt - 1000);
});

test('presence requires a token and valid users', async () => {
  assert.equal((await http('GET', '/v1/presence?users=a')).status, 401);
  const tok = token(uid());
  assert.equal((await http('GET', '/v1/presence', { tok })).status, 400);
  assert.equal((await http('GET', '/v1/presence?users=a%20b', { tok })).status, 400);
});

test('bad internal calls get clear 4xx answers', async () => {
  const user = uid();
  const noAuth = await http('POST', '/internal/v1/push', { body: { users: [user], event: 'a.b' } });
  assert.equal(noAuth.status, 401);
  const wrong = await http('POST', '/internal/v1/push', { body: { users: [user], event: 'a.b' }, tok: 'wrong' });
  assert.equal(wrong.status, 401);
  const userToken = await http('POST', '/internal/v1/push', { body: { users: [user], event: 'a.b' }, tok: token(user) });
  assert.equal(userToken.status, 401);
  const badJson = await internal('POST', '/internal/v1/push', undefined, { raw: '{"users":' });
  assert.equal(badJson.status, 400);
  assert.equal(badJson.body.error.code, 'bad_json');
  const many = Array.from({ length: 1001 }, (_, i) => `u${i}`);
  const oversized = await push(many, 'a.b');
  assert.equal(oversized.status, 413);
  assert.equal(oversized.body.error.code, 'batch_too_large');
  for (const event of ['message', 'ready', 'error', 'synced', 'token.expired']) {
    const reserved = await push([user], event);
    assert.equal(reserved.status, 400, event);
    assert.match(reserved.body.error.message, /reserved/);
  }
  const unknownField = await internal('POST', '/internal/v1/push', { users: [user], event: 'a.b', extra: 1 });
  assert.equal(unknownField.status, 400);
  const noUsers = await push([], 'a.b');
  assert.equal(noUsers.status, 400);
  const bigData = await push([user], 'a.b', { blob: 'x'.repeat(70 * 1024) });
  assert.equal(bigData.status, 413);
  assert.ok(INTERNAL_TOKEN, 'the suite has the internal token');
});
