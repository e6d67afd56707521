// Issue #20: a backend drives Socket.IO sockets the socket.io way, through the packed
// `@switchboard/emitter` (npm pack of packages/emitter, installed as a user installs it) and its
// hook router: server-side joins, any event to a room excluding the sender, acks, fetchSockets,
// disconnectSockets, durable room events recovered after a reconnect, raw-protocol members of
// the same room, a room spread over shards (the suite runs with ROOM_SHARD_SOCKETS=2), and
// what a hostile backend call or client frame cannot do.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { io } from 'socket.io-client';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BASE, INTERNAL_TOKEN, connectRoom, connected, internal, launchChromium, socketioClients, token, uid, until,
} from './helpers.mjs';
import { installPacked } from './packed.mjs';

const clients = socketioClients(io);
let Emitter;
let HookRouter;
let HookError;
let backend;
/** The backend's emitter, as an application makes it: only the constructor differs from redis. */
let emitter;
const backendErrors = [];
/** The `connection` and `disconnect` calls the backend got, in arrival order. */
const lives = [];

/**
 * The chat gateway of the tutorials, as a backend behind the hook: `join-room` joins the socket
 * server-side and tells the others; `send-message` emits to the room and acks the message.
 */
function chatBackend(router, io) {
  router.onConnection(async (call) => {
    lives.push(call);
    const { auth } = call.handshake;
    if (auth.welcomeRoom) {
      // A connection handler that works on its socket before it answers, awaiting each call.
      const nsp = io.of(call.namespace);
      await nsp.to(call.socketId).emit('welcome', 1);
      await nsp.in(call.socketId).socketsJoin(auth.welcomeRoom);
      await nsp.to(call.socketId).emit('welcome', 2);
      await nsp.to(call.socketId).except(call.socketId).emit('welcome', 'excepted');
    }
    if (auth.banned) throw new HookError('banned', 'this account is suspended', 403);
    return { data: { userId: call.userId, plan: auth.plan ?? 'free' } };
  });
  router.onDisconnect((call) => {
    lives.push(call);
  });
  router.on('whoami', (call) => ({ data: call.data, socketId: call.socketId, auth: call.handshake?.auth }));
  router.on('join-room', async (call) => {
    const [{ roomId }] = call.args;
    await io.of(call.namespace).in(call.socketId).socketsJoin(roomId);
    io.of(call.namespace).to(roomId).except(call.socketId).emit('user-joined', { userId: call.userId, roomId });
    return { success: true };
  });
  router.on('send-message', (call) => {
    const [{ roomId, content }] = call.args;
    const message = { id: `m-${Math.random().toString(36).slice(2)}`, content, senderId: call.userId, socketId: call.socketId };
    io.of(call.namespace).to(roomId).emit('new-message', message);
    return message;
  });
  router.on('leave-room', async (call) => {
    const [{ roomId }] = call.args;
    await io.of(call.namespace).in(call.socketId).socketsLeave(roomId);
    return { success: true };
  });
}

before(async () => {
  ({ Emitter, HookRouter, HookError } = await installPacked());
  emitter = new Emitter({ url: BASE, token: INTERNAL_TOKEN });
  emitter.on('error', (err) => backendErrors.push(err));
  const router = new HookRouter({ secret: process.env.SB_HOOK_SECRET });
  chatBackend(router, emitter);
  backend = createServer(router.node());
  await new Promise((resolve) => backend.listen(Number(process.env.SB_HOOK_PORT), '127.0.0.1', resolve));
});

after(async () => {
  clients.closeAll();
  await emitter?.flush();
  backend?.closeAllConnections();
  await new Promise((resolve) => (backend ? backend.close(resolve) : resolve()));
});

/** A client of the /chat namespace as the tutorials write it. */
const chatClient = (user, opts = {}) => clients.make('/chat', { auth: { token: token(user) }, transports: ['websocket'], ...opts });

/** Collects every `event` the socket gets (first argument). */
function collect(socket, event) {
  const seen = [];
  socket.on(event, (first) => seen.push(first));
  return seen;
}

