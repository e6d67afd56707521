// Bounded under abuse: resumes paged in batches (with pushes arriving meanwhile), streams
// bounded by bytes and by a window, sockets per user capped, typing throttled, extreme numbers
// refused cleanly (streamed bodies: streamed-body.test.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  connectRoom, connectUser, createRoom, http, internal, push, rawOpen, token, uid, until,
} from './helpers.mjs';

const BATCH_BYTES = Number(process.env.SB_REPLAY_BATCH_BYTES);
const RETENTION_BYTES = Number(process.env.SB_RETENTION_BYTES);
const WINDOW = Number(process.env.SB_ROOM_WINDOW_MESSAGES);
const MAX_SOCKETS = Number(process.env.SB_MAX_SOCKETS_PER_USER);
const pad = (n) => 'x'.repeat(n);

/**
 * Follows a paged resume to the end on `client`: takes each batch's `event` frames and its
 * `synced`, and asks for the next batch with `sync` while `more` is true. `during(batch)` runs
 * after each batch (to push meanwhile). Returns the entries, the synced frames and the batches.
 */
async function followResume(client, event, during = async () => {}) {
  const entries = [];
  const synced = [];
  for (let batch = 0; batch < 100; batch++) {
    const done = await client.next('synced', 15_000);
    entries.push(...client.unread(event));
    client.frames = client.frames.filter((f) => f.event !== event);
    synced.push(done.data);
    await during(batch);
    if (!done.data.more) return { entries, synced };
    client.send({ event: 'sync', id: `sync-${batch}`, data: { since: done.data.seq } });
  }
  throw new Error('the resume never finished');
}

const contiguous = (seqs, from, to) =>
  assert.deepEqual(seqs, Array.from({ length: to - from + 1 }, (_, i) => from + i));

test('a user resume is paged in bounded batches, with pushes meanwhile, in order and exactly once', async (t) => {
  const user = uid();
  const EVENTS = 90;
  for (let i = 0; i < EVENTS; i++) {
    const res = await push([user], 'big.event', { i, pad: pad(2000) });
    assert.equal(res.status, 200, res.text);
  }
  const client = await connectUser(user, { path: '/v1/connect?since=0' });
  t.after(() => client.ws.terminate());
  let pushedDuring = 0;
  const { entries, synced } = await followResume(client, 'big.event', async (batch) => {
    if (batch < 2) {
      await push([user], 'big.event', { i: EVENTS + pushedDuring, pad: pad(2000) });
      pushedDuring++;
    }
  });
  assert.ok(synced.length >= 3, `several batches: ${synced.length}`);
  for (const s of synced.slice(0, -1)) assert.equal(s.more, true);
  assert.equal(synced.at(-1).more, false);
  const total = EVENTS + pushedDuring;
  contiguous(entries.map((e) => e.seq), 1, total);
  assert.equal(synced.at(-1).seq, total);
  const perBatch = synced.map((s, n) => s.seq - (n === 0 ? 0 : synced[n - 1].seq));
  assert.ok(perBatch.every((n) => n * 2000 <= BATCH_BYTES), `batches fit ${BATCH_BYTES} bytes: ${perBatch}`);
  await push([user], 'big.event', { i: 'live' });
  assert.equal((await client.next('big.event')).data.i, 'live', 'live events flow once synced');
});

test('a room resume is paged the same way, and stops at the window with the route to page back', async () => {
  const owner = uid('owner');
  const room = await createRoom(owner, []);
  const MESSAGES = WINDOW + 20;
  for (let i = 1; i <= MESSAGES; i++) {
    const res = await internal('POST', `/internal/v1/rooms/${room}/publish`, { body: `${i} ${pad(1500)}` });
    assert.equal(res.status, 201, res.text);
  }
  const probe = async () => {
    const client = await connectRoom(owner, room, { query: 'since=0' });
    try {
      const result = await followResume(client, 'message');
      return result.synced[0].recovered === false ? result : null;
    } finally {
      client.ws.terminate();
    }
  };
  const { entries, synced } = await until(probe, { timeoutMs: 20_000, everyMs: 500, what: 'the window prune' });
  assert.ok(synced.length >= 2, `paged: ${synced.length} batches`);
  const first = MESSAGES - WINDOW + 1;
  contiguous(entries.map((e) => e.seq), first, MESSAGES);
  assert.equal(synced[0].history, `/v1/rooms/${room}/messages?before_seq=${first}`);
  const older = await http('GET', synced[0].history + '&limit=100', { tok: token(owner) });
  assert.equal(older.status, 200, older.text);
  contiguous(older.body.messages.map((m) => m.seq).reverse(), 1, first - 1);
});

test('a user stream is bounded by bytes: the oldest go, recovered:false says so', async (t) => {
  const user = uid();
  const EVENTS = 80;
  const SIZE = 4000;
  for (let i = 0; i < EVENTS; i++) await push([user], 'big.event', { i, pad: pad(SIZE) });
  const client = await connectUser(user, { path: '/v1/connect?since=0' });
  t.after(() => client.ws.terminate());
  const { entries, synced } = await followResume(client, 'big.event');
  assert.equal(synced[0].recovered, false);
  const seqs = entries.map((e) => e.seq);
  contiguous(seqs, seqs[0], EVENTS);
  assert.ok(seqs[0] > 1, 'the oldest were pruned');
  assert.ok(entries.length * SIZE <= RETENTION_BYTES, `kept ${entries.length} events within ${RETENTION_BYTES} bytes`);
  assert.ok(entries.length * (SIZE + 100) >= RETENTION_BYTES - SIZE * 2, 'and no more than needed were pruned');
});

