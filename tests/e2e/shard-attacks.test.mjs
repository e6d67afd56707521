// A hostile member whose sockets sit on a shard. The suite's gateway runs with
// ROOM_SHARD_SOCKETS=2: in each test two other members fill the room's own object first, so the
// attacker's sockets land on shard 1 or beyond (checked with GET /internal/v1/rooms/{id}/shards),
// where every frame they send reaches the room over the shard's link and every answer comes back
// the same way. Each test is the attack itself, done by raw clients (`rawOpen`: a bare TCP
// WebSocket that never answers a close frame): frames after a removal or a revocation, a flood,
// a removal racing reconnects onto a shard, sockets the gateway closed and the client never lets
// go, and presence of such sockets. Absence is checked with a marker: a later message awaited on
// a socket held by the same object, after which the earlier thing cannot still be on its way.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  claims, connectRoom, createRoom, http, internal, rawOpen, refused, signHS256, token, uid, until,
} from './helpers.mjs';

const MAX = Number(process.env.SB_MAX_SOCKETS_PER_USER);
const BURST = Number(process.env.SB_RATE_LIMIT_BURST);
const PER_SECOND = Number(process.env.SB_RATE_LIMIT_PER_SECOND);

const text = (body, clientId) => ({ type: 'text', body, ...(clientId ? { client_id: clientId } : {}) });
const roomConnect = (room) => `/v1/rooms/${encodeURIComponent(room)}/connect`;

