// Issue #16: what a hostile Socket.IO client tried, each attack made by a raw client speaking
// Engine.IO and Socket.IO packets itself: namespaces multiplying deliveries, recovery offsets
// naming rooms to enter, namespaces disconnected and connected again for free rejoins, and the
// Worker's refusal sockets used as an echo server.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { WS_BASE, createRoom, http, internal, push, token, uid, until } from './helpers.mjs';

const MAX_NAMESPACES = Number(process.env.SB_SOCKETIO_MAX_NAMESPACES);
const MAX_PENDING = Number(process.env.SB_MAX_PENDING_PER_ADDRESS);
const BURST = Number(process.env.SB_RATE_LIMIT_BURST);
const CONNECT_TIMEOUT = Number(process.env.SB_SOCKETIO_CONNECT_TIMEOUT_MS);
const MAX_FRAME = 64 * 1024;

const opened = new Set();
after(() => {
  for (const ws of opened) ws.terminate();
});

/**
 * A raw Engine.IO socket: every text frame it receives is kept in order; `next(pred)` waits for
 * the first unread one matching `pred` (a prefix or a function) and takes it.
 */
async function raw(query) {
  const ws = new WebSocket(`${WS_BASE}/socket.io/?EIO=4&transport=websocket&${new URLSearchParams(query)}`);
  opened.add(ws);
  ws.on('error', () => {});
  const sio = { ws, frames: [], waiters: [] };
  sio.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('message', (data) => {
    sio.frames.push(String(data));
    for (const waiter of [...sio.waiters]) waiter();
  });
  sio.send = (text) => ws.send(text);
  sio.next = (pred, timeoutMs = 10_000) => {
    const test = typeof pred === 'string' ? (f) => f.startsWith(pred) : pred;
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = sio.frames.findIndex(test);
        if (index < 0) return false;
        sio.waiters.splice(sio.waiters.indexOf(check), 1);
        clearTimeout(timer);
        resolve(sio.frames.splice(index, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => {
        sio.waiters.splice(sio.waiters.indexOf(check), 1);
        reject(new Error(`no frame matching ${pred} (unread: ${sio.frames.join(' | ') || 'none'})`));
      }, timeoutMs);
      sio.waiters.push(check);
      check();
    });
  };
  sio.count = (pred) => sio.frames.filter(pred).length;
  await once(ws, 'open');
  await sio.next('0');
  return sio;
}

/** An upgrade the gateway answers with an HTTP status: `{status, body}`. */
function refusedUpgrade(query) {
  const ws = new WebSocket(`${WS_BASE}/socket.io/?EIO=4&transport=websocket&${new URLSearchParams(query)}`);
  opened.add(ws);
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    ws.on('open', () => reject(new Error('the upgrade was accepted')));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    });
  });
}

/** A packet's namespace prefix: nothing for `/`. */
const nspOf = (nsp) => (nsp === '/' ? '' : `${nsp},`);

/** CONNECTs `nsp` and resolves with the answer: `{sid, pid}` or `{error: {message, data}}`. */
async function connectNsp(sio, nsp, auth) {
  sio.send(`40${nspOf(nsp)}${auth ? JSON.stringify(auth) : ''}`);
  const answer = await sio.next((f) => f.startsWith(`40${nspOf(nsp)}{`) || f.startsWith(`44${nspOf(nsp)}{`));
  const body = JSON.parse(answer.slice(2 + nspOf(nsp).length));
  return answer.startsWith('44') ? { error: body } : body;
}

/** Emits `[event, data]` on `nsp` with an ack id and resolves with the ack's argument. */
async function emitWithAck(sio, nsp, id, event, data) {
  sio.send(`42${nspOf(nsp)}${id}${JSON.stringify([event, data])}`);
  const ack = await sio.next(`43${nspOf(nsp)}${id}[`);
  return JSON.parse(ack.slice(2 + nspOf(nsp).length + String(id).length))[0];
}

/** Frames that are EVENT `event` (on any namespace). */
const eventFrames = (sio, event) => sio.frames.filter((f) => f.startsWith('42') && f.includes(`["${event}"`));

/** How many sockets `room` holds, over all its objects (only `user` connects to these rooms). */
async function socketsInRoom(room) {
  const res = await internal('GET', `/internal/v1/rooms/${room}/stats`);
  assert.equal(res.status, 200, res.text);
  return res.body.sockets.total;
}

