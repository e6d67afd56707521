// The client SDK (client/dist/switchboard.js, built by `make client`) against the real gateway:
// connect and requests, acks and error codes, timeouts, reconnect with backoff and resume without
// gaps or duplicates, paged replay, auth failures (expired token, token.expired), forced
// disconnect, rooms (send retried with one client_id, typing, read, presence, resume), the live
// room list, direct messages, and Web Push registration (registerPush with a stand-in
// registration: Node has no Push API; tests/e2e/push-browser.test.mjs runs it in Chromium).
//
// Node 20 has no global WebSocket, so the SDK gets `ws` through its `WebSocket` option. Tests cut
// the network with a "gated" WebSocket class: `gate.kill()` terminates the open sockets (a dead
// link, close 1006), and while `gate.down` every new socket goes to a closed port and fails before
// the upgrade, as it would offline.

import assert from 'node:assert/strict';
import { createECDH, randomBytes, randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import {
  BASE, claims, createRoom, http, internal, push, signHS256, token, uid, until,
} from './helpers.mjs';
import { connect, SwitchboardError } from '../../client/dist/switchboard.js';

/**
 * `ws`, except that a close the server starts ends the TCP connection at once. `ws` reports
 * 'close' only when the server ends TCP, which `wrangler dev` does ~10 s after the close
 * handshake (browsers and production are prompt); the close code is already known by then.
 */
const allSockets = new Set();
class PromptWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    allSockets.add(this);
  }

  close(code, reason) {
    super.close(code, reason);
    if (this._closeFrameReceived) setImmediate(() => this.terminate());
  }
}

const clients = new Set();
after(() => {
  for (const client of clients) client.close();
  // A closing socket would otherwise hold the process until wrangler dev ends its TCP.
  for (const ws of allSockets) ws.terminate();
});

/** A client for `user` (or with `getToken`), closed when the file ends. */
function client(user, opts = {}) {
  const c = connect({ url: BASE, getToken: () => token(user), WebSocket: PromptWebSocket, ...opts });
  clients.add(c);
  return c;
}

function gatedSocket() {
  const gate = { down: false, sockets: [], urls: [] };
  gate.WebSocket = class GatedWebSocket extends PromptWebSocket {
    constructor(url, protocols) {
      super(gate.down ? 'ws://127.0.0.1:9/' : url, protocols);
      gate.urls.push(url);
      gate.sockets.push(this);
    }
  };
  gate.kill = () => {
    for (const s of gate.sockets) if (s.readyState === WebSocket.OPEN) s.terminate();
  };
  return gate;
}

