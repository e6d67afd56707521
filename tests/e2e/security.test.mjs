// Security promises against clients that do not play along: revocation everywhere, closed
// sockets that stay closed, removal racing a connect, leeway-expired tokens, presence that
// reveals nothing to strangers, deletion that reaches replays, and hubs that wake only for work.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  alarmOf, claims, connectRoom, connectUser, createRoom, http, internal, rawOpen, refused,
  signHS256, token, uid, until,
} from './helpers.mjs';

const text = (body, client_id) => ({ type: 'text', body, ...(client_id ? { client_id } : {}) });
const roomConnect = (id) => `/v1/rooms/${encodeURIComponent(id)}/connect`;
const disconnect = (user, body) => internal('POST', `/internal/v1/users/${user}/disconnect`, body);

/** Resolves once `client` has received nothing new for `quietMs`: a bounded check for absence. */
const quiet = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('a revoking disconnect closes the user socket and every room socket, and old tokens stay out everywhere', async () => {
  const user = uid('victim');
  const owner = uid('owner');
  const [roomA, roomB] = [await createRoom(owner, [user]), await createRoom(owner, [user])];
  const old = token(user);
  const hub = await connectUser(user, { tok: old });
  const inA = await connectRoom(user, roomA, { tok: old });
  const inB = await connectRoom(user, roomB, { tok: old });
  const watcher = await connectRoom(owner, roomA);

  const res = await disconnect(user, { reason: 'password changed', revoke: true });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.devices, 1);
  assert.equal(res.body.room_sockets, 2);
  assert.equal(res.body.sockets, 3);
  const cutoff = res.body.revoked_before;
  assert.ok(Number.isInteger(cutoff) && Math.abs(cutoff - Date.now() / 1000) < 5, `cut-off ${cutoff}`);
  for (const socket of [hub, inA, inB]) {
    assert.deepEqual(await socket.closed, { code: 4003, reason: 'password changed' });
  }
  assert.equal((await watcher.next('user.left')).data.user_id, user);

  const revokedCode = (answer) => [answer.status, answer.body?.error?.code];
  assert.deepEqual(revokedCode(await refused('/v1/connect', old)), [401, 'token_revoked']);
  assert.deepEqual(revokedCode(await refused(roomConnect(roomA), old)), [401, 'token_revoked']);
  assert.deepEqual(revokedCode(await http('GET', '/v1/rooms', { tok: old })), [401, 'token_revoked']);
  assert.deepEqual(revokedCode(await http('GET', '/v1/me', { tok: old })), [401, 'token_revoked']);
  const sameSecond = signHS256(claims(user, { iat: cutoff }));
  assert.deepEqual(revokedCode(await http('GET', '/v1/rooms', { tok: sameSecond })), [401, 'token_revoked']);
  const { iat: _drop, ...withoutIat } = claims(user);
  const noIat = signHS256(withoutIat);
  assert.deepEqual(revokedCode(await refused('/v1/connect', noIat)), [401, 'token_revoked']);

  const fresh = signHS256(claims(user, { iat: cutoff + 1 }));
  assert.equal((await http('GET', '/v1/rooms', { tok: fresh })).status, 200);
  const again = await connectUser(user, { tok: fresh });
  const againInRoom = await connectRoom(user, roomB, { tok: fresh });
  for (const socket of [again, againInRoom]) {
    const refresh = await socket.request('auth', { token: old });
    assert.equal(refresh.event, 'error');
    assert.equal(refresh.data.code, 'token_revoked');
    const ok = await socket.request('auth', { token: fresh });
    assert.equal(ok.event, 'ack');
  }
  await Promise.all([again.close(), againInRoom.close(), watcher.close()]);
});

