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
  // The second of the call plus the iat skew the verifier accepts (5 s).
  const ahead = cutoff - Date.now() / 1000;
  assert.ok(Number.isInteger(cutoff) && ahead > 3 && ahead <= 5, `cut-off ${cutoff}, ${ahead} s ahead`);
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

  // The first token that works is stamped one second past the cut-off, and is accepted once
  // that is within the iat skew: at most a second after the revocation.
  const fresh = signHS256(claims(user, { iat: cutoff + 1 }));
  await until(async () => (await http('GET', '/v1/rooms', { tok: fresh })).status === 200, {
    what: 'the fresh token accepted', timeoutMs: 3000, everyMs: 200,
  });
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

/** The first token of `user` a revocation with this cut-off lets in, once it is accepted. */
async function firstTokenAfter(user, cutoff, extra = {}) {
  const fresh = signHS256(claims(user, { iat: cutoff + 1, ...extra }));
  await until(async () => (await http('GET', '/v1/me', { tok: fresh })).status === 200, {
    what: 'the first token past the cut-off accepted', timeoutMs: 3000, everyMs: 200,
  });
  return fresh;
}

test('a revoked admin token stays out of a room created after the revocation', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const old = token(alice, { roles: ['admin'] });
  const revoked = await disconnect(alice, { reason: 'password changed', revoke: true });
  assert.equal(revoked.status, 200, revoked.text);
  const room = await createRoom(bob, [alice]);
  const fresh = await firstTokenAfter(alice, revoked.body.revoked_before);
  const bobs = await connectRoom(bob, room);
  const sent = await bobs.request('send', text('bob says'));
  const hers = await connectRoom(alice, room, { tok: fresh });
  const refresh = await hers.request('auth', { token: old });
  assert.equal(refresh.event, 'error', JSON.stringify(refresh));
  assert.equal(refresh.data.code, 'token_revoked');
  const moderation = await hers.request('delete', { id: sent.data.message.id });
  assert.equal(moderation.event, 'error', 'no admin rights came back');
  assert.equal(moderation.data.code, 'not_sender');
  const user = await connectUser(alice, { tok: fresh });
  assert.equal((await user.request('auth', { token: old })).data.code, 'token_revoked');
  await Promise.all([bobs.close(), hers.close(), user.close()]);
});

test('a token an issuer stamped ahead of our clock before a revocation is refused after it', async () => {
  const [user, owner] = [uid('skewed'), uid('owner')];
  const room = await createRoom(owner, [user]);
  // Minted before the revocation by an issuer whose clock runs 4 s ahead.
  const ahead = signHS256(claims(user, { iat: Math.floor(Date.now() / 1000) + 4 }));
  assert.equal((await http('GET', '/v1/me', { tok: ahead })).status, 200, 'accepted before');
  const revoked = await disconnect(user, { reason: 'blocked', revoke: true });
  assert.equal(revoked.status, 200, revoked.text);
  const code = (answer) => [answer.status, answer.body?.error?.code];
  assert.deepEqual(code(await http('GET', '/v1/me', { tok: ahead })), [401, 'token_revoked']);
  assert.deepEqual(code(await refused('/v1/connect', ahead)), [401, 'token_revoked']);
  assert.deepEqual(code(await refused(roomConnect(room), ahead)), [401, 'token_revoked']);
});

test('a token whose header names critical extensions is refused', async () => {
  const user = uid('crit');
  const crit = signHS256(claims(user), undefined, { crit: ['exp_ext'], exp_ext: true });
  const answer = await http('GET', '/v1/me', { tok: crit });
  assert.deepEqual([answer.status, answer.body.error.code], [401, 'token_malformed']);
  assert.equal((await refused('/v1/connect', crit)).status, 401);
});

test('ids a URL path cannot name (. and ..) are refused wherever an id is accepted', async () => {
  const owner = uid('owner');
  for (const id of ['.', '..']) {
    assert.equal((await http('GET', '/v1/me', { tok: token(id) })).status, 401, `sub ${id}`);
    const room = await http('POST', '/v1/rooms', { tok: token(owner), body: { id, name: 'dots' } });
    assert.equal(room.status, 400, room.text);
    const member = await http('POST', '/v1/rooms', { tok: token(owner), body: { name: 'dots', members: [id] } });
    assert.equal(member.status, 400, member.text);
    const pushed = await internal('POST', '/internal/v1/push', { users: [id], event: 'a.b', data: {} });
    assert.equal(pushed.status, 400, pushed.text);
  }
});