/** Resolves with the info of the next `state` event equal to `state`. */
const nextState = (c, state) => new Promise((resolve) => {
  const off = c.on('state', (s, info) => {
    if (s === state) {
      off();
      resolve(info);
    }
  });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('connects with the token as subprotocol, answers requests with acks, rejects with the error code', async () => {
  const user = uid('sdk');
  const states = [];
  const c = connect({ url: BASE.replace(/^http/, 'ws'), getToken: () => token(user), WebSocket: PromptWebSocket });
  clients.add(c);
  c.on('state', (s) => states.push(s));
  const ready = await c.open();
  assert.equal(ready.user_id, user);
  assert.equal(c.state, 'connected');
  assert.equal(c.userId, user);
  assert.deepEqual(states, ['connected']); // 'connecting' was announced before the listener
  assert.equal((await c.me()).user_id, user, 'REST works with a ws:// base URL too');

  const ack = await c.request('auth', { token: token(user, { ttl: 900 }) });
  assert.equal(typeof ack.expires_at, 'number');

  await assert.rejects(c.request('sync', { since: -1 }), (err) => {
    assert.ok(err instanceof SwitchboardError);
    assert.equal(err.code, 'validation');
    return true;
  });
  await assert.rejects(c.request('auth', { token: token(uid('other')) }), { code: 'forbidden' });
  await assert.rejects(c.request('no.such.event', {}), { code: 'unknown_event' });
});

test('a request nobody acks rejects with code timeout, and the connection stays up', async () => {
  const user = uid('sdk');
  const c = client(user);
  await c.open();
  // A ping with an id is answered with a plain pong, never an ack.
  const started = Date.now();
  await assert.rejects(c.request('ping', undefined, { timeoutMs: 300 }), { code: 'timeout' });
  assert.ok(Date.now() - started >= 290);
  assert.equal(c.state, 'connected');
  assert.ok(await c.request('ack', { seq: 0 }));
});

test('reconnects with exponential backoff after the link dies and resumes without gaps or duplicates', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  const c = client(user, { WebSocket: gate.WebSocket, backoff: { initialMs: 150, maxMs: 1000, jitter: 0 } });
  const got = [];
  c.on('note.pushed', (data, frame) => got.push({ n: data.n, seq: frame.seq }));
  await c.open();
  await push([user], 'note.pushed', { n: 1 });
  await until(() => got.length === 1, { what: 'first live event' });

  const delays = [];
  c.on('state', (s, info) => { if (s === 'disconnected') delays.push(info.retryInMs); });
  gate.down = true;
  gate.kill();
  await until(() => delays.length >= 4, { what: 'four failed attempts' });
  assert.deepEqual(delays.slice(0, 4), [150, 300, 600, 1000], 'exponential, capped at maxMs');

  for (let n = 2; n <= 6; n++) assert.equal((await push([user], 'note.pushed', { n })).status, 200);
  const synced = new Promise((resolve) => c.once('synced', resolve));
  gate.down = false;
  await until(() => got.length >= 6, { what: 'missed events', timeoutMs: 15_000 });
  assert.equal((await synced).recovered, true);
  assert.deepEqual(got.map((e) => e.n), [1, 2, 3, 4, 5, 6]);
  for (let i = 1; i < got.length; i++) assert.equal(got[i].seq, got[i - 1].seq + 1, 'no gap');
  assert.match(gate.urls.at(-1), new RegExp(`[?&]since=${got[0].seq}(&|$)`), 'resumed from the last seq seen');

  // Dedupe: ask the gateway to replay the whole stream again; nothing reaches listeners twice.
  const dropped = c.stats.duplicatesDropped;
  await c.request('sync', { since: 0 });
  assert.equal(got.length, 6);
  assert.equal(c.stats.duplicatesDropped - dropped, 6);
  await push([user], 'note.pushed', { n: 7 });
  await until(() => got.length === 7, { what: 'live event after the re-read' });
});

test('backoff delays are jittered within [base·(1−jitter), base] while the network is down', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  gate.down = true;
  const delays = [];
  const c = client(user, { WebSocket: gate.WebSocket, backoff: { initialMs: 80, maxMs: 400, jitter: 0.5 } });
  c.on('state', (s, info) => { if (s === 'disconnected') delays.push(info.retryInMs); });
  await until(() => delays.length >= 5, { what: 'five failed attempts' });
  const bases = [80, 160, 320, 400, 400];
  delays.slice(0, 5).forEach((d, i) => assert.ok(d >= bases[i] / 2 && d <= bases[i], `delay ${i}: ${d} not in [${bases[i] / 2}, ${bases[i]}]`));
  assert.ok(['disconnected', 'connecting'].includes(c.state), `a network failure is not an auth failure: ${c.state}`);
  gate.down = false;
  await c.open();
});

test('a silent link (no pong) is detected by the heartbeat and replaced', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  const c = client(user, { WebSocket: gate.WebSocket, heartbeatIntervalMs: 400, heartbeatTimeoutMs: 300, backoff: { initialMs: 50 } });
  const got = [];
  c.on('note.pushed', (data) => got.push(data.n));
  await c.open();
  const down = nextState(c, 'disconnected');
  gate.sockets[0].pause(); // TCP stays up, nothing is read any more: a black hole
  const info = await down;
  assert.equal(info.reason, 'heartbeat timeout');
  await until(() => c.state === 'connected' && c.stats.readies === 2, { what: 'a new socket' });
  assert.equal(gate.sockets.length, 2);
  await push([user], 'note.pushed', { n: 1 });
  await until(() => got.length === 1, { what: 'events on the new socket' });
});

