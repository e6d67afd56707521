// Per-user rates across isolates (the platform's Rate Limiting binding, src/quota.rs): messages
// sent over REST and sockets together, REST calls, and connect attempts, each refused with
// `rate_limited` once a user is over the limit — whichever socket, room or route they use — while
// other users are untouched.
//
// These run on a gateway of their own with small limits (the suite's gateway has generous ones,
// since other tests send hundreds of messages from one user). The platform counts in fixed
// 10-second windows, so each test starts at the beginning of a window and finishes well within
// it; waiting for the next window is waiting on the clock the limiter counts by.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { open, uid } from './helpers.mjs';
import { ownGateway } from '../server.mjs';

const RATES = { SEND_RATE: 20, REST_RATE: 30, CONNECT_RATE: 10 };
const WINDOW_MS = 10_000;
const RETRY_AFTER = '10';

let gw;
let child;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switchboard-quotas-'));
  gw = await ownGateway(dir, RATES);
  child = await gw.start(1);
});

after(() => {
  child?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves at the start of the limiter's next window (and asserts the test fits in it). */
async function windowStart() {
  await new Promise((resolve) => setTimeout(resolve, WINDOW_MS - (Date.now() % WINDOW_MS) + 20));
  const window = Math.floor(Date.now() / WINDOW_MS);
  return () => assert.equal(Math.floor(Date.now() / WINDOW_MS), window, 'the test ran within one window');
}

const socket = (path, user) => open(path, gw.tok(user), { base: gw.base });
const dm = (from, to, body) => gw.call('POST', '/v1/messages', { to: [to], body }, gw.tok(from));

function assertRefusedHttp(res) {
  assert.equal(res.status, 429);
  assert.equal(res.body.error.code, 'rate_limited');
}

test('direct messages over REST and the user socket share one send rate; the next window admits again', async () => {
  const [alice, bob, carol] = [uid('qa'), uid('qb'), uid('qc')];
  const user = await socket('/v1/connect', alice);
  await user.next('ready');
  const inWindow = await windowStart();
  let sent = 0;
  for (; sent < RATES.SEND_RATE; sent++) {
    if (sent % 2 === 0) {
      assert.equal((await dm(alice, bob, `rest ${sent}`)).status, 201);
    } else {
      const answer = await user.request('message.send', { to: [bob], body: `socket ${sent}` });
      assert.equal(answer.event, 'ack', JSON.stringify(answer));
    }
  }
  const overRest = await fetch(`${gw.base}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.tok(alice)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: [bob], body: 'one too many' }),
  });
  assertRefusedHttp({ status: overRest.status, body: await overRest.json() });
  assert.equal(overRest.headers.get('retry-after'), RETRY_AFTER);
  const overSocket = await user.request('message.send', { to: [bob], body: 'one too many' });
  assert.equal(overSocket.event, 'error');
  assert.equal(overSocket.data.code, 'rate_limited');
  assert.equal((await dm(carol, bob, 'another user is not limited')).status, 201);
  inWindow();

  const received = await gw.call('GET', '/v1/messages/received?limit=100', undefined, gw.tok(bob));
  const fromAlice = received.body.messages.filter((m) => m.sender_id === alice);
  assert.equal(fromAlice.length, RATES.SEND_RATE, 'every refused message is absent, every accepted one stored');

  await windowStart();
  assert.equal((await dm(alice, bob, 'a new window')).status, 201);
  user.close();
});

test('room sends count per user across rooms, refused ones answer rate_limited, the rest keep their order', async () => {
  const [alice, bob] = [uid('qr'), uid('qs')];
  for (const id of ['a', 'b']) {
    const made = await gw.call('POST', '/internal/v1/rooms', { id: `${alice}-${id}`, name: id, owner: alice, members: [bob] }, gw.internalToken);
    assert.equal(made.status, 201);
  }
  const roomA = await socket(`/v1/rooms/${alice}-a/connect`, alice);
  const roomB = await socket(`/v1/rooms/${alice}-b/connect`, alice);
  await Promise.all([roomA.next('ready'), roomB.next('ready')]);
  const inWindow = await windowStart();
  const half = RATES.SEND_RATE / 2;
  const ids = Array.from({ length: half + 5 }, () => randomUUID());
  // Pipelined: every frame is on the wire before the first answer.
  ids.forEach((id, i) => roomA.send({ event: 'send', id, data: { type: 'text', body: `a${i}` } }));
  const answersA = [];
  for (const id of ids) answersA.push(await roomA.next((f) => f.id === id && (f.event === 'ack' || f.event === 'error')));
  assert.ok(answersA.every((f) => f.event === 'ack'), 'the first room takes all of these (under the limit)');
  assert.deepEqual(answersA.map((f) => f.data.message.body), ids.map((_, i) => `a${i}`));
  const seqs = answersA.map((f) => f.data.message.seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'stored in the order sent');

  const answersB = [];
  for (let i = 0; i < RATES.SEND_RATE; i++) answersB.push(await roomB.request('send', { type: 'text', body: `b${i}` }));
  const accepted = answersB.filter((f) => f.event === 'ack').length;
  assert.equal(accepted, RATES.SEND_RATE - ids.length, 'the second room admits only what is left of the user\'s rate');
  for (const refused of answersB.slice(accepted)) {
    assert.equal(refused.event, 'error');
    assert.equal(refused.data.code, 'rate_limited');
  }
  const bobsSend = await socket(`/v1/rooms/${alice}-b/connect`, bob);
  await bobsSend.next('ready');
  assert.equal((await bobsSend.request('send', { type: 'text', body: 'bob is not limited' })).event, 'ack');
  inWindow();
  for (const client of [roomA, roomB, bobsSend]) client.close();
});

test('REST calls over the rate answer 429 with Retry-After', async () => {
  const [alice, bob] = [uid('qt'), uid('qu')];
  const inWindow = await windowStart();
  for (let i = 0; i < RATES.REST_RATE; i++) assert.equal((await gw.call('GET', '/v1/me', undefined, gw.tok(alice))).status, 200);
  const over = await fetch(`${gw.base}/v1/me`, { headers: { authorization: `Bearer ${gw.tok(alice)}` } });
  assertRefusedHttp({ status: over.status, body: await over.json() });
  assert.equal(over.headers.get('retry-after'), RETRY_AFTER);
  assert.equal((await gw.call('GET', '/v1/me', undefined, gw.tok(bob))).status, 200);
  inWindow();
});

test('connect attempts over the rate are refused with 429 before the upgrade', async () => {
  const [alice, bob] = [uid('qv'), uid('qw')];
  const inWindow = await windowStart();
  const sockets = [];
  for (let i = 0; i < RATES.CONNECT_RATE; i++) sockets.push(await socket('/v1/connect', alice));
  const refusal = await socket('/v1/connect', alice).then((c) => { c.close(); return null; }, (err) => err);
  assert.ok(refusal, 'the upgrade over the rate was refused');
  assert.equal(refusal.status, 429);
  assert.equal(refusal.body.error.code, 'rate_limited');
  sockets.push(await socket('/v1/connect', bob));
  inWindow();
  for (const client of sockets) client.close();
});

test('room admissions over Socket.IO count against the connect rate: room.join is a room connect', async () => {
  const [alice, bob] = [uid('qj'), uid('qk')];
  const roomId = `${alice}-joins`;
  const made = await gw.call('POST', '/internal/v1/rooms', { id: roomId, name: 'j', owner: bob, members: [alice] }, gw.internalToken);
  assert.equal(made.status, 201);
  const inWindow = await windowStart();
  const sio = io(gw.base, { transports: ['websocket'], forceNew: true, reconnection: false, query: { token: gw.tok(alice) } });
  await new Promise((resolve, reject) => { sio.once('connect', resolve); sio.once('connect_error', reject); });
  // The connection itself was one connect; every join is one more, however soon it is left.
  let joins = 0;
  for (;;) {
    const joined = await sio.emitWithAck('room.join', { room_id: roomId });
    if (joined.error) {
      assert.equal(joined.error.code, 'rate_limited');
      break;
    }
    joins += 1;
    assert.ok(joins < RATES.CONNECT_RATE, 'a join over the rate was admitted');
    const left = await sio.emitWithAck('room.leave', { room_id: roomId });
    assert.equal(left.left, true);
  }
  assert.equal(joins, RATES.CONNECT_RATE - 1);
  const raw = await socket(`/v1/rooms/${roomId}/connect`, alice).then((c) => { c.close(); return null; }, (err) => err);
  assert.equal(raw?.status, 429, 'a room connect after them is over the rate too');
  inWindow();
  sio.disconnect();
});

test('a Socket.IO upgrade over the connect rate is a plain 429, and no socket', async () => {
  const alice = uid('ql');
  const inWindow = await windowStart();
  const sockets = [];
  for (let i = 0; i < RATES.CONNECT_RATE; i++) sockets.push(await socket('/v1/connect', alice));
  const refusal = await socket(`/socket.io/?EIO=4&transport=websocket`, alice).then((c) => { c.close(); return null; }, (err) => err);
  assert.equal(refusal?.status, 429);
  assert.equal(refusal.body.error.code, 'rate_limited');
  inWindow();
  for (const client of sockets) client.close();
});

test('edits and deletes count against the send rate like sends, over the socket and REST', async () => {
  const [alice, bob] = [uid('qe'), uid('qf')];
  const roomId = `${alice}-edits`;
  const made = await gw.call('POST', '/internal/v1/rooms', { id: roomId, name: 'e', owner: alice, members: [bob] }, gw.internalToken);
  assert.equal(made.status, 201);
  const room = await socket(`/v1/rooms/${roomId}/connect`, alice);
  await room.next('ready');
  const inWindow = await windowStart();
  const sent = await room.request('send', { type: 'text', body: 'v0' });
  assert.equal(sent.event, 'ack');
  const id = sent.data.message.id;
  // An edit flood: one more than the rest of the window's allowance.
  const answers = [];
  for (let i = 1; i <= RATES.SEND_RATE; i++) answers.push(await room.request('edit', { id, body: `v${i}` }));
  const accepted = answers.filter((f) => f.event === 'ack').length;
  assert.equal(accepted, RATES.SEND_RATE - 1, 'the send took one of the allowance; edits take the rest');
  for (const refused of answers.slice(accepted)) assert.equal(refused.data.code, 'rate_limited');
  const restEdit = await gw.call('PATCH', `/v1/rooms/${roomId}/messages/${id}`, { body: 'over REST' }, gw.tok(alice));
  assertRefusedHttp(restEdit);
  const restDelete = await gw.call('DELETE', `/v1/rooms/${roomId}/messages/${id}`, undefined, gw.tok(alice));
  assertRefusedHttp(restDelete);
  const socketDelete = await room.request('delete', { id });
  assert.equal(socketDelete.data.code, 'rate_limited');
  inWindow();
  room.close();
});