test('socketio-attacks: a connection connects at most SOCKETIO_MAX_NAMESPACES namespaces, and its stream, broadcasts and bad_frame answers arrive once, on the first', async () => {
  const user = uid();
  const sio = await raw({ token: token(user) });
  const names = ['/', ...Array.from({ length: MAX_NAMESPACES - 1 }, (_, i) => `/n${i}`)];
  for (const nsp of names) assert.ok((await connectNsp(sio, nsp)).sid, `CONNECT ${nsp}`);
  const refused = await connectNsp(sio, '/one-too-many');
  assert.equal(refused.error.message, 'too_many_namespaces');
  assert.equal(refused.error.data.code, 'too_many_namespaces');
  // A namespace already connected answers again, and costs nothing more.
  assert.ok((await connectNsp(sio, '/n0')).sid);

  const res = await push([user], 'order.shipped', { n: 1 });
  assert.equal(res.status, 200, res.text);
  await sio.next((f) => f.startsWith('42["order.shipped"'));
  const told = await internal('POST', '/internal/v1/broadcast', { event: 'maintenance', data: { at: 1 } });
  assert.equal(told.status, 200, told.text);
  await sio.next((f) => f.startsWith('42["maintenance"'));
  sio.send('4not-a-packet');
  await sio.next((f) => f.startsWith('42["error"'));
  const marker = await push([user], 'marker', {});
  assert.equal(marker.status, 200, marker.text);
  await sio.next((f) => f.startsWith('42["marker"'));
  assert.equal(eventFrames(sio, 'order.shipped').length, 0, 'the push arrived on one namespace only');
  assert.equal(eventFrames(sio, 'maintenance').length, 0, 'the broadcast arrived on one namespace only');
  assert.equal(eventFrames(sio, 'error').length, 0, 'bad_frame was answered once');
});

test('socketio-attacks: a room connection gets each room event once, on its first namespace, however many it opens', async () => {
  const [alice, bob] = [uid(), uid()];
  const room = await createRoom(alice, [bob]);
  const sio = await raw({ token: token(bob), room_id: room });
  for (const nsp of ['/a', '/b', '/c']) assert.ok((await connectNsp(sio, nsp)).sid);
  const res = await http('POST', `/v1/rooms/${room}/messages`, { tok: token(alice), body: { body: 'once' } });
  assert.equal(res.status, 201, res.text);
  await sio.next((f) => f.startsWith('42/a,["message"'));
  const again = await http('POST', `/v1/rooms/${room}/messages`, { tok: token(alice), body: { body: 'marker' } });
  assert.equal(again.status, 201, again.text);
  await sio.next((f) => f.startsWith('42/a,["message"') && f.includes('marker'));
  assert.equal(eventFrames(sio, 'message').length, 0, 'no copy on /b or /c');
});

test('socketio-attacks: a recovery offset cannot make the hub enter rooms the connection never joined', async () => {
  const [owner, user] = [uid(), uid()];
  const rooms = [await createRoom(owner, [user]), await createRoom(owner, [user])];
  const other = await createRoom(owner, [user]);
  const sio = await raw({ token: token(user) });
  const offset = `0,${rooms.map((r) => `${r}=0`).join(',')}`;
  const answer = await connectNsp(sio, '/', { pid: 'made-up', offset });
  assert.ok(answer.sid);
  // A join made after the CONNECT is acked once its relay is up: any rejoin the CONNECT started
  // would have been started before it.
  const joined = await emitWithAck(sio, '/', 1, 'room.join', { room_id: other });
  assert.equal(joined.room_id, other);
  assert.equal(await socketsInRoom(other), 1);
  for (const room of rooms) assert.equal(await socketsInRoom(room), 0, `no socket in ${room}`);
});

test('socketio-attacks: a namespace the client disconnected is a clean start when it connects again: its rooms are not rejoined', async () => {
  const [owner, user] = [uid(), uid()];
  const room = await createRoom(owner, [user]);
  const probe = await createRoom(owner, [user]);
  const sio = await raw({ token: token(user) });
  const first = await connectNsp(sio, '/a');
  const joined = await emitWithAck(sio, '/a', 1, 'room.join', { room_id: room });
  assert.equal(joined.room_id, room);
  assert.equal(await socketsInRoom(room), 1);
  sio.send('41/a,');
  await until(async () => (await socketsInRoom(room)) === 0, { what: 'the relay closed with the namespace' });
  const again = await connectNsp(sio, '/a', { pid: first.pid, offset: `0,${room}=${joined.seq}` });
  assert.ok(again.sid);
  const probed = await emitWithAck(sio, '/a', 2, 'room.join', { room_id: probe });
  assert.equal(probed.room_id, probe);
  assert.equal(await socketsInRoom(room), 0, 'the disconnected namespace did not rejoin its room');
});