test('a server close (4008 rate limited) is followed by a reconnect that resumes', async () => {
  const user = uid('sdk');
  const c = client(user, { backoff: { initialMs: 100, maxMs: 400 } });
  const got = [];
  c.on('note.pushed', (data) => got.push(data.n));
  await c.open();
  await push([user], 'note.pushed', { n: 1 });
  await until(() => got.length === 1, { what: 'first event' });
  const closed = nextState(c, 'disconnected');
  // More frames at once than the socket's burst allowance (50 in the test gateway).
  for (let i = 0; i < 70; i++) c.request('ack', { seq: 0 }).catch(() => undefined);
  assert.equal((await closed).code, 4008);
  await push([user], 'note.pushed', { n: 2 });
  await until(() => c.state === 'connected' && got.length === 2, { what: 'reconnected and resumed' });
  assert.deepEqual(got, [1, 2]);
});

test('resume state kept in a storage object carries over to a new client (a page reload)', async () => {
  const user = uid('sdk');
  const map = new Map();
  const storage = { getItem: (k) => (map.has(k) ? map.get(k) : null), setItem: (k, v) => map.set(k, v) };
  const first = client(user, { storage });
  const got1 = [];
  first.on('note.pushed', (data) => got1.push(data.n));
  await first.open();
  for (const n of [1, 2]) await push([user], 'note.pushed', { n });
  await until(() => got1.length === 2, { what: 'first client events' });
  first.close();
  for (const n of [3, 4]) await push([user], 'note.pushed', { n });
  const second = client(user, { storage });
  const got2 = [];
  second.on('note.pushed', (data) => got2.push(data.n));
  const ready = await second.open();
  assert.equal(ready.device, first.readyData.device, 'same device id');
  await until(() => got2.length === 2, { what: 'missed events replayed' });
  assert.deepEqual(got2, [3, 4]);
  assert.ok([...map.keys()].some((k) => k.startsWith(`switchboard:${user}:`)));
});

test('follows paged replay (synced more:true → sync) in order with no gap or duplicate', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  const c = client(user, { WebSocket: gate.WebSocket, backoff: { initialMs: 200, maxMs: 800 } });
  const got = [];
  c.on('bulk.item', (data, frame) => got.push({ n: data.n, seq: frame.seq }));
  await c.open();
  gate.down = true;
  const down = nextState(c, 'disconnected');
  gate.kill();
  await down;
  const filler = 'x'.repeat(2000);
  for (let n = 1; n <= 90; n++) {
    const res = await push([user], 'bulk.item', { n, filler });
    assert.equal(res.status, 200, res.text);
  }
  const batches = c.stats.replayBatches;
  gate.down = false;
  await until(() => got.length >= 90, { what: '90 replayed events', timeoutMs: 20_000 });
  assert.deepEqual(got.map((e) => e.n), Array.from({ length: 90 }, (_, i) => i + 1));
  for (let i = 1; i < got.length; i++) assert.equal(got[i].seq, got[i - 1].seq + 1);
  // 90 events of ~2 KB at REPLAY_BATCH_BYTES 64 KiB page in three batches when all of them wait
  // for the reconnect; under a loaded runner some arrive once the new socket is live, so two
  // batches (more:true, sync, more:false) is the least that proves paging was followed.
  assert.ok(c.stats.replayBatches - batches >= 2, `expected paged batches, got ${c.stats.replayBatches - batches}`);
  assert.equal(c.stats.duplicatesDropped, 0);
});

test('an expired token ends in auth_failed token_expired after one upgrade attempt, not a loop', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  const expired = signHS256(claims(user, { ttl: -300 }));
  let calls = 0;
  let current = expired;
  const c = client(user, { WebSocket: gate.WebSocket, getToken: () => { calls++; return current; }, backoff: { initialMs: 50 } });
  const failed = nextState(c, 'auth_failed');
  await assert.rejects(c.open(), { code: 'token_expired' });
  const info = await failed;
  assert.equal(info.code, 'token_expired');
  assert.equal(info.status, 401);
  assert.equal(c.state, 'auth_failed');
  await sleep(500);
  assert.equal(gate.sockets.length, 1, 'one upgrade attempt');
  assert.ok(calls <= 2, `getToken called ${calls} times`);
  await assert.rejects(c.request('ack', { seq: 0 }), { code: 'auth_failed' });
  await assert.rejects(c.me(), { status: 401, code: 'token_expired' });

  // Signed in again: reconnect() starts over.
  current = token(user);
  c.reconnect();
  assert.equal((await c.open()).user_id, user);
  assert.equal(c.state, 'connected');
});