test('flipping typing on and off reaches the room at most three starts and their stops per interval', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  for (let i = 0; i < 40; i++) a.send({ event: 'typing', data: { active: i % 2 === 0 } });
  const barrier = await a.request('send', text('barrier'));
  await b.next((f) => f.event === 'message' && f.seq === barrier.data.message.seq);
  const seen = b.unread('typing').map((f) => f.data.active);
  assert.deepEqual(seen, [true, false, true, false, true, false], `forwarded: ${JSON.stringify(seen)}`);
  await Promise.all([a.close(), b.close()]);
});

test('a text frame that is not valid UTF-8 closes the socket with 1007; an escaped U+FFFD is fine', async () => {
  const user = uid('utf8');
  const raw = await rawOpen('/v1/connect', token(user));
  await until(() => raw.frames.some((f) => f.event === 'ready'), { what: 'ready' });
  raw.sendBytes(Buffer.from('{"event":"ping","data":{"note":"\\ufffd"}}'));
  await until(() => raw.frames.some((f) => f.event === 'pong'), { what: 'the escaped U+FFFD answered' });
  raw.sendBytes(Buffer.concat([Buffer.from('{"event":"ping","id":2,"data":{"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]));
  await until(() => raw.closes.length > 0, { what: 'a close frame' });
  assert.deepEqual(raw.closes, [1007]);
  raw.end();
});

test('sockets closed by the gateway but never let go count toward the socket cap', async () => {
  const user = uid('hoarder');
  const tok = token(user);
  const MAX = Number(process.env.SB_MAX_SOCKETS_PER_USER);
  const held = [];
  for (let i = 0; i < MAX; i++) {
    const raw = await rawOpen('/v1/connect', tok);
    await until(() => raw.frames.some((f) => f.event === 'ready'), { what: 'ready' });
    // Over the per-socket rate: the gateway closes with 4008, the client never answers.
    for (let n = 0; n < Number(process.env.SB_RATE_LIMIT_BURST) + 5; n++) raw.send({ event: 'nope' });
    await until(() => raw.closes.length > 0, { what: 'the 4008 close' });
    assert.deepEqual(raw.closes, [4008]);
    held.push(raw);
  }
  const answer = await refused('/v1/connect', tok);
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  assert.equal(answer.body.error.code, 'too_many_sockets');
  // Letting go of one makes room for one again.
  held.pop().end();
  const polite = await until(async () => {
    try { return await connectUser(user, { tok }); } catch { return null; }
  }, { what: 'a connect once a held socket was let go', everyMs: 200 });
  await polite.close();
  for (const raw of held) raw.end();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('a sync flood is paced per user: replay bytes stay within the budget and another member\'s sends stay fast', async (t) => {
  const [attacker, victim] = [uid('flood'), uid('victim')];
  const RATE = Number(process.env.SB_REPLAY_BYTES_PER_SECOND);
  const BATCH = Number(process.env.SB_REPLAY_BATCH_BYTES);
  const room = await createRoom(victim, [attacker]);
  const v = await connectRoom(victim, room);
  let head = 0;
  for (let i = 0; i < 40; i++) {
    const sent = await v.request('send', text(`${i} ${'x'.repeat(3900)}`));
    assert.equal(sent.event, 'ack', JSON.stringify(sent));
    head = sent.data.message.seq;
  }
  const sockets = [];
  for (let i = 0; i < 5; i++) sockets.push(await connectRoom(attacker, room));
  const started = Date.now();
  const flood = sockets.map(async (s) => {
    for (let n = 0; n < 30; n++) {
      s.send({ event: 'sync', id: `s${n}`, data: { since: 0 } });
      await sleep(110);
    }
  });
  const latencies = [];
  const victimSends = (async () => {
    while (Date.now() - started < 3300) {
      const at = Date.now();
      const answer = await v.request('send', text('still here'));
      assert.equal(answer.event, 'ack', JSON.stringify(answer));
      latencies.push(Date.now() - at);
      await sleep(100);
    }
  })();
  await Promise.all([...flood, victimSends]);
  const seconds = (Date.now() - started) / 1000;
  const replayed = sockets
    .flatMap((s) => s.unread('message'))
    .filter((f) => f.seq <= head)
    .reduce((sum, f) => sum + JSON.stringify(f).length, 0);
  const bound = Math.max(RATE, BATCH) + RATE * seconds + BATCH;
  assert.ok(replayed <= bound, `${replayed} replay bytes in ${seconds} s, bound ${bound}`);
  assert.ok(replayed > 0, 'the attacker still gets replays, paced');
  const answers = sockets.flatMap((s) => s.unread((f) => f.event === 'ack' || f.event === 'error'));
  for (const f of answers.filter((a) => a.event === 'error')) assert.equal(f.data.code, 'replay_limited');
  latencies.sort((a, b) => a - b);
  t.diagnostic(`replayed ${replayed} bytes in ${seconds.toFixed(1)} s (bound ${Math.round(bound)}); `
    + `victim send→ack median ${latencies[latencies.length >> 1]} ms, max ${latencies.at(-1)} ms over ${latencies.length} sends`);
  assert.ok(latencies.at(-1) < 1000, `victim send→ack: ${JSON.stringify(latencies)}`);
  await Promise.all([v.close(), ...sockets.map((s) => s.close())]);
});

test('edits never push messages out of the room window, and owners delete messages older than it', async () => {
  const [owner, rogue] = [uid('owner'), uid('rogue')];
  const WINDOW = Number(process.env.SB_ROOM_WINDOW_MESSAGES);
  const room = await createRoom(owner, [rogue]);
  const r = await connectRoom(rogue, room);
  const abusive = (await r.request('send', text('abusive'))).data.message;
  const mine = (await r.request('send', text('v0'))).data.message;
  const last = WINDOW + 10;
  // Over REST: as many edits on the socket would pass its frame rate first.
  for (let i = 1; i <= last; i++) {
    const edited = await http('PATCH', `/v1/rooms/${room}/messages/${mine.id}`, { tok: token(rogue), body: { body: `v${i}` } });
    assert.equal(edited.status, 200, edited.text);
  }
  const history = () => http('GET', `/v1/rooms/${room}/messages?limit=100`, { tok: token(owner) });
  // D1 has every edit once the room's copy (after which it prunes its window) has run.
  await until(async () => (await history()).body.messages?.some((m) => m.id === mine.id && m.body === `v${last}`), {
    what: 'the last edit in D1',
  });
  const deleted = await http('DELETE', `/v1/rooms/${room}/messages/${abusive.id}`, { tok: token(owner) });
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(deleted.body.changed, true);

  // A message that really is older than the window: the owner still deletes it, from history too.
  const old = (await r.request('send', text('old abuse'))).data.message;
  let newest;
  for (let i = 0; i < WINDOW + 5; i++) {
    newest = (await http('POST', `/v1/rooms/${room}/messages`, { tok: token(rogue), body: text(`filler ${i}`) })).body.message;
  }
  await until(async () => (await history()).body.messages?.some((m) => m.id === newest.id), { what: 'the fillers in D1' });
  const watcher = await connectRoom(owner, room);
  const removed = await http('DELETE', `/v1/rooms/${room}/messages/${old.id}`, { tok: token(owner) });
  assert.equal(removed.status, 200, removed.text);
  assert.equal(removed.body.message.body, '');
  assert.equal((await watcher.next('message.deleted')).data.id, old.id);
  await until(async () => {
    const page = await http('GET', `/v1/rooms/${room}/messages?before_seq=${old.seq + 1}&limit=1`, { tok: token(owner) });
    const [kept] = page.body.messages;
    return kept?.id === old.id && kept.body === '' && kept.deleted_at !== null;
  }, { what: 'the delete in D1 history' });
  const again = await r.request('edit', { id: old.id, body: 'back again' });
  assert.equal(again.data.code, 'message_deleted', 'a deleted message older than the window stays deleted');
  await Promise.all([r.close(), watcher.close()]);
});

test('room.activity previews the newest message as it is after an edit or a recall', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const bUser = await connectUser(bob);
  const sent = (await a.request('send', text('first words'))).data.message;
  const edited = await a.request('edit', { id: sent.id, body: 'second thoughts' });
  assert.equal(edited.event, 'ack');
  const note = await bUser.next((f) => f.event === 'room.activity' && f.data.seq === sent.seq + 1);
  assert.equal(note.data.last_message?.preview, 'second thoughts');
  await Promise.all([a.close(), bUser.close()]);
});