async function shardsOf(room) {
  const res = await internal('GET', `/internal/v1/rooms/${room}/shards`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}
/** `[shard, open sockets, users]` for every object holding the room's sockets. */
const spread = async (room) => (await shardsOf(room)).shards.map((s) => [s.shard, s.sockets, s.users]);
/** `[shard, open sockets]` for every object holding the room's sockets. */
const sockets = async (room) => (await shardsOf(room)).shards.map((s) => [s.shard, s.sockets]);

/** A raw member socket, after its `ready`. */
async function rawMember(user, room, tok = token(user)) {
  const raw = await rawOpen(roomConnect(room), tok);
  await until(() => raw.frames.some((f) => f.event === 'ready'), { what: 'ready on the raw socket' });
  return raw;
}

/** Floods a raw socket over its frame rate and waits for the 4008 it never answers. */
async function rateLimited(raw) {
  for (let i = 0; i < BURST + 5; i++) raw.send({ event: 'nope' });
  await until(() => raw.closes.length > 0, { what: 'the 4008 close' });
  assert.deepEqual(raw.closes, [4008]);
}

/** Every frame a removed or revoked member may try: each would act if it were processed. */
function hostileFrames(tag, messageId, tokens) {
  return [
    { event: 'send', id: `${tag}-send`, data: text(`${tag}: after the close`, `${tag}-1`) },
    { event: 'typing', id: `${tag}-typing`, data: { active: true } },
    { event: 'read', id: `${tag}-read`, data: { seq: 1 } },
    { event: 'sync', id: `${tag}-sync`, data: { since: 0 } },
    { event: 'edit', id: `${tag}-edit`, data: { id: messageId, body: `${tag}: rewritten` } },
    { event: 'delete', id: `${tag}-delete`, data: { id: messageId } },
    ...tokens.map((tok, i) => ({ event: 'auth', id: `${tag}-auth-${i}`, data: { token: tok } })),
    { event: 'ping', id: `${tag}-ping` },
  ];
}

/** The room's stream as a member resuming from 0 gets it, every page: what the room stored. */
async function stored(user, room) {
  const resume = await connectRoom(user, room, { query: 'since=0' });
  let synced = await resume.next('synced');
  while (synced.data.more) {
    resume.send({ event: 'sync', data: { since: synced.data.seq } });
    synced = await resume.next('synced');
  }
  const messages = resume.unread('message').map((m) => m.data);
  await resume.close();
  return messages;
}

/** The room's history over REST (D1's copy), once it holds the message with `body`. */
async function history(room, asker, body) {
  const page = await until(async () => {
    const res = await http('GET', `/v1/rooms/${room}/messages?limit=100`, { tok: token(asker) });
    return res.body?.messages?.some((m) => m.body === body) ? res.body.messages : null;
  }, { what: `${body} in D1's history` });
  return page.slice().reverse();
}

/** Events of the other members' sockets that an act of `user` would have caused. */
const causedBy = (client, user) => client.frames.filter((f) => (
  (['typing', 'read'].includes(f.event) && f.data?.user_id === user)
  || (f.event === 'message' && f.data?.sender_id === user)
  || ['message.updated', 'message.deleted'].includes(f.event)
));

/**
 * A room whose own object holds `first` members' sockets (two: full), then the attacker's raw
 * socket on shard 1 and a watcher beside it there.
 */
async function attackerOnShard(prefix) {
  const [owner, m1, bad, watcher, late] = [uid('own'), uid('m1'), uid(prefix), uid('watch'), uid('late')];
  const room = await createRoom(owner, [m1, bad, watcher, late]);
  const o = await connectRoom(owner, room);
  const a = await connectRoom(m1, room);
  assert.deepEqual(await spread(room), [[0, 2, 2]], 'the room\'s own object is full');
  const raw = await rawMember(bad, room);
  assert.deepEqual(await spread(room), [[0, 2, 2], [1, 1, 1]], 'the attacker is on shard 1');
  const w = await connectRoom(watcher, room);
  assert.deepEqual(await spread(room), [[0, 2, 2], [1, 2, 2]], 'the watcher beside it');
  // The raw path works before the close: a send is stored, acked and delivered.
  raw.send({ event: 'send', id: 'before', data: text(`${prefix}: before`, 'before') });
  await until(() => raw.frames.some((f) => f.event === 'ack' && f.id === 'before'), { what: 'the ack before the close' });
  const first = (await w.next('message')).data;
  assert.equal(first.sender_id, bad);
  await o.next('message');
  await a.next('message');
  return { owner, m1, bad, watcher, late, room, o, a, raw, w, first };
}

/**
 * After a close the raw client ignored, it tries everything; a marker sent afterwards from the
 * watcher on the same shard arrives everywhere; nothing the attacker sent was acted on.
 */
async function provesNothingActs(s, frames, prefix) {
  const seen = s.raw.frames.length;
  for (let round = 0; round < 3; round++) for (const frame of frames) s.raw.send(frame);
  await new Promise((resolve) => s.raw.socket.write('', resolve));
  const marker = `${prefix}: marker`;
  const ack = await s.w.request('send', text(marker, `${prefix}-marker`));
  assert.equal(ack.event, 'ack', JSON.stringify(ack));
  for (const c of [s.o, s.a]) await c.next((f) => f.event === 'message' && f.data.body === marker);
  await s.w.next((f) => f.event === 'message' && f.data.body === marker);

  assert.deepEqual(s.raw.frames.slice(seen), [], 'no ack, error, pong or delivery reached the closed socket');
  for (const c of [s.o, s.a, s.w]) assert.deepEqual(causedBy(c, s.bad).filter((f) => f.data?.body !== s.first.body), [], 'nothing reached the others');
  const kept = await stored(s.owner, s.room);
  assert.deepEqual(kept.map((m) => [m.sender_id, m.body]), [[s.bad, s.first.body], [s.watcher, marker]], 'the room stored nothing of it');
  assert.ok(!kept[0].edited_at && !kept[0].deleted_at, 'neither edited nor deleted');
  const d1 = await history(s.room, s.owner, marker);
  assert.deepEqual(d1.map((m) => [m.sender_id, m.body, m.deleted_at ?? null]), [[s.bad, s.first.body, null], [s.watcher, marker, null]]);
}

/**
 * The held socket still counts toward the attacker's socket cap in the room, after the shard it
 * sits on filled up meanwhile: with one held, the MAX-th open socket closes the oldest (4009).
 * The oldest is raw too, so its close frame is seen at once (a polite client's close event waits
 * for the runtime to drop the connection).
 */
async function heldSocketCounts(s, tok) {
  const filler = await connectRoom(s.late, s.room);
  const oldest = await rawMember(s.bad, s.room, tok);
  const mine = [];
  for (let i = 1; i < MAX; i++) mine.push(await connectRoom(s.bad, s.room, { tok, query: `device=dev-${i}` }));
  await until(() => oldest.closes.length > 0, { what: 'the oldest open socket closed for the held one', timeoutMs: 5000 });
  assert.deepEqual(oldest.closes, [4009]);
  assert.equal((await shardsOf(s.room)).sockets, 2 + 2 + MAX - 1, 'the held sockets are not counted as open');
  assert.ok(mine.every((c) => c.ws.readyState === c.ws.OPEN), 'only the oldest was closed');
  oldest.end();
  for (const c of mine) await c.close();
  await filler.close();
}

test('a removed member on a shard that ignores the close frame has nothing stored, delivered or acked, and its held socket counts toward the socket cap', async () => {
  const s = await attackerOnShard('removed');
  const removed = await http('DELETE', `/v1/rooms/${s.room}/members/${s.bad}`, { tok: token(s.owner) });
  assert.equal(removed.status, 200, removed.text);
  await until(() => s.raw.closes.length > 0, { what: 'the 4003 close' });
  assert.deepEqual(s.raw.closes, [4003]);
  await s.w.next((f) => f.event === 'member.removed' && f.data.user_id === s.bad);

  await provesNothingActs(s, hostileFrames('removed', s.first.id, [token(s.bad)]), 'removed');

  const added = await http('POST', `/v1/rooms/${s.room}/members`, { tok: token(s.owner), body: { users: [s.bad] } });
  assert.equal(added.status, 200, added.text);
  await heldSocketCounts(s, token(s.bad));
  s.raw.end();
  for (const c of [s.o, s.a, s.w]) await c.close();
});

test('a revoked member on a shard that ignores the close frame has nothing stored, delivered or acked; auth with the revoked token changes nothing', async () => {
  const s = await attackerOnShard('revoked');
  const old = token(s.bad);
  const res = await internal('POST', `/internal/v1/users/${s.bad}/disconnect`, { reason: 'x', revoke: true });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.room_sockets, 1);
  await until(() => s.raw.closes.length > 0, { what: 'the 4003 close' });
  assert.deepEqual(s.raw.closes, [4003]);
  await s.w.next((f) => f.event === 'user.left' && f.data.user_id === s.bad);

  // The first token past the cut-off, once the verifier accepts its iat.
  const fresh = signHS256(claims(s.bad, { iat: res.body.revoked_before + 1 }));
  await until(async () => (await http('GET', '/v1/me', { tok: fresh })).status === 200, {
    what: 'the first token past the cut-off accepted', timeoutMs: 3000, everyMs: 200,
  });
  await provesNothingActs(s, hostileFrames('revoked', s.first.id, [old, fresh]), 'revoked');

  // On an open socket of the same shard, the revoked token is still refused in band.
  const again = await connectRoom(s.bad, s.room, { tok: fresh });
  const refresh = await again.request('auth', { token: old });
  assert.deepEqual([refresh.event, refresh.data.code], ['error', 'token_revoked']);
  await again.close();
  await heldSocketCounts(s, fresh);
  s.raw.end();
  for (const c of [s.o, s.a, s.w]) await c.close();
});