test('token.expired / close 4001 triggers one refresh and reconnect', async () => {
  const user = uid('sdk');
  // Expired 5 s ago: within the 30 s leeway, so the socket opens, then gets token.expired + 4001.
  const stale = signHS256(claims(user, { ttl: -5 }));
  let calls = 0;
  const c = client(user, { getToken: () => (calls++ === 0 ? stale : token(user)) });
  const expiredEvent = new Promise((resolve) => c.once('token.expired', resolve));
  await expiredEvent;
  await until(() => c.state === 'connected' && c.stats.readies === 2, { what: 'reconnected with a fresh token' });
  assert.equal(c.stats.sockets, 2);
  assert.equal(calls, 2);

  // A token source that keeps returning expired tokens stops after that one retry.
  const user2 = uid('sdk');
  const d = client(user2, { getToken: () => signHS256(claims(user2, { ttl: -5 })) });
  const info = await nextState(d, 'auth_failed');
  assert.equal(info.code, 'token_expired');
  assert.equal(d.stats.sockets, 2);
});

test('refreshes the token in band before it expires, on the same socket', async () => {
  const user = uid('sdk');
  let calls = 0;
  const c = client(user, { getToken: () => { calls++; return token(user, { ttl: 4 }); } });
  const states = [];
  c.on('state', (s, info) => states.push([s, info]));
  await c.open();
  await until(() => c.stats.refreshes >= 2, { what: 'two in-band refreshes', timeoutMs: 15_000 });
  assert.equal(c.stats.sockets, 1, JSON.stringify(states));
  assert.equal(c.state, 'connected');
  assert.ok(calls >= 3);
});

test('a forced disconnect (4003) stops the client and surfaces the reason', async () => {
  const user = uid('sdk');
  const gate = gatedSocket();
  const c = client(user, { WebSocket: gate.WebSocket, backoff: { initialMs: 50 } });
  await c.open();
  const closed = nextState(c, 'closed');
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'password changed' });
  assert.equal(res.status, 200, res.text);
  const info = await closed;
  assert.equal(info.code, 4003);
  assert.equal(info.reason, 'password changed');
  await sleep(700);
  assert.equal(c.state, 'closed');
  assert.equal(gate.sockets.length, 1, 'no reconnect after 4003');
  await assert.rejects(c.request('ack', { seq: 0 }), { code: 'closed' });
});

test('room send retried across a reconnect with the same client_id stores one message', async () => {
  const owner = uid('own');
  const roomId = await createRoom(owner);
  const gate = gatedSocket();
  const c = client(owner, { WebSocket: gate.WebSocket, backoff: { initialMs: 100, maxMs: 400 } });
  const room = c.room(roomId);
  await room.open();

  // Sent, then the link dies at once: the frame may or may not have reached the gateway.
  const clientId = `retry-${randomUUID()}`;
  const sending = room.send('hello once', { clientId });
  gate.kill();
  const msg = await sending;
  assert.equal(msg.client_id, clientId);
  assert.equal(msg.body, 'hello once');
  // Sent while offline: queued, then sent once after the reconnect.
  gate.down = true;
  const down = nextState(room, 'disconnected');
  gate.kill();
  await down;
  const queued = room.send('sent while offline');
  assert.equal(room.pendingSends.length, 1);
  gate.down = false;
  const second = await queued;
  assert.equal(second.seq, msg.seq + 1);
  // An explicit repeat of the first client_id is answered with the original.
  const again = await room.send('hello once', { clientId });
  assert.equal(again.id, msg.id);

  const history = await until(async () => {
    const page = await room.history();
    return page.messages.length >= 2 ? page : null;
  }, { what: 'history in D1' });
  assert.equal(history.messages.filter((m) => m.client_id === clientId).length, 1);
  assert.deepEqual(history.messages.map((m) => m.body), ['sent while offline', 'hello once']);
  await assert.rejects(room.send({ type: 'image', body: 'no url' }), { code: 'validation' });
});

