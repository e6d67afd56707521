// Issue #12: the real socket.io-client 4.8, unchanged, against the gateway's Socket.IO facade.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { io } from 'socket.io-client';
import { BASE, createRoom, http, internal, push, token, uid, until } from './helpers.mjs';

const clients = new Set();
after(() => {
  for (const socket of clients) socket.disconnect();
});

/** A socket.io-client socket, as an application would make it (websocket only). */
function client(nsp = '/', opts = {}) {
  const socket = io(BASE + nsp, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts });
  clients.add(socket);
  return socket;
}

/** Connects and resolves once `connect` fired; rejects with the `connect_error`. */
async function connected(socket) {
  if (socket.connected) return socket;
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

/** Collects every `event` a socket receives, with its arguments. */
function collect(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args));
  return seen;
}

test('socket.io: connects with the token in query, the bearer subprotocol or the Authorization header, and gets pushes', async () => {
  const user = uid();
  const carriers = [
    { query: { token: token(user) } },
    { protocols: ['bearer', token(user)] },
    { extraHeaders: { authorization: `Bearer ${token(user)}` } },
  ];
  for (const opts of carriers) {
    const socket = await connected(client('/', opts));
    assert.ok(socket.id);
    const got = once(socket, 'order.shipped');
    const res = await push([user], 'order.shipped', { order: 7 });
    assert.equal(res.status, 200, res.text);
    const [data, offset] = await got;
    assert.deepEqual(data, { order: 7 });
    assert.equal(offset, String(res.body.results[0].seq));
    socket.disconnect();
  }
});

test('socket.io: a refused token is a connect_error naming its code, and the client stops retrying', async () => {
  const user = uid();
  const cases = [
    [token(user, { ttl: -120 }), 'token_expired'],
    ['not-a-jwt', 'token_malformed'],
  ];
  for (const [tok, code] of cases) {
    const socket = client('/chat', { query: { token: tok } });
    const [err] = await once(socket, 'connect_error');
    assert.equal(err.message, code);
    assert.equal(err.data.code, code);
    assert.equal(socket.active, false, 'a CONNECT_ERROR stops the reconnection loop');
  }
  const socket = client('/', {});
  const [err] = await once(socket, 'connect_error');
  assert.equal(err.message, 'token_missing');
});

test('socket.io: HTTP long-polling gets the same error as a socket.io server gives an unknown transport', async () => {
  const res = await http('GET', '/socket.io/?EIO=4&transport=polling');
  assert.equal(res.status, 400);
  assert.deepEqual(res.body, { code: 0, message: 'Transport unknown' });
  const old = await http('GET', '/socket.io/?EIO=3&transport=websocket');
  assert.deepEqual(old.body, { code: 5, message: 'Unsupported protocol version' });
});

test('socket.io: namespaces connect, auth.token must name the same user, and acks carry the result or the error', async () => {
  const user = uid();
  const other = uid();
  const chat = await connected(client('/chat', { query: { token: token(user) }, auth: { token: token(user) } }));
  const dm = await chat.emitWithAck('message.send', { to: [other], body: 'hi', client_id: 'c1' });
  assert.equal(dm.message.body, 'hi');
  const bad = await chat.emitWithAck('message.send', { to: [], body: 'x' });
  assert.equal(bad.error.code, 'validation');
  const unknown = await chat.emitWithAck('no-such-thing', {});
  assert.ok(['unknown_event', 'rate_limited'].includes(unknown.error.code) || unknown.error, JSON.stringify(unknown));
  const spoof = client('/admin', { query: { token: token(user) }, auth: { token: token(other) } });
  const [err] = await once(spoof, 'connect_error');
  assert.equal(err.message, 'forbidden');
});

test('socket.io: rooms over one connection, in order, with acks, typing and reads', async () => {
  const alice = uid();
  const bob = uid();
  const room = await createRoom(alice, [bob]);
  const a = await connected(client('/chat', { query: { token: token(alice) } }));
  const b = await connected(client('/chat', { query: { token: token(bob) } }));
  const joined = await a.emitWithAck('room.join', { room_id: room });
  assert.equal(joined.room_id, room);
  await b.emitWithAck('room.join', { room_id: room });
  const messages = collect(b, 'message');
  for (let i = 0; i < 5; i++) {
    const ack = await a.emitWithAck('room.send', { room_id: room, body: `m${i}` });
    assert.equal(ack.message.body, `m${i}`);
    assert.equal(ack.message.room_id, room);
  }
  await until(() => messages.length === 5, { what: 'five messages' });
  assert.deepEqual(messages.map(([m]) => m.body), ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.ok(messages.every(([m]) => m.room_id === room));
  const seqs = messages.map(([m]) => m.seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  const typing = once(b, 'typing');
  await a.emitWithAck('room.typing', { room_id: room, typing: true });
  assert.equal((await typing)[0].room_id, room);
  const read = await b.emitWithAck('room.read', { room_id: room, seq: seqs.at(-1) });
  assert.equal(read.unread, 0);
  const notJoined = await a.emitWithAck('room.send', { room_id: 'elsewhere', body: 'x' });
  assert.equal(notJoined.error.code, 'not_joined');
});