test('emitter: a server-side join, to-room events without the sender, acks, and order for two users', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const roomId = uid('room');
  const a = await connected(chatClient(alice));
  const b = await connected(chatClient(bob));
  const joinedA = collect(a, 'user-joined');
  const joinedB = collect(b, 'user-joined');
  assert.deepEqual(await a.emitWithAck('join-room', { roomId }), { success: true });
  assert.deepEqual(await b.emitWithAck('join-room', { roomId }), { success: true });
  await until(() => joinedA.length === 1, { what: 'alice told bob joined' });
  assert.deepEqual(joinedA[0], { userId: bob, roomId });
  assert.equal(joinedB.length, 0, 'the joining socket is excluded (except)');

  const atA = collect(a, 'new-message');
  const atB = collect(b, 'new-message');
  const acks = [];
  for (let i = 0; i < 5; i += 1) acks.push(await a.emitWithAck('send-message', { roomId, content: `hi ${i}` }));
  assert.deepEqual(acks.map((m) => m.content), ['hi 0', 'hi 1', 'hi 2', 'hi 3', 'hi 4']);
  assert.ok(acks.every((m) => m.senderId === alice && m.socketId === a.id));
  await until(() => atB.length === 5 && atA.length === 5, { what: 'every message at both' });
  assert.deepEqual(atB.map((m) => m.id), acks.map((m) => m.id), 'in the order sent');
  assert.deepEqual(atA.map((m) => m.id), acks.map((m) => m.id), 'to(room) reaches the sender too');
});

test('emitter: a reconnect recovers the room events it missed', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const roomId = uid('room');
  const a = await connected(chatClient(alice));
  const b = await connected(chatClient(bob));
  await a.emitWithAck('join-room', { roomId });
  await b.emitWithAck('join-room', { roomId });
  const atB = collect(b, 'new-message');
  await a.emitWithAck('send-message', { roomId, content: 'before' });
  await until(() => atB.length === 1, { what: 'the first message' });

  const dropped = once(b, 'disconnect');
  b.io.engine.close(); // the network goes: no DISCONNECT, the client reconnects and recovers
  await dropped;
  const missed = [];
  for (let i = 0; i < 3; i += 1) missed.push(await a.emitWithAck('send-message', { roomId, content: `missed ${i}` }));
  await connected(b);
  assert.equal(b.recovered, true, 'the connection state is recovered');
  await until(() => atB.length === 4, { what: 'the missed messages' });
  assert.deepEqual(atB.slice(1).map((m) => m.id), missed.map((m) => m.id), 'once each, in order');
  const live = await a.emitWithAck('send-message', { roomId, content: 'after' });
  await until(() => atB.length === 5, { what: 'live again' });
  assert.equal(atB[4].id, live.id);
});

test('emitter: fetchSockets lists a room across shards, and disconnectSockets ends one socket', async () => {
  const users = [uid('f0'), uid('f1'), uid('f2'), uid('f3')];
  const roomId = uid('room');
  const sockets = [];
  for (const user of users) {
    const socket = await connected(chatClient(user));
    await socket.emitWithAck('join-room', { roomId });
    sockets.push(socket);
  }
  const shards = await internal('GET', `/internal/v1/rooms/${roomId}/shards`);
  assert.equal(shards.status, 200, JSON.stringify(shards.body));
  assert.ok(shards.body.shards.length >= 2, `the room spans shards: ${JSON.stringify(shards.body)}`);

  const found = await emitter.of('/chat').in(roomId).fetchSockets();
  assert.deepEqual(found.map((s) => s.id).sort(), sockets.map((s) => s.id).sort());
  for (const remote of found) {
    assert.ok(remote.rooms.has(roomId));
    assert.equal(remote.namespace, '/chat');
  }
  const atAll = sockets.map((s) => collect(s, 'new-message'));
  await sockets[0].emitWithAck('send-message', { roomId, content: 'to every shard' });
  await until(() => atAll.every((seen) => seen.length === 1), { what: 'the message on every shard' });

  const reason = once(sockets[3], 'disconnect');
  const outcome = await emitter.of('/chat').in(sockets[3].id).disconnectSockets();
  assert.equal(outcome.sockets, 1);
  assert.equal((await reason)[0], 'io server disconnect');
  const after = await emitter.of('/chat').in(roomId).fetchSockets();
  assert.equal(after.length, 3);
});

test('emitter: a raw-protocol member of the room sees the same events in the room stream', async () => {
  const [alice, carol] = [uid('alice'), uid('carol')];
  const roomId = uid('room');
  const a = await connected(chatClient(alice));
  await a.emitWithAck('join-room', { roomId });
  const added = await internal('POST', `/internal/v1/rooms/${roomId}/members`, { users: [carol] });
  assert.equal(added.status, 200, JSON.stringify(added.body));
  const raw = await connectRoom(carol, roomId);
  const sent = await a.emitWithAck('send-message', { roomId, content: 'to everyone' });
  const frame = await raw.next('new-message');
  assert.deepEqual(frame.data, sent);
  assert.equal(typeof frame.seq, 'number');
  raw.close();
});