test('room: messages in order, presence, typing, read receipts, resume after a dead link', async () => {
  const alice = uid('al');
  const bob = uid('bo');
  const roomId = await createRoom(alice, [bob]);
  const a = client(alice);
  const gate = gatedSocket();
  const b = client(bob, { WebSocket: gate.WebSocket, backoff: { initialMs: 100, maxMs: 300 } });
  const ra = a.room(roomId);
  const rb = b.room(roomId);
  const seenByBob = [];
  rb.on('message', (m) => seenByBob.push(m.body));
  await ra.open();
  await rb.open();
  await until(() => ra.online.has(bob), { what: 'alice sees bob online in the room' });
  await until(() => rb.online.has(alice), { what: 'bob sees alice (presence follows ready)' });

  const typing = new Promise((resolve) => ra.once('typing', resolve));
  rb.typing(true);
  assert.deepEqual(await typing, { user_id: bob, active: true });

  const first = await ra.send('one');
  await until(() => seenByBob.length === 1, { what: 'bob gets the message' });
  const receipt = new Promise((resolve) => ra.once('read', resolve));
  const ack = await rb.read();
  assert.equal(ack.read_seq, first.seq);
  assert.deepEqual(await receipt, { user_id: bob, seq: first.seq });

  // Bob's link dies; alice keeps talking; bob resumes from his last seq.
  gate.down = true;
  const down = nextState(rb, 'disconnected');
  gate.kill();
  await down;
  for (const body of ['two', 'three', 'four']) await ra.send(body);
  gate.down = false;
  await until(() => seenByBob.length >= 4, { what: 'bob catches up' });
  assert.deepEqual(seenByBob, ['one', 'two', 'three', 'four']);
  await ra.send('five');
  await until(() => seenByBob.length === 5, { what: 'live after resume' });
  assert.deepEqual(seenByBob, ['one', 'two', 'three', 'four', 'five']);

  const members = await ra.members();
  assert.deepEqual(members.members.map((m) => m.user_id).sort(), [alice, bob].sort());
  rb.close();
  assert.equal(rb.state, 'closed');
  await until(() => !ra.online.has(bob), { what: 'bob left the room' });
});

test('room message edits and recalls reach every room socket as changes, in order', async () => {
  const alice = uid('al');
  const bob = uid('bo');
  const roomId = await createRoom(alice, [bob]);
  const ra = client(alice).room(roomId);
  const rb = client(bob).room(roomId);
  const changes = [];
  rb.on('message.updated', (c) => changes.push(['updated', c.id, c.body]));
  rb.on('message.deleted', (c) => changes.push(['deleted', c.id]));
  await ra.open();
  await rb.open();
  const m = await ra.send('first draft');
  const edit = await ra.editMessage(m.id, 'first, edited');
  assert.equal(edit.changed, true);
  assert.equal(edit.message.body, 'first, edited');
  await assert.rejects(rb.editMessage(m.id, 'hijack'), { code: 'not_sender' });
  const recall = await ra.deleteMessage(m.id);
  assert.equal(typeof recall.message.deleted_at, 'number');
  await until(() => changes.length === 2, { what: 'both changes' });
  assert.deepEqual(changes, [['updated', m.id, 'first, edited'], ['deleted', m.id]]);
});

test('a room the user is not a member of closes with not_a_member instead of retrying', async () => {
  const owner = uid('own');
  const roomId = await createRoom(owner);
  const stranger = uid('x');
  const c = client(stranger);
  const room = c.room(roomId);
  await assert.rejects(room.open(), { code: 'not_a_member' });
  assert.equal(room.state, 'closed');
});

test('rooms(): the list with unread counts, kept live from room.activity', async () => {
  const alice = uid('al');
  const bob = uid('bo');
  const a = client(alice);
  await a.open();
  const created = await a.createRoom({ name: 'Live list', members: [bob] });
  let list = await a.rooms();
  assert.equal(list.length, 1);
  assert.equal(list[0].id, created.id);
  assert.equal(list[0].unread, 0);

  const changed = new Promise((resolve) => {
    const off = a.on('rooms', (rooms) => {
      const r = rooms.find((x) => x.id === created.id);
      if (r && r.unread === 2) { off(); resolve(rooms); }
    });
  });
  const b = client(bob);
  const rb = b.room(created.id);
  await rb.send('hello alice');
  await rb.send('second one');
  list = await changed;
  assert.equal(list[0].last_message.preview, 'second one');
  assert.equal(list[0].last_message.sender_id, bob);

  // Opening the room and reading it clears the badge.
  const ra = a.room(created.id);
  await ra.open();
  await until(() => ra.lastSeq === 2, { what: 'alice replays the room' });
  await ra.read();
  assert.equal(a.roomSummary(created.id).unread, 0);
  // A refetch gives the same shape (REST lists carry `body`, room.activity `preview`).
  const fresh = await until(async () => {
    const rooms = await a.rooms();
    return rooms[0].read_seq === 2 ? rooms : null;
  }, { what: 'read cursor in D1' });
  assert.equal(fresh[0].last_message.preview, 'second one');
  assert.equal(fresh[0].unread, 0);
});

