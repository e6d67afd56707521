// Issue #12: the real socket.io-client 4.8, unchanged, against the gateway's Socket.IO facade.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { BASE, WS_BASE, claims, connected, createRoom, http, internal, push, signHS256, socketioClients, token, uid, until } from './helpers.mjs';
import { hookServerFromEnv } from './hook-server.mjs';

const PING_INTERVAL = Number(process.env.SB_SOCKETIO_PING_INTERVAL_MS);
const PING_TIMEOUT = Number(process.env.SB_SOCKETIO_PING_TIMEOUT_MS);
const BURST = Number(process.env.SB_RATE_LIMIT_BURST);

const clients = socketioClients(io);
let hook;
before(async () => {
  hook = await hookServerFromEnv();
});
after(async () => {
  clients.closeAll();
  await hook?.close();
});

/** A socket.io-client socket, as an application would make it (websocket only). */
const client = (nsp, opts = {}) => clients.make(nsp, { transports: ['websocket'], ...opts });

/** Collects every `event` a socket receives, with its arguments. */
function collect(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args));
  return seen;
}

/**
 * Has the server kill the connection (more frames of `event` than the socket's burst: 4008) and
 * resolves with the disconnect reason; the client holds off reconnecting until `reconnect()`.
 */
async function killedByTheServer(socket, event, data) {
  socket.io.reconnection(false);
  const gone = once(socket, 'disconnect');
  for (let i = 0; i <= BURST + 5; i++) socket.emit(event, data);
  return (await gone)[0];
}

/** Lets a killed client reconnect, and resolves once it is connected again. */
async function reconnect(socket) {
  const back = once(socket, 'connect');
  socket.io.reconnection(true);
  socket.connect();
  await back;
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

test('socket.io: the token in auth, as apps write it (with or without Bearer): the connection gets pushes, acks, rooms and recovery', async () => {
  const alice = uid();
  const bob = uid();
  const room = await createRoom(alice, [bob]);
  const a = await connected(client('/chat', {
    auth: { token: `Bearer ${token(alice)}` },
    reconnection: true,
    reconnectionAttempts: 5,
    reconnectionDelay: 1000,
  }));
  const b = await connected(client('/chat', { auth: { token: token(bob) } }));
  const pushed = once(a, 'order.shipped');
  const res = await push([alice], 'order.shipped', { order: 9 });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await pushed)[0], { order: 9 });
  assert.equal((await a.emitWithAck('room.join', { room_id: room })).room_id, room);
  await b.emitWithAck('room.join', { room_id: room });
  const got = collect(b, 'message');
  for (const body of ['one', 'two']) {
    assert.equal((await a.emitWithAck('room.send', { room_id: room, body })).message.body, body);
  }
  await until(() => got.length === 2, { what: 'two messages through the relay' });
  assert.deepEqual(got.map(([m]) => m.body), ['one', 'two']);
  const own = await connected(client('/', { auth: { token: token(bob) }, query: { room_id: room } }));
  const ownGot = once(own, 'message');
  await a.emitWithAck('room.send', { room_id: room, body: 'three' });
  assert.equal((await ownGot)[0].body, 'three', 'a room connection proved by auth is the room\'s own socket');
  // The hub closes bob's connection (over the frame rate, 4008); the relay hands the close on.
  const seen = collect(b, 'order.shipped');
  assert.equal(await killedByTheServer(b, 'ack', { seq: 0 }), 'transport close');
  const missed = await push([bob], 'order.shipped', { order: 10 });
  assert.equal(missed.status, 200, missed.text);
  await reconnect(b);
  assert.equal(b.recovered, true);
  await until(() => seen.length === 1, { what: 'what bob missed' });
  assert.deepEqual(seen[0][0], { order: 10 });
});

test('socket.io: a wrong, expired or revoked token in auth is a connect_error naming its code, and the client stops retrying', async () => {
  const user = uid();
  const cases = [
    [token(user, { ttl: -120 }), 'token_expired'],
    ['not-a-jwt', 'token_malformed'],
    ['Basic abc', 'token_malformed'],
    [signHS256(claims(user), 'another-secret-that-is-long-enough-to-sign-with'), 'token_invalid'],
  ];
  for (const [tok, code] of cases) {
    const socket = client('/chat', { auth: { token: tok } });
    const [err] = await once(socket, 'connect_error');
    assert.equal(err.message, code, tok);
    assert.equal(err.data.code, code);
    assert.equal(socket.active, false, 'a CONNECT_ERROR stops the reconnection loop');
  }
  const tok = token(user);
  const socket = await connected(client('/chat', { auth: { token: tok } }));
  const gone = once(socket, 'disconnect');
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'password changed', revoke: true });
  assert.equal(res.status, 200, res.text);
  assert.equal((await gone)[0], 'io server disconnect');
  const again = client('/chat', { auth: { token: tok } });
  const [err] = await once(again, 'connect_error');
  assert.equal(err.message, 'token_revoked');
});