test('emitter: to a user, volatile, and the refusals a backend gets', async () => {
  const alice = uid('alice');
  const a = await connected(chatClient(alice));
  const got = once(a, 'order-update');
  const outcome = await emitter.of('/chat').toUser(alice).emit('order-update', { orderId: 7 });
  assert.equal(outcome.sockets, 1);
  assert.deepEqual((await got)[0], { orderId: 7 });

  const volatile = once(a, 'typing-now');
  await emitter.of('/chat').in(a.id).volatile.emit('typing-now', 1, 2);
  assert.deepEqual((await volatile).slice(0, 2), [1, 2], 'every argument reaches the socket');

  const other = await connected(clients.make('/', { auth: { token: token(alice) }, transports: ['websocket'] }));
  const elsewhere = collect(other, 'announcement');
  const skipped = collect(a, 'announcement');
  const b = await connected(chatClient(uid('bob')));
  const announced = once(b, 'announcement');
  const reach = await emitter.of('/chat').except(a.id).emit('announcement', 'all', 'of', 'chat');
  assert.deepEqual((await announced).slice(0, 3), ['all', 'of', 'chat'], 'every socket of the namespace, every argument');
  assert.ok(reach.sockets >= 1);
  for (const [socket, nsp] of [[a, '/chat'], [other, '/']]) { // what came before this has arrived
    const marker = once(socket, 'sync-point');
    await emitter.of(nsp).to(socket.id).emit('sync-point');
    await marker;
  }
  assert.deepEqual([skipped, elsewhere], [[], []], 'not the excepted socket, not another namespace');

  assert.throws(() => emitter.emit('disconnect'), /reserved/);
  await assert.rejects(emitter.to(uid('room')).emit('message', {}), (err) => err.code === 'validation');
  await assert.rejects(emitter.toUser(alice).emit('two-args', 1, 2), (err) => err.code === 'validation');
  const bad = await fetch(`${BASE}/internal/v1/socketio/emit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
    body: JSON.stringify({ event: 'x' }),
  });
  assert.equal(bad.status, 401);
  const badRoom = await internal('POST', '/internal/v1/socketio/join', { rooms: ['a b'], join: ['r'] });
  assert.equal(badRoom.status, 400);
  const nobody = await emitter.of('/chat').in(`${alice}~${'0'.repeat(32)}`).disconnectSockets(true);
  assert.equal(nobody.sockets, 0, 'a made-up socket id of a real user reaches nothing');
  assert.equal(a.connected, true);
});

test('emitter: a client cannot name another socket: the hook call carries its own socket id', async () => {
  const [alice, mallory] = [uid('alice'), uid('mallory')];
  const roomId = uid('room');
  const a = await connected(chatClient(alice));
  const m = await connected(chatClient(mallory));
  await a.emitWithAck('join-room', { roomId });
  const atA = collect(a, 'new-message');
  const forged = await m.emitWithAck('send-message', { roomId, content: 'spoof', socketId: a.id, socket_id: a.id });
  assert.equal(forged.socketId, m.id, 'the backend saw the sender as it is');
  assert.equal(forged.senderId, mallory);
  await until(() => atA.length === 1, { what: 'the message' });
  assert.equal(atA[0].senderId, mallory);
});

/** The lifecycle calls of one socket, in the order the backend got them. */
const livesOf = (id) => lives.filter((call) => call.socketId === id).map((call) => call.reason ?? call.kind);

test('emitter: connection and disconnect calls, once per socket, in order, with socket.io\'s reasons', async () => {
  const user = uid('life');
  const tok = token(user);
  const leaves = await connected(chatClient(user, { auth: { token: tok } }));
  const dropped = await connected(chatClient(user, { reconnection: false }));
  const ejected = await connected(chatClient(user));
  const closed = await connected(chatClient(user));
  for (const socket of [leaves, dropped, ejected, closed]) assert.deepEqual(livesOf(socket.id), ['connection']);
  const call = lives.find((c) => c.socketId === leaves.id);
  assert.equal(call.userId, user);
  assert.equal(call.namespace, '/chat');
  assert.deepEqual(call.handshake.auth, { token: tok }, 'the CONNECT auth as sent');
  assert.equal(call.handshake.query.EIO, '4');
  assert.equal(call.handshake.headers.host, new URL(BASE).host);
  assert.equal(call.handshake.recovered, false);

  const ids = [leaves, dropped, ejected, closed].map((s) => s.id); // a disconnected client forgets its id
  leaves.disconnect();
  dropped.io.engine.close();
  await emitter.of('/chat').in(ejected.id).disconnectSockets();
  await emitter.of('/chat').in(closed.id).disconnectSockets(true);
  await until(() => ids.every((id) => livesOf(id).length === 2), { what: 'every disconnect call' });
  assert.deepEqual(ids.map(livesOf), [
    ['connection', 'client namespace disconnect'],
    ['connection', 'transport close'],
    ['connection', 'server namespace disconnect'],
    ['connection', 'forced server close'],
  ]);
});

test('emitter: the connection answer sets socket.data, seen in later calls and fetchSockets; a refusal is connect_error', async () => {
  const user = uid('data');
  const auth = { token: token(user), plan: 'pro' };
  const socket = await connected(chatClient(user, { auth }));
  assert.deepEqual(await socket.emitWithAck('whoami', {}), { data: { userId: user, plan: 'pro' }, socketId: socket.id, auth },
    'socket.data and the handshake (with its auth) reach every later handler');
  const [remote] = await emitter.of('/chat').in(socket.id).fetchSockets();
  assert.deepEqual(remote.data, { userId: user, plan: 'pro' });
  assert.equal(remote.handshake.query.EIO, '4');

  await emitter.of('/chat').to(socket.id).setData({ userId: user, plan: 'team' });
  assert.deepEqual((await socket.emitWithAck('whoami', {})).data, { userId: user, plan: 'team' });
  const big = await internal('POST', '/internal/v1/socketio/data', { namespace: '/chat', socket_id: socket.id, data: { blob: 'x'.repeat(5000) } });
  assert.equal(big.status, 413, 'socket.data over its bound is refused');
  assert.deepEqual((await socket.emitWithAck('whoami', {})).data.plan, 'team', 'and nothing changed');

  const banned = chatClient(uid('banned'), { auth: { token: token(uid('banned')), banned: true } });
  const err = await new Promise((resolve) => banned.once('connect_error', resolve));
  assert.equal(err.message, 'banned');
  assert.equal(err.data.code, 'banned');
  assert.equal(banned.active, false, 'the client stops, as after middleware next(err)');
});

test('emitter: what a connection handler does to its socket before answering is done right after the CONNECT', async () => {
  const user = uid('welcome');
  const roomId = uid('room');
  const socket = chatClient(user, { auth: { token: token(user), welcomeRoom: roomId } });
  const order = [];
  socket.on('connect', () => order.push('connect'));
  socket.on('welcome', (n) => order.push(`welcome ${n}`));
  const news = collect(socket, 'room-news');
  await connected(socket);
  await until(() => order.length === 3, { what: 'both welcome events' });
  assert.deepEqual(order, ['connect', 'welcome 1', 'welcome 2'], 'the socket got both emits, after it connected, in order (not the one that excepts it)');
  emitter.of('/chat').to(roomId).emit('room-news', { roomId });
  await until(() => news.length === 1, { what: 'the room event through the join made before the answer' });
  assert.deepEqual(news[0], { roomId });
  const [remote] = await emitter.of('/chat').in(socket.id).fetchSockets();
  assert.ok(remote.rooms.has(roomId), 'fetchSockets shows the room');
  assert.equal(order.length, 3, 'the held emit that excepts the socket never came');

  const banned = chatClient(uid('banned'), { auth: { token: token(uid('banned')), welcomeRoom: roomId, banned: true } });
  const welcomed = collect(banned, 'welcome');
  const err = await new Promise((resolve) => banned.once('connect_error', resolve));
  assert.equal(err.message, 'banned', 'a refused connection is refused as before');
  assert.equal(welcomed.length, 0, 'and the calls held for it reached nothing');
  const inRoom = await emitter.of('/chat').in(roomId).fetchSockets();
  assert.deepEqual(inRoom.map((s) => s.id), [socket.id], 'the refused socket never joined');
});

const BUNDLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');

/** The tutorials' browser client: `join-room` on connect, `send-message` with an ack, `new-message`. */
function tutorialClient({ url, token, roomId }) {
  window.received = [];
  // eslint-disable-next-line no-undef
  const socket = io(`${url}/chat`, { auth: { token } });
  window.socket = socket;
  socket.on('connect', () => socket.emit('join-room', { roomId }, () => { window.joined = true; }));
  socket.on('new-message', (message) => window.received.push(message));
  window.send = (content) => socket.emitWithAck('send-message', { roomId, content });
}

test('emitter: in Chromium, the tutorial client joins through the backend and chats in order', async () => {
  const browser = await launchChromium();
  try {
    const roomId = uid('room');
    const pages = [];
    for (const user of [uid('alice'), uid('bob')]) {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${BASE}/health`);
      await page.addScriptTag({ path: BUNDLE });
      await page.evaluate(tutorialClient, { url: BASE, token: token(user), roomId });
      await page.waitForFunction(() => window.joined === true, null, { timeout: 15_000 });
      pages.push(page);
    }
    const [a, b] = pages;
    const acks = [];
    for (const content of ['one', 'two', 'three']) acks.push(await a.evaluate((c) => window.send(c), content));
    await b.waitForFunction(() => window.received.length === 3, null, { timeout: 15_000 });
    const got = await b.evaluate(() => window.received);
    assert.deepEqual(got.map((m) => m.id), acks.map((m) => m.id), 'in the order sent, as the acks said');
    assert.deepEqual(got.map((m) => m.content), ['one', 'two', 'three']);
  } finally {
    await browser.close();
  }
});