test('a flood from a socket on a shard is closed with 4008, frames after the close do nothing, and other members\' sends stay fast', async (t) => {
  const s = await attackerOnShard('flood');
  const sends = (client, tag) => (async () => {
    const latencies = [];
    for (let i = 0; i < 15; i++) {
      const at = Date.now();
      const answer = await client.request('send', text(`${tag} ${i}`, `${tag}-${i}`));
      assert.equal(answer.event, 'ack', JSON.stringify(answer));
      latencies.push(Date.now() - at);
    }
    return latencies;
  })();
  const started = Date.now();
  const honest = [sends(s.a, 'honest-room'), sends(s.w, 'honest-shard')];
  // Four times the burst of maximum-rate sends, written at once: the shard passes the burst.
  for (let i = 0; i < BURST * 4; i++) s.raw.send({ event: 'send', id: `f${i}`, data: text(`flood ${i} ${'x'.repeat(1000)}`, `f-${i}`) });
  await until(() => s.raw.closes.length > 0, { what: 'the 4008 close' });
  const seconds = (Date.now() - started) / 1000;
  assert.deepEqual(s.raw.closes, [4008]);

  const frames = hostileFrames('flooded', s.first.id, [token(s.bad)]);
  const seen = s.raw.frames.length;
  for (let round = 0; round < 3; round++) for (const frame of frames) s.raw.send(frame);
  await new Promise((resolve) => s.raw.socket.write('', resolve));
  const [room, shard] = await Promise.all(honest);
  const marker = 'flood: marker';
  assert.equal((await s.w.request('send', text(marker, 'flood-marker'))).event, 'ack');
  await s.o.next((f) => f.event === 'message' && f.data.body === marker);

  const kept = await stored(s.owner, s.room);
  const flooded = kept.filter((m) => m.sender_id === s.bad && m.body.startsWith('flood '));
  const bound = BURST + Math.ceil(PER_SECOND * seconds) + 1;
  assert.ok(flooded.length > 0 && flooded.length <= bound, `${flooded.length} flood messages stored, bound ${bound}`);
  assert.deepEqual(kept.filter((m) => m.sender_id === s.bad && !m.body.startsWith('flood ')).map((m) => m.body), [s.first.body], 'nothing after the close');
  assert.ok(!kept.find((m) => m.id === s.first.id).deleted_at, 'its message not deleted');
  const acked = s.raw.frames.filter((f) => f.event === 'ack' && f.id?.startsWith('f'));
  assert.ok(acked.length <= flooded.length, 'no ack without a stored message');
  assert.deepEqual(s.raw.frames.slice(seen), [], 'nothing answered after the close');
  assert.deepEqual([...causedBy(s.o, s.bad), ...causedBy(s.w, s.bad)].filter((f) => f.event !== 'message'), [], 'no typing or read from the closed socket');
  assert.equal(kept.filter((m) => m.body.startsWith('honest')).length, 30, 'every honest send stored');

  // Stated bound: the shard passes at most RATE_LIMIT_BURST frames (plus the refill) before it
  // closes the socket and drops the rest unparsed; each is one room turn of about a millisecond
  // (append, ack, fan-out to five sockets), so an honest send waits behind at most ~50 of them —
  // tens of ms. A second leaves room for a loaded two-core machine (the sync flood's bound in
  // security.test.mjs).
  const all = [...room, ...shard].sort((x, y) => x - y);
  t.diagnostic(`${flooded.length} flood sends stored of ${BURST * 4} (bound ${bound}); honest send→ack median ${all[all.length >> 1]} ms, `
    + `max ${all.at(-1)} ms (room's object: ${Math.max(...room)} ms, the attacker's shard: ${Math.max(...shard)} ms)`);
  assert.ok(all.at(-1) < 1000, `honest send→ack: ${JSON.stringify({ room, shard })}`);
  s.raw.end();
  for (const c of [s.o, s.a, s.w]) await c.close();
});