test('a removed member that ignores the close frame cannot post, type or read', async () => {
  const [owner, rogue] = [uid('owner'), uid('rogue')];
  const room = await createRoom(owner, [rogue]);
  const ownerSocket = await connectRoom(owner, room);
  const raw = await rawOpen(roomConnect(room), token(rogue));
  await until(() => raw.frames.some((f) => f.event === 'ready'), { what: 'ready on the raw socket' });

  const removed = await http('DELETE', `/v1/rooms/${room}/members/${rogue}`, { tok: token(owner) });
  assert.equal(removed.status, 200, removed.text);
  await until(() => raw.closes.length > 0, { what: 'a close frame' });
  assert.deepEqual(raw.closes, [4003]);
  const before = raw.frames.length;
  for (let i = 0; i < 5; i++) {
    raw.send({ event: 'send', id: `r${i}`, data: text(`after removal ${i}`, `r-${i}`) });
    raw.send({ event: 'typing', id: `t${i}`, data: {} });
    raw.send({ event: 'read', id: `x${i}`, data: { seq: 0 } });
  }
  const mine = await ownerSocket.request('send', text('still here'));
  assert.equal(mine.data.message.seq, 1, 'nothing the removed member sent was stored');
  await quiet(300);
  assert.deepEqual(raw.frames.slice(before), [], 'no ack, error or message reached the removed member');
  assert.deepEqual(ownerSocket.unread('message').map((m) => m.data.sender_id), [owner]);
  assert.deepEqual(ownerSocket.unread('typing'), []);
  raw.end();
  await ownerSocket.close();
});

test('a socket closed with 4008 that keeps sending has nothing stored or acked', async () => {
  const [owner, flooder] = [uid('owner'), uid('flood')];
  const room = await createRoom(owner, [flooder]);
  const ownerSocket = await connectRoom(owner, room);
  const raw = await rawOpen(roomConnect(room), token(flooder));
  await until(() => raw.frames.some((f) => f.event === 'ready'), { what: 'ready on the raw socket' });
  const burst = Number(process.env.SB_RATE_LIMIT_BURST ?? 50);
  for (let i = 0; i < burst * 2; i++) raw.send({ event: 'typing', data: {} });
  await until(() => raw.closes.length > 0, { what: 'close 4008' });
  assert.deepEqual(raw.closes, [4008]);
  const before = raw.frames.length;
  for (let i = 0; i < 5; i++) raw.send({ event: 'send', id: `s${i}`, data: text(`late ${i}`) });
  const mine = await ownerSocket.request('send', text('barrier'));
  assert.equal(mine.data.message.seq, 1);
  await quiet(300);
  assert.deepEqual(raw.frames.slice(before).filter((f) => f.event !== 'typing'), []);
  raw.end();
  await ownerSocket.close();
});

test('removal racing a connect never leaves a socket of the removed user open', async () => {
  const owner = uid('owner');
  const room = await createRoom(owner, []);
  const ROUNDS = 25;
  let admitted = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const user = uid(`race${round}`);
    const added = await internal('POST', `/internal/v1/rooms/${room}/members`, { users: [user] });
    assert.equal(added.status, 200, added.text);
    // A raw client: it sees the close frame the moment it is sent, and never answers it.
    const [connect, removal] = await Promise.allSettled([
      rawOpen(roomConnect(room), token(user)),
      quiet(round % 6).then(() => internal('DELETE', `/internal/v1/rooms/${room}/members/${user}`)),
    ]);
    assert.equal(removal.status, 'fulfilled');
    assert.equal(removal.value.status, 200, removal.value.text);
    if (connect.status === 'fulfilled') {
      admitted++;
      const raw = connect.value;
      await until(() => raw.closes.length > 0, { timeoutMs: 5000, what: `round ${round}: a close frame` });
      assert.deepEqual(raw.closes, [4003], `round ${round}`);
      raw.send({ event: 'send', id: 'late', data: text('after removal') });
      raw.end();
    } else {
      assert.match(String(connect.reason), /HTTP\/1\.1 40[34]/, `round ${round}`);
    }
  }
  const report = await alarmOf('rooms', room);
  assert.equal(report.open_sockets, 0, 'no socket of any removed user is open');
  const history = await connectRoom(owner, room, { query: 'since=0' });
  assert.equal((await history.next('synced')).data.seq, 0, 'nothing any of them sent was stored');
  await history.close();
  console.log(`removal/connect race: ${admitted} of ${ROUNDS} connects were admitted, then closed with 4003`);
});

test('a token accepted only thanks to the clock leeway expires at once', async () => {
  const user = uid();
  const owner = uid('owner');
  const room = await createRoom(owner, [user]);
  const late = signHS256(claims(user, { ttl: -5 }));
  for (const client of [await connectUser(user, { tok: late }), await connectRoom(user, room, { tok: late })]) {
    const started = Date.now();
    await client.next('token.expired', 5000);
    assert.ok(Date.now() - started < 5000, 'promptly, not at some later alarm');
    assert.equal((await client.closed).code, 4001);
  }
});

