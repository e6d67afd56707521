// Issue #19: socket.io-client 4.8 with its default transports — HTTP long-polling first, then the
// move to a WebSocket — and clients that stay on polling for their whole life.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { io } from 'socket.io-client';
import { connected, createRoom, internal, push, socketioClients, token, uid, until } from './helpers.mjs';
import { hookServerFromEnv } from './hook-server.mjs';

const clients = socketioClients(io);
let hook;
before(async () => {
  hook = await hookServerFromEnv();
});
after(async () => {
  clients.closeAll();
  await hook?.close();
});

/** A client as the tutorials write it: the token in `auth`, the transports left as they are. */
const client = (nsp, opts) => clients.make(nsp, opts);

/** Resolves once the client's engine moved to the WebSocket. */
async function upgraded(socket) {
  if (socket.io.engine.transport.name === 'websocket') return;
  await once(socket.io.engine, 'upgrade');
}

test('socket.io polling: the default transports connect with the token in auth, then move to a WebSocket', async () => {
  const user = uid();
  const socket = client('/chat', { auth: { token: token(user) } });
  await new Promise((resolve, reject) => {
    socket.io.engine.once('open', resolve);
    socket.io.once('error', reject);
  });
  assert.equal(socket.io.engine.transport.name, 'polling', 'the client opens on long-polling');
  await connected(socket);
  await upgraded(socket);
  assert.equal(socket.io.engine.transport.name, 'websocket');
  const got = once(socket, 'order.shipped');
  const res = await push([user], 'order.shipped', { order: 1 });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got)[0], { order: 1 });
});

test('socket.io polling: a polling-only client gets pushes, acks and rooms, and recovers what it missed', async () => {
  const alice = uid();
  const bob = uid();
  const room = await createRoom(alice, [bob]);
  const a = await connected(client('/', { transports: ['polling'], auth: { token: `Bearer ${token(alice)}` } }));
  const b = await connected(client('/', { transports: ['polling'], auth: { token: token(bob) } }));
  assert.equal(a.io.engine.transport.name, 'polling');
  const pushed = once(a, 'order.shipped');
  assert.equal((await push([alice], 'order.shipped', { order: 2 })).status, 200);
  assert.deepEqual((await pushed)[0], { order: 2 });
  await a.emitWithAck('room.join', { room_id: room });
  await b.emitWithAck('room.join', { room_id: room });
  const seen = [];
  b.on('message', (m) => seen.push(m.body));
  for (const body of ['one', 'two', 'three']) {
    assert.equal((await a.emitWithAck('room.send', { room_id: room, body })).message.body, body);
  }
  await until(() => seen.length === 3, { what: 'three messages over polling' });
  assert.deepEqual(seen, ['one', 'two', 'three']);
  // The session ends under the client (its engine closed as a network loss would); what was
  // pushed meanwhile comes back with recovery, once and in order.
  const events = [];
  b.on('order.shipped', (data) => events.push(data.order));
  b.io.reconnection(false);
  const gone = once(b, 'disconnect');
  b.io.engine.close();
  await gone;
  for (const order of [3, 4]) assert.equal((await push([bob], 'order.shipped', { order })).status, 200);
  const back = once(b, 'connect');
  b.io.reconnection(true);
  b.connect();
  await back;
  assert.equal(b.recovered, true);
  await until(() => events.length === 2, { what: 'the missed pushes' });
  assert.deepEqual(events, [3, 4]);
  assert.equal(b.io.engine.transport.name, 'polling');
});

test('socket.io polling: a wrong token in auth is a connect_error with its code, and the client stops', async () => {
  for (const opts of [{}, { transports: ['polling'] }]) {
    const socket = client('/', { ...opts, auth: { token: token(uid(), { ttl: -120 }) } });
    const [err] = await once(socket, 'connect_error');
    assert.equal(err.message, 'token_expired');
    assert.equal(socket.active, false);
  }
});

test('socket.io polling: revoking the user ends a polling session, and the client does not come back', async () => {
  const user = uid();
  const socket = await connected(client('/', { transports: ['polling'], auth: { token: token(user) } }));
  const gone = once(socket, 'disconnect');
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'account locked', revoke: true });
  assert.equal(res.status, 200, res.text);
  assert.equal((await gone)[0], 'io server disconnect');
  assert.equal(socket.active, false);
});

test('socket.io polling: a session is one of the user\'s sockets: over the cap the oldest is ended and does not come back', async () => {
  const user = uid();
  const MAX = Number(process.env.SB_MAX_SOCKETS_PER_USER);
  const sockets = [];
  for (let i = 0; i < MAX; i++) sockets.push(await connected(client('/', { transports: ['polling'], auth: { token: token(user) } })));
  const gone = once(sockets[0], 'disconnect');
  sockets.push(await connected(client('/', { auth: { token: token(user) } })));
  assert.equal((await gone)[0], 'io server disconnect');
  assert.equal(sockets[0].active, false);
  assert.ok(sockets.slice(1).every((s) => s.connected));
});

test('socket.io polling: an event the gateway does not know reaches the hook as the verified user, and its answer is the ack', async () => {
  const user = uid();
  hook.setHandler((call) => ({ body: { echoed: call.args[0], by: call.user_id } }));
  const socket = await connected(client('/', { transports: ['polling'], auth: { token: token(user) } }));
  const answer = await socket.timeout(10_000).emitWithAck('send-message', { text: 'over polling' });
  assert.deepEqual(answer, { echoed: { text: 'over polling' }, by: user });
  assert.equal(hook.rejected.length, 0);
});

test('socket.io polling: an expiring token ends the session with token.expired, as on a WebSocket', async () => {
  const user = uid();
  const socket = client('/', { transports: ['polling'], auth: { token: token(user, { ttl: 2 }) }, reconnection: false });
  const expiredEvent = once(socket, 'token.expired');
  const gone = once(socket, 'disconnect');
  await connected(socket);
  const [expired] = await expiredEvent;
  assert.ok(expired.expires_at <= Date.now() / 1000 + 1);
  assert.equal((await gone)[0], 'transport close');
});
