// Issue #16, item 4: a client that pages by the rules is never closed as a flood. A resume of
// a backlog several times the replay budget (`REPLAY_BYTES_PER_SECOND`), followed with one
// `sync {since: synced.seq}` per `synced {more:true}` exactly as docs/PROTOCOL.md says, reaches
// the end — every event once, in order — on the user stream, on a room socket, through a
// Socket.IO connection's room relay (which pages by itself) and through the SDK, without a
// close (4008) or a `replay_limited`. It used to be closed 4008 near 1.2 MB: once the budget
// was in debt, each `sync` was answered as soon as a crumb was available, so the client sent
// hundreds of `sync` frames a second into the per-socket frame limit.
//
// These run on a gateway of their own with every limit at its default (the suite's gateway has
// tiny retention, batches and budgets), and the last on one whose batches are a few events
// long, so that the batches alone would outrun the frame limit.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { open, uid } from './helpers.mjs';
import { GENEROUS_RATES, ownGateway } from '../server.mjs';
import { connect } from '../../client/dist/switchboard.js';

/** The user backlog of the issue: 3,000 events of ~900 bytes. */
const EVENTS = 3000;
const PAD = 'x'.repeat(850);
/** The room backlog: 1,500 messages of ~2 KB. */
const MESSAGES = 1500;
const BODY_PAD = 'x'.repeat(1900);
/** The default `REPLAY_BYTES_PER_SECOND`, which is also the budget's burst. */
const BUDGET = 1024 * 1024;