test('a user over the socket cap loses the oldest socket with 4009, on the hub and in a room', async () => {
  const user = uid();
  const room = await createRoom(uid('owner'), [user]);
  for (const path of ['/v1/connect', `/v1/rooms/${room}/connect`]) {
    const oldest = await rawOpen(path, token(user));
    await until(() => oldest.frames.some((f) => f.event === 'ready'), { what: 'ready' });
    const others = [];
    for (let i = 0; i < MAX_SOCKETS; i++) {
      others.push(path.startsWith('/v1/rooms') ? await connectRoom(user, room) : await connectUser(user));
    }
    await until(() => oldest.closes.length > 0, { what: 'the oldest closed' });
    assert.deepEqual(oldest.closes, [4009]);
    oldest.end();
    await Promise.all(others.map((o) => o.close()));
  }
});

test('typing is forwarded at most once per interval per user; a stop after a forwarded start goes', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  const acks = [];
  for (let i = 0; i < 5; i++) acks.push(await a.request('typing', { active: true }));
  assert.deepEqual(acks.map((x) => x.data.forwarded), [true, false, false, false, false]);
  const stop = await a.request('typing', { active: false });
  assert.equal(stop.data.forwarded, true);
  assert.deepEqual((await b.next('typing')).data, { user_id: alice, active: true });
  assert.deepEqual((await b.next('typing')).data, { user_id: alice, active: false });
  const barrier = await a.request('send', { type: 'text', body: 'barrier' });
  await b.next((f) => f.event === 'message' && f.seq === barrier.data.message.seq);
  assert.deepEqual(b.unread('typing'), [], 'the repeats were not forwarded');
  await Promise.all([a.close(), b.close()]);
});

test('extreme numbers: the largest since is not recovered and replays nothing', async () => {
  const user = uid();
  await push([user], 'a.b', {});
  const room = await createRoom(user, []);
  const max = '9223372036854775807';
  const hub = await connectUser(user, { path: `/v1/connect?since=${max}` });
  assert.equal(hub.ready.data.seq, 2, 'the push and room.added');
  assert.deepEqual((await hub.next('synced')).data, { seq: 2, recovered: false, more: false });
  const inRoom = await connectRoom(user, room, { query: `since=${max}` });
  const synced = await inRoom.next('synced');
  assert.equal(synced.data.recovered, false);
  assert.equal(synced.data.seq, 0);
  assert.deepEqual(hub.unread('a.b'), []);
  await Promise.all([hub.close(), inRoom.close()]);
});

test('a room holds at most MAX_ROOM_MEMBERS, on create and on add; re-adding members is free', async () => {
  const max = Number(process.env.SB_MAX_ROOM_MEMBERS);
  const owner = uid('owner');
  const many = (n, p) => Array.from({ length: n }, (_, i) => `${p}-${i}`);
  const tooMany = await http('POST', '/v1/rooms', { tok: token(owner), body: { name: 'big', members: many(max, uid('m')) } });
  assert.equal(tooMany.status, 409);
  assert.equal(tooMany.body.error.code, 'room_full');
  const first = many(max - 11, uid('a'));
  const room = await createRoom(owner, first.slice(0, 30));
  assert.equal((await internal('POST', `/internal/v1/rooms/${room}/members`, { users: first.slice(30) })).status, 200);
  const rest = many(11, uid('b'));
  const over = await internal('POST', `/internal/v1/rooms/${room}/members`, { users: rest });
  assert.equal(over.status, 409, over.text);
  assert.equal(over.body.error.code, 'room_full');
  assert.equal((await internal('POST', `/internal/v1/rooms/${room}/members`, { users: rest.slice(0, 10) })).status, 200);
  assert.equal((await internal('POST', `/internal/v1/rooms/${room}/members`, { users: first.slice(0, 20) })).status, 200, 're-adding is not joining');
  const full = await http('POST', `/v1/rooms/${room}/members`, { tok: token(owner), body: { users: [uid('late')] } });
  assert.equal(full.status, 409);
});

test('a user creates at most MAX_ROOMS_PER_DAY rooms; then 429 with Retry-After', async () => {
  const max = Number(process.env.SB_MAX_ROOMS_PER_DAY);
  const user = uid('creator');
  for (let i = 0; i < max; i++) await createRoom(user, []);
  const refused = await http('POST', '/v1/rooms', { tok: token(user), body: { name: 'one more' } });
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'rate_limited');
  const wait = Number(refused.headers.get('retry-after'));
  assert.ok(wait > 86_000 && wait <= 86_400, `Retry-After ${wait}`);
  assert.equal((await internal('POST', '/internal/v1/rooms', { name: 'for them', owner: uid('other') })).status, 201);
});