test('removal racing a member\'s reconnects onto a shard never leaves a socket of the removed user open', async () => {
  const ROUNDS = 25;
  let admitted = 0;
  const held = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [owner, m1, member, watcher] = [uid('own'), uid('m1'), uid(`race${round}`), uid('watch')];
    const room = await createRoom(owner, [m1, member, watcher]);
    const o = await connectRoom(owner, room);
    // The member was on the room's own object, dropped, and the object filled meanwhile: its
    // reconnects go to shard 1, a shard with no link yet (its first connect opens it).
    const before = await connectRoom(member, room);
    await before.close();
    const a = await connectRoom(m1, room);
    assert.deepEqual(await spread(room), [[0, 2, 2]], `round ${round}: the room's own object is full`);

    const reconnects = [0, 1].map((i) => new Promise((resolve) => setTimeout(resolve, i * (round % 3)))
      .then(() => rawOpen(roomConnect(room), token(member))));
    const removal = new Promise((resolve) => setTimeout(resolve, round % 6))
      .then(() => http('DELETE', `/v1/rooms/${room}/members/${member}`, { tok: token(owner) }));
    const [removed, ...outcomes] = await Promise.allSettled([removal, ...reconnects]);
    assert.equal(removed.status, 'fulfilled');
    assert.equal(removed.value.status, 200, removed.value.text);
    const raws = [];
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') {
        raws.push(outcome.value);
      } else {
        assert.match(String(outcome.reason), /HTTP\/1\.1 403/, `round ${round}`);
      }
    }
    admitted += raws.length;
    for (const raw of raws) {
      await until(() => raw.closes.length > 0, { timeoutMs: 5000, what: `round ${round}: a close frame on an admitted reconnect` });
      assert.deepEqual(raw.closes, [4003], `round ${round}`);
      held.push(raw);
    }

    // A member connecting now lands on shard 1 beside whatever the race left there; a message
    // after the removal reaches it, and no socket of the removed member.
    const w = await connectRoom(watcher, room);
    const total = await shardsOf(room);
    assert.equal(total.sockets, 3, `round ${round}: only the owner's, m1's and the watcher's sockets are open: ${JSON.stringify(total.shards)}`);
    const marker = `after the removal ${round}`;
    assert.equal((await o.request('send', text(marker))).event, 'ack');
    await w.next((f) => f.event === 'message' && f.data.body === marker);
    for (const raw of raws) {
      assert.deepEqual(raw.frames.filter((f) => f.event === 'message'), [], `round ${round}: nothing delivered to the removed member`);
    }
    for (const c of [o, a, w]) await c.close();
  }
  for (const raw of held) raw.end();
  console.log(`removal/reconnect race across shards: ${admitted} of ${ROUNDS * 2} reconnects admitted, each then closed with 4003`);
});