test('the room list follows membership events; a deleted room closes with 4004 and leaves the list', async () => {
  const alice = uid('al');
  const bob = uid('bo');
  const a = client(alice);
  const b = client(bob);
  await b.open();
  assert.deepEqual(await b.rooms(), []);
  const listed = (pred) => new Promise((resolve) => {
    const check = (rooms) => { if (pred(rooms)) { off(); resolve(rooms); } };
    const off = b.on('rooms', check);
    check(b.roomList);
  });
  const created = await a.createRoom({ name: 'Planning', members: [bob] });
  const withRoom = await listed((rooms) => rooms.some((r) => r.id === created.id));
  assert.equal(withRoom.find((r) => r.id === created.id).name, 'Planning');

  const rb = b.room(created.id);
  await rb.open();
  await a.room(created.id).rename('Planning 2');
  await listed((rooms) => rooms.find((r) => r.id === created.id)?.name === 'Planning 2');

  const closed = nextState(rb, 'closed');
  await a.room(created.id).delete();
  assert.equal((await closed).code, 4004);
  await listed((rooms) => !rooms.some((r) => r.id === created.id));
  const unread = await b.unread();
  assert.equal(typeof unread.total, 'number');
  assert.ok(Array.isArray(unread.rooms));
});

test('direct messages over REST, live on the user socket, with read receipts and REST errors', async () => {
  const alice = uid('al');
  const bob = uid('bo');
  const a = client(alice);
  const b = client(bob);
  await a.open();
  await b.open();
  const live = new Promise((resolve) => b.once('message', resolve));
  const sent = await a.dm.send(bob, 'psst');
  assert.equal(sent.sender_id, alice);
  assert.deepEqual(sent.to, [bob]);
  const got = await live;
  assert.equal(got.id, sent.id);
  assert.equal(await b.dm.unreadCount(), 1);
  const unread = await b.dm.received({ unread: true });
  assert.deepEqual(unread.messages.map((m) => m.id), [sent.id]);

  const receipt = new Promise((resolve) => a.once('message.read', resolve));
  const read = await b.dm.read([sent.id]);
  assert.deepEqual(read.read, [sent.id]);
  assert.deepEqual((await receipt).message_ids, [sent.id]);
  assert.equal(await b.dm.unreadCount(), 0);

  // The same client_id twice is one message.
  const clientId = `dm-${randomUUID()}`;
  const one = await a.dm.send([bob], 'once', { clientId });
  const two = await a.dm.send([bob], 'once', { clientId });
  assert.equal(one.id, two.id);

  await assert.rejects(a.dm.send(bob, ''), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.code, 'validation');
    return true;
  });
  await assert.rejects(a.dm.get('m_nope'), { status: 400 });
});

/**
 * A stand-in `ServiceWorkerRegistration` (Node has no Push API): its `pushManager` makes
 * subscriptions from a fresh P-256 key and auth secret, with endpoints from `endpoint()`, or
 * fails with `fail` (a DOMException name), and counts what the SDK does with it.
 */