test('socketio-attacks: a refused handshake answers each namespace once, keeps the frame rate, and closes a frame over MAX_FRAME_BYTES', async () => {
  const echo = await raw({ token: 'not-a-jwt' });
  for (let i = 0; i < 2 * BURST; i++) echo.send('40');
  assert.equal(await echo.closed, 4008);
  assert.equal(echo.count((f) => f.startsWith('44')), 1, 'one CONNECT_ERROR for /');

  const big = await raw({ token: 'not-a-jwt' });
  big.send(`40/x,${JSON.stringify({ pad: 'x'.repeat(2 * MAX_FRAME) })}`);
  assert.equal(await big.closed, 1009);
  assert.equal(big.count((f) => f.startsWith('44')), 0, 'the big frame was not parsed');
});

test('socketio-attacks: one address holds at most MAX_PENDING_PER_ADDRESS refused sockets; the next upgrade is a plain 429', async () => {
  const held = [];
  for (let i = 0; i < MAX_PENDING; i++) held.push(await raw({ token: 'not-a-jwt' }));
  const res = await refusedUpgrade({ token: 'not-a-jwt' });
  assert.equal(res.status, 429);
  assert.equal(res.body.error.code, 'too_many_pending');
  const letGo = held.pop();
  letGo.ws.close();
  await letGo.closed;
  await until(async () => {
    try {
      held.push(await raw({ token: 'not-a-jwt' }));
      return true;
    } catch {
      return false;
    }
  }, { what: 'a refused socket let go frees its place' });
  for (const sio of held) sio.ws.close();
  await Promise.all(held.map((sio) => sio.closed));
});

test('socketio-attacks: an upgrade without a token waits in the Worker: bounded per address, by the frame rate and by SOCKETIO_CONNECT_TIMEOUT_MS', async () => {
  const held = [];
  for (let i = 0; i < MAX_PENDING; i++) held.push(await raw({}));
  const res = await refusedUpgrade({});
  assert.equal(res.status, 429);
  assert.equal(res.body.error.code, 'too_many_pending');
  for (const sio of held) sio.ws.close();
  await Promise.all(held.map((sio) => sio.closed));

  const flood = await raw({});
  for (let i = 0; i <= BURST + 5; i++) flood.send('3');
  assert.equal(await flood.closed, 4008);

  const silent = await raw({});
  const started = Date.now();
  assert.equal(await silent.closed, 4003);
  assert.ok(Date.now() - started >= CONNECT_TIMEOUT - 100, 'closed at the deadline, not before');

  const noToken = await raw({});
  const refused = await connectNsp(noToken, '/chat', { pid: 'x' });
  assert.equal(refused.error.message, 'token_missing');
  noToken.ws.close();
});

test('socketio-attacks: the token in the first CONNECT proves the connection; another namespace with another user\'s token is refused', async () => {
  const user = uid();
  const other = uid();
  const sio = await raw({});
  assert.ok((await connectNsp(sio, '/chat', { token: token(user) })).sid);
  const spoof = await connectNsp(sio, '/admin', { token: `Bearer ${token(other)}` });
  assert.equal(spoof.error.message, 'forbidden');
  const pushed = push([user], 'order.shipped', { order: 1 });
  assert.equal((await pushed).status, 200);
  const frame = await sio.next((f) => f.startsWith('42/chat,') && f.includes('order.shipped'));
  assert.match(frame, /"order":1/);
  sio.ws.close();
});

test('socketio-attacks: a forced disconnect still ends every namespace with io server disconnect', async () => {
  const user = uid();
  const sio = await raw({ token: token(user) });
  for (const nsp of ['/', '/chat']) assert.ok((await connectNsp(sio, nsp)).sid);
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'bye' });
  assert.equal(res.status, 200, res.text);
  await sio.next('41');
  await sio.next('41/chat,');
  assert.equal(await sio.closed, 4003);
});
