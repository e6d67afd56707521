// Rooms beyond one object: the suite's gateway runs with ROOM_SHARD_SOCKETS=2, so a room's own
// object holds two sockets and every further connect lands on shard 1, 2, … (every other room
// test in the suite runs across shards too). These tests look at what sharding itself must keep:
// the spread (GET /internal/v1/rooms/{id}/shards), one seq order on every socket wherever it is
// held, one presence view (a user's devices on a shard join once and leave once), closes that
// reach every shard (removal, revocation, deletion), resume on a shard, typing throttled per user
// across shards, and large rooms (ROOM_PRESENCE_BATCH_USERS=12 here): presence batched, no typing
// or read receipts to the audience.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectRoom, createRoom, internal, token, uid, until } from './helpers.mjs';

const text = (body, clientId) => ({ type: 'text', body, client_id: clientId });
const shardsOf = async (room) => {
  const res = await internal('GET', `/internal/v1/rooms/${room}/shards`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};
const seqs = (client) => client.unread('message').map((f) => f.seq);

test('a room spreads over shards, and every socket sees every message once, in seq order', async () => {
  const users = Array.from({ length: 6 }, (_, i) => uid(`spread${i}`));
  const room = await createRoom(users[0], users.slice(1));
  const clients = [];
  for (const user of users) clients.push(await connectRoom(user, room));

  const spread = await shardsOf(room);
  assert.equal(spread.shard_sockets, 2);
  assert.equal(spread.sockets, 6);
  assert.deepEqual(spread.shards.map((s) => [s.shard, s.sockets]), [[0, 2], [1, 2], [2, 2]]);

  const senders = [clients[0], clients[2], clients[4]];
  const acks = await Promise.all(senders.flatMap((c, s) => Array.from({ length: 10 }, (_, i) => c.request('send', text(`m${s}-${i}`, `c${s}-${i}`)))));
  assert.ok(acks.every((a) => a.event === 'ack'), JSON.stringify(acks.find((a) => a.event !== 'ack')));
  const expected = Array.from({ length: 30 }, (_, i) => i + 1);
  for (const client of clients) {
    await until(() => seqs(client).length >= 30, { what: 'every message on every socket' });
    assert.deepEqual(seqs(client), expected, 'in order, no gap, no duplicate');
  }
  // What a shard's socket saw is what the room's own sockets saw, frame for frame.
  const texts = (c) => c.unread('message').map((f) => JSON.stringify(f));
  assert.deepEqual(texts(clients[5]), texts(clients[0]));
  for (const client of clients) client.close();
});

test('presence is one view across shards: a user\'s devices on a shard join once and leave once', async () => {
  const [owner, m1, m2, late] = [uid('own'), uid('m1'), uid('m2'), uid('late')];
  const room = await createRoom(owner, [m1, m2, late]);
  const o = await connectRoom(owner, room);
  const a = await connectRoom(m1, room);
  const d1 = await connectRoom(m2, room);
  const d2 = await connectRoom(m2, room, { query: 'device=second' });
  await o.next((f) => f.event === 'user.joined' && f.data.user_id === m2);
  const spread = await shardsOf(room);
  assert.deepEqual(spread.shards.map((s) => [s.shard, s.sockets, s.users]), [[0, 2, 2], [1, 2, 1]], 'both devices on one shard');

  const l = await connectRoom(late, room);
  assert.deepEqual(l.presence.data.users, { [owner]: 1, [m1]: 1, [m2]: 2, [late]: 1 });
  await d1.close();
  await until(async () => (await shardsOf(room)).sockets === 4, { what: 'the shard reporting the close' });
  await d2.close();
  await o.next((f) => f.event === 'user.left' && f.data.user_id === m2);
  await until(async () => (await shardsOf(room)).sockets === 3, { what: 'both gone' });
  const joined = o.unread('user.joined').filter((f) => f.data.user_id === m2);
  const left = o.unread('user.left').filter((f) => f.data.user_id === m2);
  assert.equal(joined.length, 0, 'joined once (taken above)');
  assert.equal(left.length, 0, 'left once (taken above)');
  const presence = await internal('GET', `/internal/v1/rooms/${room}/shards`);
  assert.equal(presence.status, 200);
  for (const c of [o, a, l]) c.close();
});

test('a removal and a revocation close the user\'s sockets on their shard; a deletion closes every shard\'s', async () => {
  const [owner, m1, gone, revoked, m4] = [uid('own'), uid('m1'), uid('gone'), uid('rev'), uid('m4')];
  const room = await createRoom(owner, [m1, gone, revoked, m4]);
  const o = await connectRoom(owner, room);
  const a = await connectRoom(m1, room);
  const g = await connectRoom(gone, room);
  const r = await connectRoom(revoked, room);
  const f = await connectRoom(m4, room);
  assert.equal((await shardsOf(room)).shards.length, 3);

  assert.equal((await internal('DELETE', `/internal/v1/rooms/${room}/members/${gone}`)).status, 200);
  assert.equal((await g.closed).code, 4003);
  await o.next((x) => x.event === 'user.left' && x.data.user_id === gone);
  await f.next((x) => x.event === 'member.removed' && x.data.user_id === gone);

  const res = await internal('POST', `/internal/v1/users/${revoked}/disconnect`, { reason: 'password changed', revoke: true });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal((await r.closed).code, 4003);
  await o.next((x) => x.event === 'user.left' && x.data.user_id === revoked);

  assert.equal((await internal('DELETE', `/internal/v1/rooms/${room}`)).status, 200);
  const codes = await Promise.all([o, a, f].map(async (c) => (await c.closed).code));
  assert.deepEqual(codes, [4004, 4004, 4004]);
});

test('a socket resuming on a shard gets the batch, then live messages, with no gap and no duplicate', async () => {
  const [owner, m1, m2] = [uid('own'), uid('m1'), uid('m2')];
  const room = await createRoom(owner, [m1, m2]);
  const o = await connectRoom(owner, room);
  await connectRoom(m1, room);
  for (let i = 1; i <= 5; i++) assert.equal((await o.request('send', text(`m${i}`, `c${i}`))).event, 'ack');
  const r = await connectRoom(m2, room, { query: 'since=2' });
  assert.equal((await shardsOf(room)).shards.at(-1).sockets, 1, 'the resuming socket is on a shard');
  const synced = await r.next('synced');
  assert.equal(synced.data.seq, 5);
  assert.deepEqual(seqs(r), [3, 4, 5]);
  assert.equal((await o.request('send', text('m6', 'c6'))).event, 'ack');
  await until(() => seqs(r).length === 4, { what: 'the live message' });
  assert.deepEqual(seqs(r), [3, 4, 5, 6]);

  // Paging on a shard: `sync` answered through the link, with the same budget rules.
  const page = await r.request('sync', { since: 0 });
  assert.equal(page.event, 'ack');
  await until(() => r.unread('synced').length === 1, { what: 'the page' });
  assert.deepEqual(seqs(r), [3, 4, 5, 6, 1, 2, 3, 4, 5, 6]);
});

test('typing on a shard reaches the other users, not the typist\'s own devices, throttled per user', async () => {
  const [owner, m1, typist] = [uid('own'), uid('m1'), uid('typ')];
  const room = await createRoom(owner, [m1, typist]);
  const o = await connectRoom(owner, room);
  await connectRoom(m1, room);
  const t1 = await connectRoom(typist, room);
  const t2 = await connectRoom(typist, room, { query: 'device=second' });
  for (let i = 0; i < 5; i++) await t1.request('typing', { active: true });
  for (let i = 0; i < 5; i++) await t2.request('typing', { active: true });
  const typed = await o.next('typing');
  assert.equal(typed.data.user_id, typist);
  assert.equal((await o.request('send', text('fence', 'fence'))).event, 'ack');
  await o.next('message');
  assert.equal(o.unread('typing').length, 0, 'one start forwarded for ten frames from two devices');
  assert.equal(t1.unread('typing').length + t2.unread('typing').length, 0);
});

test('a hostile socket on a shard: frames after a removal are neither stored nor delivered, and the rate limit closes it', async () => {
  const [owner, m1, bad] = [uid('own'), uid('m1'), uid('bad')];
  const room = await createRoom(owner, [m1, bad]);
  const o = await connectRoom(owner, room);
  await connectRoom(m1, room);
  const b = await connectRoom(bad, room);
  const flood = Array.from({ length: 200 }, (_, i) => ({ event: 'typing', id: `t${i}`, data: { active: i % 2 === 0 } }));
  for (const frame of flood) b.send(frame);
  assert.equal((await b.closed).code, 4008);
  const c = await connectRoom(bad, room);
  assert.equal((await internal('DELETE', `/internal/v1/rooms/${room}/members/${bad}`)).status, 200);
  c.send({ event: 'send', id: 'late', data: text('after removal', 'late') });
  assert.equal((await c.closed).code, 4003);
  assert.equal((await o.request('send', text('fence', 'fence'))).event, 'ack');
  const messages = (await o.take('message', 1)).map((m) => m.data.body);
  assert.deepEqual(messages, ['fence']);
});

test('a large room batches presence (one presence.changed per interval, a count on open) and relays no typing or reads', async () => {
  const users = Array.from({ length: 14 }, (_, i) => uid(`big${i}`));
  const room = await createRoom(users[0], users.slice(1));
  const first = await connectRoom(users[0], room);
  const clients = [first];
  for (const user of users.slice(1, 11)) clients.push(await connectRoom(user, room));
  // Below twelve users present, each join is its own user.joined.
  assert.equal((await first.take('user.joined', 10)).length, 10);
  const late = [];
  for (const user of users.slice(11)) late.push(await connectRoom(user, room));
  assert.equal(late[2].presence.data.partial, true);
  assert.equal(late[2].presence.data.count, 14);
  await first.next((f) => f.event === 'presence.changed' && f.data.joined.includes(users[13]));
  assert.equal(first.unread('user.joined').length, 0, 'no user.joined once batched');
  // Nor typing or read receipts to the whole audience; the reader's cursor still moves.
  assert.equal((await late[0].request('typing', { active: true })).data.forwarded, false);
  const sent = await first.request('send', text('to the audience', 'audience-1'));
  const read = await late[0].request('read', { seq: sent.data.message.seq });
  assert.equal(read.data.read_seq, sent.data.message.seq);
  await first.next('message');
  assert.equal((await first.request('send', text('fence', 'audience-2'))).event, 'ack');
  await first.next('message');
  assert.deepEqual([first.unread('typing').length, first.unread('read').length], [0, 0]);
  await late[2].close();
  const leftFrame = await first.next((f) => f.event === 'presence.changed' && f.data.left.includes(users[13]));
  assert.equal(leftFrame.data.count, 13);
  assert.deepEqual(leftFrame.data.joined, []);
  for (const c of [...clients, ...late]) c.close();
});

test('the shards route needs the internal token and a room that exists', async () => {
  const res = await fetch(`${process.env.SB_BASE}/internal/v1/rooms/nope/shards`, { headers: { authorization: `Bearer ${token('x')}` } });
  assert.equal(res.status, 401);
  const missing = await internal('GET', `/internal/v1/rooms/${uid('none')}/shards`);
  assert.equal(missing.status, 404);
});