function fakeRegistration({ endpoint = () => `http://127.0.0.1:9/push/${randomUUID()}`, fail = null } = {}) {
  const reg = { current: null, subscribes: 0, unsubscribed: [] };
  const subscriptionOf = (url, keyBytes) => {
    const ecdh = createECDH('prime256v1');
    const keys = { p256dh: ecdh.generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const sub = {
      endpoint: url,
      options: { userVisibleOnly: true, applicationServerKey: keyBytes ? new Uint8Array(keyBytes).buffer : null },
      toJSON: () => ({ endpoint: url, expirationTime: null, keys }),
      unsubscribe: async () => {
        reg.unsubscribed.push(url);
        if (reg.current === sub) reg.current = null;
        return true;
      },
    };
    return sub;
  };
  reg.pushManager = {
    getSubscription: async () => reg.current,
    subscribe: async (options) => {
      if (fail) throw Object.assign(new Error(`refused (${fail})`), { name: fail });
      assert.equal(options.userVisibleOnly, true);
      assert.ok(options.applicationServerKey instanceof Uint8Array);
      reg.subscribes++;
      reg.current = subscriptionOf(endpoint(), options.applicationServerKey);
      return reg.current;
    },
  };
  reg.existing = (keyBytes) => {
    reg.current = subscriptionOf(endpoint(), keyBytes);
    return reg.current;
  };
  return reg;
}

test('registerPush: subscribe, register with the device id, reuse, replace, refuse, unregister; room levels', async () => {
  const user = uid('wp');
  const c = client(user);
  const ready = await c.open();
  const publicKey = (await http('GET', '/v1/push/public-key')).body.public_key;
  assert.equal(await c.pushPublicKey(), publicKey);

  await assert.rejects(c.registerPush({}), { code: 'push_unsupported' });
  await assert.rejects(c.registerPush(fakeRegistration({ fail: 'NotAllowedError' })), { code: 'push_permission_denied' });
  await assert.rejects(c.registerPush(fakeRegistration({ fail: 'AbortError' })), (err) => {
    assert.equal(err.code, 'push_subscribe_failed');
    assert.match(err.message, /AbortError/);
    return true;
  });

  // Registered with this client's device id; again: the same subscription and record.
  const reg = fakeRegistration();
  const handle = await c.registerPush(reg);
  assert.equal(c.deviceId, ready.device);
  assert.equal(handle.device, ready.device);
  assert.equal(handle.endpoint, reg.current.endpoint);
  assert.match(handle.id, /^[0-9a-f]+$/);
  const again = await c.registerPush(reg);
  assert.equal(again.id, handle.id);
  assert.equal(reg.subscribes, 1);
  assert.deepEqual((await c.pushSubscriptions()).map((s) => [s.id, s.endpoint, s.device]), [[handle.id, handle.endpoint, ready.device]]);

  // A subscription made with another key is replaced, at the browser and at the gateway.
  const rotated = fakeRegistration();
  const stale = rotated.existing(randomBytes(65));
  assert.equal((await c.api('POST', '/v1/push-subscriptions', stale.toJSON())).endpoint, stale.endpoint);
  await c.registerPush(rotated);
  assert.deepEqual(rotated.unsubscribed, [stale.endpoint]);
  const listed = (await c.pushSubscriptions()).map((s) => s.endpoint);
  assert.ok(!listed.includes(stale.endpoint) && listed.includes(rotated.current.endpoint), listed.join(', '));

  // An endpoint the gateway refuses: the subscription made for it is dropped again.
  const evil = fakeRegistration({ endpoint: () => 'https://evil.example/push/1' });
  await assert.rejects(c.registerPush(evil), { status: 400, code: 'endpoint_not_allowed' });
  assert.deepEqual(evil.unsubscribed, ['https://evil.example/push/1']);

  // unregister: the gateway forgets it and the browser's subscription goes.
  await handle.unregister();
  assert.deepEqual(reg.unsubscribed, [handle.endpoint]);
  assert.ok(!(await c.pushSubscriptions()).some((s) => s.id === handle.id));
  assert.equal(await c.removePushSubscription(handle.id, { missingOk: true }), false);
  await assert.rejects(c.removePushSubscription(handle.id), { status: 404, code: 'not_found' });

  // Room notification levels.
  const roomId = await createRoom(user);
  const room = c.room(roomId);
  assert.deepEqual(await room.notificationLevel(), { room_id: roomId, level: 'mentions' });
  assert.deepEqual(await room.setNotificationLevel('all'), { room_id: roomId, level: 'all' });
  assert.equal((await room.notificationLevel()).level, 'all');
  await assert.rejects(room.setNotificationLevel('loud'), { status: 400, code: 'validation' });
});