const gateways = [];
after(() => {
  for (const { child, dir } of gateways) {
    child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A gateway of its own with `vars` over the defaults, stopped when the file ends. */
async function gateway(vars = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-paging-'));
  const gw = await ownGateway(dir, GENEROUS_RATES, vars);
  gateways.push({ child: await gw.start(1), dir });
  return gw;
}

let gw;
let small;
before(async () => {
  [gw, small] = await Promise.all([gateway(), gateway({ REPLAY_BATCH_EVENTS: '10' })]);
});

/** Makes a fixture on first use, once. */
const lazily = (make) => {
  let made;
  return () => (made ??= make());
};

/** Runs `work(i)` for i in 0..n, `width` at a time. */
async function inParallel(n, work, width = 16) {
  let next = 0;
  const lane = async () => {
    while (next < n) await work(next++);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

/** Pushes `n` events of ~900 bytes (`bulk.item {i}`) into `user`'s stream. */
async function fillStream(g, user, n = EVENTS) {
  await inParallel(n, async (i) => {
    const res = await g.call('POST', '/internal/v1/push', { users: [user], event: 'bulk.item', data: { i, pad: PAD } }, g.internalToken);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });
}

/**
 * Follows a resume on a raw socket as the protocol says and no faster: one
 * `sync {since: synced.seq}` for each `synced {more:true}`. Fails at once on a close or an
 * `error` frame. Returns the frames that `isEntry` picks, in arrival order, and every `synced`.
 */
async function pageToEnd(client, isEntry) {
  const closed = client.closed.then(({ code, reason }) => {
    const got = client.unread(isEntry).length;
    throw new Error(`the socket was closed ${code} ${reason} during the resume, after ${got} events`);
  });
  const synced = [];
  for (let n = 0; ; n++) {
    const done = await Promise.race([client.next('synced', 30_000), closed]);
    synced.push(done.data);
    assert.deepEqual(client.unread('error'), [], 'no sync is refused');
    if (!done.data.more) break;
    client.send({ event: 'sync', id: `sync-${n}`, data: { since: done.data.seq } });
  }
  client.send({ event: 'ping' });
  await Promise.race([client.next('pong'), closed]);
  return { entries: client.unread(isEntry), synced };
}

/** A user with EVENTS events in their stream. */
const largeStream = lazily(async () => {
  const user = uid('pager');
  await fillStream(gw, user);
  return user;
});

/** A room with MESSAGES messages published in it: `{room, owner}`. */
const largeRoom = lazily(async () => {
  const owner = uid('owner');
  const created = await gw.call('POST', '/v1/rooms', { name: 'paging' }, gw.tok(owner));
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const room = created.body.id;
  await inParallel(MESSAGES, async (i) => {
    const res = await gw.call('POST', `/internal/v1/rooms/${room}/publish`, { body: `${i} ${BODY_PAD}` }, gw.internalToken);
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });
  return { room, owner };
});

/** Every seq from 1 to `n` once, in order, with every batch but the last saying more. */
function assertWhole(entries, synced, n) {
  assert.equal(entries.length, n, 'every event arrived once');
  entries.forEach((entry, i) => assert.equal(entry.seq, i + 1, `in order, at entry ${i}`));
  assert.ok(synced.every((s) => s.recovered), 'nothing was pruned');
  assert.ok(synced.slice(0, -1).every((s) => s.more) && !synced.at(-1).more);
  assert.equal(synced.at(-1).seq, n);
}

const bytesOf = (frames) => frames.reduce((sum, f) => sum + JSON.stringify(f).length, 0);

test('paging: a raw client that sends sync on every more:true resumes a 3 MB user backlog to the end, never closed', async (t) => {
  const user = await largeStream();
  const started = Date.now();
  const client = await open('/v1/connect?since=0', gw.tok(user), { base: gw.base });
  t.after(() => client.ws.terminate());
  const { entries, synced } = await pageToEnd(client, 'bulk.item');
  assertWhole(entries, synced, EVENTS);
  assert.deepEqual(new Set(entries.map((e) => e.data.i)).size, EVENTS, 'each pushed event once');
  const bytes = bytesOf(entries);
  assert.ok(bytes > 2 * BUDGET, `the backlog (${bytes} bytes) outlasts the budget's burst`);
  t.diagnostic(`${bytes} bytes in ${synced.length} batches, ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('paging: a raw room socket that sends sync on every more:true resumes a 3 MB room backlog to the end, never closed', async (t) => {
  const { room, owner } = await largeRoom();
  const started = Date.now();
  const client = await open(`/v1/rooms/${room}/connect?since=0`, gw.tok(owner), { base: gw.base });
  t.after(() => client.ws.terminate());
  const { entries, synced } = await pageToEnd(client, 'message');
  assertWhole(entries, synced, MESSAGES);
  assert.equal(new Set(entries.map((e) => e.data.body)).size, MESSAGES, 'each published message once');
  const bytes = bytesOf(entries);
  assert.ok(bytes > 2 * BUDGET, `the backlog (${bytes} bytes) outlasts the budget's burst`);
  t.diagnostic(`${bytes} bytes in ${synced.length} batches, ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('paging: a Socket.IO room.join with since 0 gets a 3 MB room backlog through its relay, which pages by itself', async (t) => {
  const { room, owner } = await largeRoom();
  const socket = io(gw.base, { transports: ['websocket'], query: { token: gw.tok(owner) }, forceNew: true, reconnection: false });
  t.after(() => socket.disconnect());
  const seqs = [];
  socket.on('message', (data) => seqs.push(data.seq));
  const left = once(socket, 'room.left').then(([data]) => {
    throw new Error(`the room closed the relay: ${JSON.stringify(data)}, after ${seqs.length} messages`);
  });
  await once(socket, 'connect');
  const synced = once(socket, 'synced');
  const joined = await socket.emitWithAck('room.join', { room_id: room, since: 0 });
  assert.equal(joined.room_id, room, JSON.stringify(joined));
  const [done] = await Promise.race([synced, left]);
  assert.deepEqual(done, { room_id: room, seq: MESSAGES, recovered: true, more: false });
  assert.deepEqual(seqs, Array.from({ length: MESSAGES }, (_, i) => i + 1), 'every message once, in order');
  assert.ok(socket.connected, 'the connection is still open');
});

test('paging: the SDK resumes a 3 MB backlog to the end, in order, once, on one connection', async (t) => {
  const user = await largeStream();
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  // A stored resume point of 0, as a reload of a page that saw nothing yet would have.
  const stored = new Map([[`switchboard:${user}:seq`, '0']]);
  const storage = { getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => stored.set(k, v) };
  const c = connect({ url: gw.base, getToken: () => gw.tok(user), WebSocket: Tracked, storage });
  t.after(() => {
    c.close();
    for (const ws of sockets) ws.terminate();
  });
  const seqs = [];
  const errors = [];
  c.on('bulk.item', (_data, frame) => seqs.push(frame.seq));
  c.on('error', (err) => errors.push(err));
  const done = new Promise((resolve) => c.on('synced', resolve));
  await c.open();
  const last = await done;
  assert.equal(last.seq, EVENTS);
  assert.deepEqual(seqs, Array.from({ length: EVENTS }, (_, i) => i + 1), 'every event once, in order');
  assert.deepEqual(errors, [], 'no error, replay_limited included');
  assert.equal(c.stats.sockets, 1, 'one connection: never closed, never reconnected');
  assert.equal(c.stats.duplicatesDropped, 0);
  assert.ok(c.stats.replayBatches >= 3, `paged: ${c.stats.replayBatches} batches`);
});

test('paging: batches far smaller than the budget (REPLAY_BATCH_EVENTS 10) are answered within the frame limit', async (t) => {
  const user = uid('pager');
  const n = 1500;
  await fillStream(small, user, n);
  const started = Date.now();
  const client = await open('/v1/connect?since=0', small.tok(user), { base: small.base });
  t.after(() => client.ws.terminate());
  const { entries, synced } = await pageToEnd(client, 'bulk.item');
  assertWhole(entries, synced, n);
  assert.ok(synced.length > 100, `more batches (${synced.length}) than RATE_LIMIT_BURST (100) allows frames at once`);
  t.diagnostic(`${synced.length} batches in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