test('presence of a stranger looks exactly like presence of an id nobody uses', async () => {
  const [me, mate, stranger, nobody] = [uid('me'), uid('mate'), uid('stranger'), uid('nobody')];
  // A room a backend made: members a user adds are pending (membership-attacks.test.mjs).
  assert.equal((await internal('POST', '/internal/v1/rooms', { name: 'mates', owner: me, members: [mate] })).status, 201);
  const sockets = [await connectUser(mate), await connectUser(stranger)];
  const res = await http('GET', `/v1/presence?users=${mate},${stranger},${nobody},${me}`, { tok: token(me) });
  assert.equal(res.status, 200, res.text);
  const [ofMate, ofStranger, ofNobody, ofMe] = res.body.users;
  assert.equal(ofMate.online, true);
  assert.equal(ofMate.devices, 1);
  const { user_id: _s, ...strangerSeen } = ofStranger;
  const { user_id: _n, ...nobodySeen } = ofNobody;
  assert.deepEqual(strangerSeen, nobodySeen);
  assert.deepEqual(strangerSeen, { online: false, devices: 0, last_seen: null });
  assert.equal(ofMe.user_id, me);
  await Promise.all(sockets.map((s) => s.close()));
});

test('an admin delete takes the message out of REST and replay, and connected receivers hear of it', async () => {
  const [alice, bob, admin] = [uid('alice'), uid('bob'), uid('admin')];
  const bobSocket = await connectUser(bob);
  const secret = `secret body ${uid()}`;
  const sent = await http('POST', '/v1/messages', { tok: token(alice), body: { to: [bob], type: 'text', body: secret } });
  assert.equal(sent.status, 201, sent.text);
  const id = sent.body.message.id;
  assert.equal((await bobSocket.next('message')).data.body, secret);

  const adminToken = token(admin, { roles: ['admin'] });
  const deleted = await http('DELETE', `/v1/admin/messages/${id}`, { tok: adminToken });
  assert.equal(deleted.status, 200, deleted.text);
  assert.deepEqual((await bobSocket.next('message.deleted')).data, { id });

  const received = await http('GET', '/v1/messages/received', { tok: token(bob) });
  assert.ok(!received.text.includes(secret));
  for (const user of [bob, alice]) {
    const replay = await connectUser(user, { path: '/v1/connect?since=0' });
    const synced = await replay.next('synced');
    assert.equal(synced.data.recovered, true);
    assert.ok(!replay.raw.join('\n').includes(secret), `${user}'s replay shows no content`);
    const tombstone = replay.unread('message').find((m) => m.data.id === id);
    assert.deepEqual(tombstone.data, { id, deleted: true });
    assert.ok(replay.unread('message.deleted').some((m) => m.data.id === id));
    await replay.close();
  }
  await bobSocket.close();
});

test('hubs wake only for work: no wake after sockets close, one wake at an open socket\'s expiry', async () => {
  const idle = uid('idle');
  const room = await createRoom(uid('owner'), [idle]);
  const short = token(idle, { ttl: 2 });
  const sockets = [await connectUser(idle, { tok: short }), await connectRoom(idle, room, { tok: short })];
  assert.notEqual((await alarmOf('users', idle)).alarm_at, null, 'an open socket sets its expiry');
  await Promise.all(sockets.map((s) => s.close()));
  await until(async () => (await alarmOf('users', idle)).alarm_at === null, { what: 'user hub alarm deleted' });
  await until(async () => (await alarmOf('rooms', room)).alarm_at === null, { what: 'room alarm deleted' });
  await quiet(3000);
  assert.equal((await alarmOf('users', idle)).alarm_wakes, 0);

  const kept = uid('kept');
  const open = await connectUser(kept, { tok: token(kept, { ttl: 2 }) });
  await open.next('token.expired', 6000);
  assert.equal((await open.closed).code, 4001);
  const report = await until(async () => {
    const r = await alarmOf('users', kept);
    return r.alarm_at === null ? r : null;
  }, { what: 'alarm cleared after the expiry' });
  assert.equal(report.alarm_wakes, 1);
});