test('sockets on a shard the gateway closed and the client never lets go keep counting toward the cap when the shard fills', async () => {
  const [owner, m1, bad, m2, m3] = [uid('own'), uid('m1'), uid('hoard'), uid('m2'), uid('m3')];
  const room = await createRoom(owner, [m1, bad, m2, m3]);
  const o = await connectRoom(owner, room);
  const a = await connectRoom(m1, room);
  const held = [];
  for (let i = 0; i < MAX - 1; i++) {
    const raw = await rawMember(bad, room);
    await rateLimited(raw);
    held.push(raw);
  }
  assert.deepEqual(await sockets(room), [[0, 2], [1, 0]], 'the attacker\'s held sockets are on shard 1, none open');
  // One polite socket beside them, closed by the client itself: the held ones stay.
  const polite = await connectRoom(bad, room);
  assert.equal((await shardsOf(room)).shards[1].sockets, 1);
  await polite.close();
  await until(async () => (await shardsOf(room)).shards[1].sockets === 0, { what: 'the polite socket gone' });
  // Two members fill shard 1 as a large room's members would.
  const others = [await connectRoom(m2, room), await connectRoom(m3, room)];
  assert.equal((await shardsOf(room)).sockets, 4);
  // One more held: MAX in the room, wherever it lands.
  const last = await rawMember(bad, room);
  await rateLimited(last);
  held.push(last);
  const answer = await refused(roomConnect(room), token(bad));
  assert.deepEqual([answer.status, answer.body?.error?.code], [429, 'too_many_sockets'], JSON.stringify(answer.body));
  held.pop().end();
  const again = await until(async () => {
    try { return await connectRoom(bad, room); } catch { return null; }
  }, { what: 'a connect once a held socket was let go', everyMs: 200 });
  await again.close();
  for (const raw of held) raw.end();
  for (const c of [o, a, ...others]) await c.close();
});

test('sockets on the room\'s own object the gateway closed and the client never lets go keep counting when the next connect would go to a shard', async () => {
  const [owner, bad, m1] = [uid('own'), uid('hoard'), uid('m1')];
  const room = await createRoom(owner, [bad, m1]);
  const o = await connectRoom(owner, room);
  const held = [];
  for (let i = 0; i < MAX; i++) {
    const raw = await rawMember(bad, room);
    await rateLimited(raw);
    held.push(raw);
  }
  assert.deepEqual(await sockets(room), [[0, 1]], 'the held sockets are on the room\'s own object, not open');
  const first = await refused(roomConnect(room), token(bad));
  assert.deepEqual([first.status, first.body?.error?.code], [429, 'too_many_sockets']);
  // The room's own object fills: the next connect of a user with no open socket goes to a shard.
  const a = await connectRoom(m1, room);
  assert.deepEqual(await spread(room), [[0, 2, 2]]);
  const answer = await refused(roomConnect(room), token(bad));
  assert.deepEqual([answer.status, answer.body?.error?.code], [429, 'too_many_sockets'], JSON.stringify(answer.body));
  for (const raw of held) raw.end();
  for (const c of [o, a]) await c.close();
});

test('a socket a shard closed does not count in presence while its client holds it', async () => {
  const [owner, m1, bad, late, m4] = [uid('own'), uid('m1'), uid('held'), uid('late'), uid('m4')];
  const room = await createRoom(owner, [m1, bad, late, m4]);
  const o = await connectRoom(owner, room);
  const a = await connectRoom(m1, room);
  const raw = await rawMember(bad, room);
  assert.deepEqual(await spread(room), [[0, 2, 2], [1, 1, 1]]);
  await o.next((f) => f.event === 'user.joined' && f.data.user_id === bad);
  await rateLimited(raw);
  const l = await connectRoom(late, room);
  assert.deepEqual(l.presence.data.users, { [owner]: 1, [m1]: 1, [late]: 1 }, 'presence on open');
  const members = await http('GET', `/v1/rooms/${room}/members?limit=100`, { tok: token(owner) });
  assert.equal(members.status, 200, members.text);
  assert.equal(members.body.members.find((m) => m.user_id === bad).in_room, 0, 'the member list');
  const users = (await shardsOf(room)).shards.reduce((sum, shard) => sum + shard.users, 0);
  assert.equal(users, 3, 'the shards route');
  raw.end();
  for (const c of [o, a, l]) await c.close();
});