test('socket.io: an unknown transport or protocol version gets the error a socket.io server gives', async () => {
  const res = await http('GET', '/socket.io/?EIO=4&transport=flashsocket');
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

test('socket.io: a connection the server kills mid-stream recovers: recovered === true, every missed event once and in order, rooms included', async () => {
  const alice = uid();
  const bob = uid();
  const room = await createRoom(bob, [alice]);
  const socket = await connected(client('/chat', { query: { token: token(alice) } }));
  assert.equal(socket.recovered, false);
  await socket.emitWithAck('room.join', { room_id: room });
  const pushes = collect(socket, 'order.shipped');
  const messages = collect(socket, 'message');
  for (let i = 0; i < 3; i++) await push([alice], 'order.shipped', { i });
  const bobSend = (body) => http('POST', `/v1/rooms/${room}/messages`, { tok: token(bob), body: { body } });
  for (let i = 0; i < 2; i++) assert.equal((await bobSend(`r${i}`)).status, 201);
  await until(() => pushes.length === 3 && messages.length === 2, { what: 'the first events' });
  // The server kills the connection: more frames than the socket's burst closes it with 4008.
  // The client waits to reconnect until the events it will miss exist.
  assert.equal(await killedByTheServer(socket, 'ack', { seq: 0 }), 'transport close');
  for (let i = 3; i < 6; i++) await push([alice], 'order.shipped', { i });
  for (let i = 2; i < 4; i++) assert.equal((await bobSend(`r${i}`)).status, 201);
  await reconnect(socket);
  assert.equal(socket.recovered, true);
  await until(() => pushes.length === 6 && messages.length === 4, { what: 'the missed events' });
  assert.deepEqual(pushes.map(([d]) => d.i), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(messages.map(([m]) => m.body), ['r0', 'r1', 'r2', 'r3']);
  assert.ok(messages.every(([m]) => m.room_id === room));
  // Still in the room after the recovery: a new message arrives once.
  assert.equal((await bobSend('after')).status, 201);
  await until(() => messages.length === 5, { what: 'the message after recovery' });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(messages.map(([m]) => m.body), ['r0', 'r1', 'r2', 'r3', 'after']);
});

test('socket.io: an offset the gateway cannot replay (or a forged one) is a clean start: recovered === false', async () => {
  const user = uid();
  const forged = client('/', { query: { token: token(user) }, auth: { pid: 'made-up', offset: '999999' } });
  await connected(forged);
  assert.equal(forged.recovered, false);
  const garbage = client('/', { query: { token: token(user) }, auth: { pid: 'x', offset: 'a,b=c' } });
  await connected(garbage);
  assert.equal(garbage.recovered, false);
});

test('socket.io: a forced disconnect is io server disconnect, the client does not reconnect, and the revoked token is refused', async () => {
  const user = uid();
  const tok = token(user);
  const socket = await connected(client('/chat', { query: { token: tok } }));
  const gone = once(socket, 'disconnect');
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'password changed', revoke: true });
  assert.equal(res.status, 200, res.text);
  const [reason] = await gone;
  assert.equal(reason, 'io server disconnect');
  assert.equal(socket.active, false);
  const again = client('/chat', { query: { token: tok } });
  const [err] = await once(again, 'connect_error');
  assert.equal(err.message, 'token_revoked');
});

test('socket.io: the server pings on the configured interval and closes a client that stops answering', async () => {
  const user = uid();
  const ws = new WebSocket(`${WS_BASE}/socket.io/?EIO=4&transport=websocket&token=${token(user)}`);
  const frames = [];
  ws.on('message', (data) => frames.push(String(data)));
  await once(ws, 'open');
  await until(() => frames.length > 0, { what: 'the open packet' });
  const open = JSON.parse(frames[0].slice(1));
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.deepEqual(open.upgrades, []);
  ws.send('40');
  const started = Date.now();
  const [code] = await once(ws, 'close');
  const waited = Date.now() - started;
  assert.ok(frames.includes('2'), 'the server pinged');
  assert.equal(code, 1000);
  assert.ok(waited <= 2 * PING_INTERVAL + PING_TIMEOUT + 2000, `closed after ${waited} ms`);
});

test('socket.io: a polite client stays connected across pings, and notices a server that went silent', async () => {
  const user = uid();
  // A TCP proxy that can stop passing the server's bytes on: the server looks dead to the client.
  let blackhole = false;
  const pipes = new Set();
  const proxy = net.createServer((downstream) => {
    const url = new URL(BASE);
    const upstream = net.connect(Number(url.port), url.hostname);
    pipes.add(downstream).add(upstream);
    downstream.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => { if (!blackhole) downstream.write(d); });
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
    downstream.on('close', () => upstream.destroy());
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const socket = io(`http://127.0.0.1:${proxy.address().port}/`, { transports: ['websocket'], forceNew: true, reconnection: false, query: { token: token(user) } });
    clients.add(socket);
    await connected(socket);
    let pings = 0;
    socket.io.on('ping', () => { pings += 1; });
    await until(() => pings >= 2, { timeoutMs: 3 * PING_INTERVAL + 2000, what: 'two pings' });
    assert.ok(socket.connected);
    blackhole = true;
    const started = Date.now();
    const [reason] = await once(socket, 'disconnect');
    assert.equal(reason, 'ping timeout');
    assert.ok(Date.now() - started <= PING_INTERVAL + PING_TIMEOUT + 1000);
  } finally {
    for (const pipe of pipes) pipe.destroy();
    proxy.close();
  }
});

test('socket.io: an event the gateway does not know goes to the backend hook as the verified user, and its answer is the ack', async () => {
  const user = uid();
  hook.setHandler((call) => {
    if (call.event === 'fail') return { status: 409, body: { error: { code: 'room_full', message: 'no seats' } } };
    if (call.event === 'slow') return { delayMs: 2000, body: { late: true } };
    return { body: { echoed: call.args[0], by: call.user_id, nsp: call.namespace } };
  });
  const socket = await connected(client('/chat', { query: { token: token(user) } }));
  const answer = await socket.emitWithAck('send-message', { text: 'hi', user_id: 'someone-else' });
  assert.deepEqual(answer, { echoed: { text: 'hi', user_id: 'someone-else' }, by: user, nsp: '/chat' });
  const call = hook.calls.findLast((c) => c.kind === 'event');
  assert.equal(call.user_id, user);
  assert.equal(call.socket_id, socket.id, 'the hook names the socket as the client knows it');
  assert.deepEqual(call.args, [{ text: 'hi', user_id: 'someone-else' }]);
  assert.equal((await socket.emitWithAck('fail', {})).error.code, 'room_full');
  assert.equal((await socket.emitWithAck('slow', {})).error.code, 'hook_timeout');
  assert.equal(hook.rejected.length, 0);
});

test('socket.io: the hook POST carries each argument once: a 40 KB argument makes a body under 60 KB', async () => {
  hook.setHandler((call) => ({ body: { bytes: Buffer.byteLength(call.raw) } }));
  const socket = await connected(client('/', { query: { token: token(uid()) } }));
  const large = { text: 'x'.repeat(40_000) };
  const answer = await socket.emitWithAck('upload', large, 'small');
  const call = hook.calls.findLast((c) => c.kind === 'event');
  assert.equal(call.event, 'upload');
  assert.equal(answer.bytes, Buffer.byteLength(call.raw));
  assert.ok(answer.bytes > 40_000 && answer.bytes < 60_000, `the body is one copy of the argument and an envelope: ${answer.bytes} bytes`);
  assert.deepEqual(call.args, [large, 'small'], 'every argument, in order');
  assert.equal(call.data, null, 'data is socket.data (none set), not a second copy of the first argument');
});

test('socket.io: the Origin rule holds, a token refreshed in band keeps the connection and its rooms, an expired one ends it', async () => {
  const user = uid();
  const evil = client('/', { query: { token: token(user) }, extraHeaders: { origin: 'https://evil.test' }, reconnection: false });
  const [err] = await once(evil, 'connect_error');
  assert.match(err.message, /websocket error/);
  await connected(client('/', { query: { token: token(user) }, extraHeaders: { origin: 'https://allowed.test' } }));

  const owner = uid();
  const room = await createRoom(owner, [user]);
  const short = client('/', { query: { token: token(user, { ttl: 3 }) } });
  await connected(short);
  await short.emitWithAck('room.join', { room_id: room });
  const refreshed = await short.emitWithAck('auth', { token: token(user, { ttl: 600 }) });
  assert.ok(refreshed.expires_at > Date.now() / 1000 + 500);
  const messages = collect(short, 'message');
  const left = collect(short, 'room.left');
  // Past the first token's expiry: the connection and its room are still there.
  await new Promise((r) => setTimeout(r, 4500));
  assert.ok(short.connected);
  assert.equal((await http('POST', `/v1/rooms/${room}/messages`, { tok: token(owner), body: { body: 'still here' } })).status, 201);
  await until(() => messages.length === 1, { what: 'a room message after the refresh' });
  assert.deepEqual(left, []);

  const expiring = client('/', { query: { token: token(user, { ttl: 2 }) }, reconnection: false });
  await connected(expiring);
  const [expired] = await once(expiring, 'token.expired');
  assert.ok(expired.expires_at <= Date.now() / 1000 + 1);
  const [reason] = await once(expiring, 'disconnect');
  assert.equal(reason, 'transport close');
});

test('socket.io: over the socket cap the oldest connection is ended with io server disconnect, and does not come back', async () => {
  const user = uid();
  const MAX = Number(process.env.SB_MAX_SOCKETS_PER_USER);
  const sockets = [];
  for (let i = 0; i < MAX; i++) sockets.push(await connected(client('/', { query: { token: token(user) } })));
  const gone = once(sockets[0], 'disconnect');
  sockets.push(await connected(client('/', { query: { token: token(user) } })));
  const [reason] = await gone;
  assert.equal(reason, 'io server disconnect');
  assert.equal(sockets[0].active, false);
  assert.ok(sockets.slice(1).every((s) => s.connected));
});

test('socket.io: a connection to one room (room_id in the query) is the room\'s own socket: ready, acks, events in order with room_id and seq offsets', async () => {
  const alice = uid();
  const bob = uid();
  const room = await createRoom(alice, [bob]);
  const a = client('/', { query: { token: token(alice), room_id: room } });
  const readyA = once(a, 'ready');
  await connected(a);
  const [ready] = await readyA;
  assert.equal(ready.room_id, room);
  assert.equal(ready.user_id, alice);
  const b = client('/chat', { query: { token: token(bob), room_id: room } });
  const readyB = once(b, 'ready');
  await connected(b);
  await readyB;
  const messages = collect(b, 'message');
  for (let i = 0; i < 4; i++) {
    const ack = await a.emitWithAck('room.send', { room_id: room, body: `d${i}` });
    assert.equal(ack.message.body, `d${i}`);
  }
  await until(() => messages.length === 4, { what: 'four messages' });
  assert.deepEqual(messages.map(([m]) => m.body), ['d0', 'd1', 'd2', 'd3']);
  assert.ok(messages.every(([m, offset]) => m.room_id === room && offset === String(m.seq)));
  const typing = once(b, 'typing');
  await a.emitWithAck('room.typing', { typing: true });
  assert.equal((await typing)[0].room_id, room);
  const read = await b.emitWithAck('room.read', { seq: messages.at(-1)[0].seq });
  assert.equal(read.unread, 0);
  const elsewhere = await a.emitWithAck('room.send', { room_id: 'other', body: 'x' });
  assert.equal(elsewhere.error.code, 'validation');
  // The room pings its own Socket.IO sockets too.
  await once(a.io, 'ping');
  assert.ok(a.connected);
});

test('socket.io: a room connection refuses non-members in band, recovers missed messages, and ends on removal with io server disconnect', async () => {
  const alice = uid();
  const bob = uid();
  const stranger = uid();
  const room = await createRoom(alice, [bob]);
  const outsider = client('/', { query: { token: token(stranger), room_id: room } });
  const [err] = await once(outsider, 'connect_error');
  assert.equal(err.message, 'not_a_member');

  const b = client('/', { query: { token: token(bob), room_id: room } });
  await connected(b);
  const messages = collect(b, 'message');
  const send = (body) => http('POST', `/v1/rooms/${room}/messages`, { tok: token(alice), body: { body } });
  assert.equal((await send('before')).status, 201);
  await until(() => messages.length === 1, { what: 'the first message' });
  assert.equal(await killedByTheServer(b, 'room.typing', { typing: false }), 'transport close');
  for (const body of ['missed1', 'missed2']) assert.equal((await send(body)).status, 201);
  await reconnect(b);
  assert.equal(b.recovered, true);
  await until(() => messages.length === 3, { what: 'the missed messages' });
  assert.deepEqual(messages.map(([m]) => m.body), ['before', 'missed1', 'missed2']);

  const removed = once(b, 'disconnect');
  const res = await http('DELETE', `/v1/rooms/${room}/members/${bob}`, { tok: token(alice) });
  assert.ok(res.status < 300, res.text);
  assert.equal((await removed)[0], 'io server disconnect');
  assert.equal(b.active, false);
});
