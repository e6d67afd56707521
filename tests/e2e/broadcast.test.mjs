// Issue #13: a backend's broadcast to every socket open now, through the sharded directory of
// who is online (src/hubs/directory.rs), and GET /internal/v1/online.
//
// The directory is shared by every test of the suite's gateway, so each test here starts from
// an empty directory (`settled`: a broadcast drops hubs whose sockets are gone) and closes its
// sockets before it ends. The restart test runs a gateway of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { connect } from '../../client/dist/switchboard.js';
import { BASE, connectUser, http, internal, push, token, uid, until } from './helpers.mjs';
import { GENEROUS_RATES, ownGateway } from '../server.mjs';

const broadcast = (body, opts) => internal('POST', '/internal/v1/broadcast', body, opts);
const online = (query = '') => internal('GET', `/internal/v1/online${query}`);

/** Waits until the directory lists nobody; a broadcast drops hubs whose sockets are gone. */
async function settled() {
  await until(async () => {
    const res = await online();
    if (res.body.count === 0) return true;
    await broadcast({ event: 'test.settle' });
    return false;
  }, { timeoutMs: 20_000, everyMs: 200, what: 'an empty directory' });
}

/** Every user listed, following next_cursor with pages of `limit`. */
async function listAll(limit) {
  const users = [];
  let cursor = null;
  let pages = 0;
  do {
    const res = await online(`?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.users.length <= limit);
    users.push(...res.body.users);
    cursor = res.body.next_cursor;
    pages++;
  } while (cursor);
  return { users, pages };
}

/** A socket.io connection with namespaces `/` and `/chat` (one socket, forceNew), connected. */
async function socketIo(user) {
  const main = io(BASE, { transports: ['websocket'], forceNew: true, reconnection: false, query: { token: token(user) } });
  const chat = main.io.socket('/chat');
  for (const socket of [main, chat]) {
    await new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
  }
  return { main, chat, close: () => main.io.engine.close() };
}

/** Collects every `event` a socket.io socket receives, with its arguments. */
function collect(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args));
  return seen;
}

test('a broadcast reaches every open socket of several users exactly once, raw and socket.io', async (t) => {
  await settled();
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const raw = [await connectUser(alice), await connectUser(alice), await connectUser(bob)];
  const sio = await socketIo(carol);
  t.after(sio.close);
  const seenMain = collect(sio.main, 'maintenance.soon');
  const seenChat = collect(sio.chat, 'maintenance.soon');
  await until(async () => (await online()).body.count === 3, { what: 'three users listed' });

  const res = await broadcast({ event: 'maintenance.soon', data: { at: 5 } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.body, { hubs: 3, devices: 4, duplicate: false });
  for (const client of raw) {
    assert.deepEqual(await client.next('maintenance.soon'), { event: 'maintenance.soon', data: { at: 5 }, broadcast: true });
  }
  await until(() => seenMain.length === 1, { what: 'the socket.io connection got it' });
  assert.deepEqual(seenMain[0], [{ at: 5 }], 'an EVENT without a recovery offset, on the main namespace');

  // Exactly once: a push after it is the next thing every socket sees.
  const markers = collect(sio.main, 'marker.after');
  const marker = await push([alice, bob, carol], 'marker.after');
  assert.equal(marker.status, 200, marker.text);
  for (const client of raw) {
    await client.next('marker.after');
    assert.equal(client.unread('maintenance.soon').length, 0);
  }
  await until(() => markers.length === 1, { what: 'the marker on socket.io' });
  assert.equal(seenMain.length, 1);
  assert.equal(seenChat.length, 0, 'a connection gets a broadcast once, on its first namespace');

  await Promise.all(raw.map((c) => c.close()));
  sio.close();
  await until(async () => (await online()).body.count === 0, { what: 'every user unlisted after their sockets closed' });
});

test('broadcast bodies are validated as pushes are: reserved names, shapes, sizes, the token', async () => {
  const reserved = await broadcast({ event: 'message', data: {} });
  assert.equal(reserved.status, 400);
  const asPush = await push(['someone'], 'message', {});
  const withoutId = ({ error: { request_id: _, ...error } }) => ({ error });
  assert.deepEqual(withoutId(reserved.body), withoutId(asPush.body), 'the same error as a push (each names its own request)');
  const cases = [
    [{ event: 'Bad Name' }, 400, 'validation'],
    [{ event: 'a.b', users: ['x'] }, 400, 'validation'],
    [{ data: {} }, 400, 'validation'],
    [{ event: 'a.b', idempotency_key: '' }, 400, 'validation'],
    [{ event: 'a.b', idempotency_key: 'k'.repeat(129) }, 400, 'validation'],
    [{ event: 'a.b', data: 'x'.repeat(70_000) }, 413, 'payload_too_large'],
  ];
  for (const [body, status, code] of cases) {
    const res = await broadcast(body);
    assert.equal(res.status, status, `${JSON.stringify(body).slice(0, 80)}: ${res.text.slice(0, 200)}`);
    assert.equal(res.body.error.code, code);
  }
  const notJson = await broadcast(undefined, { raw: '{"event":' });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.error.code, 'bad_json');
  const noToken = await http('POST', '/internal/v1/broadcast', { body: { event: 'a.b' } });
  assert.equal(noToken.status, 401);
  const badToken = await http('GET', '/internal/v1/online', { tok: 'not-the-token' });
  assert.equal(badToken.status, 401);
  for (const query of ['?limit=0', '?limit=1001', '?limit=x', '?cursor=nope', '?cursor=16.alice']) {
    const res = await online(query);
    assert.equal(res.status, 400, query);
    assert.equal(res.body.error.code, 'validation');
  }
});

test('a repeated idempotency key answers the first result and sends nothing', async () => {
  await settled();
  const user = uid();
  const client = await connectUser(user);
  await until(async () => (await online()).body.count === 1, { what: 'the user listed' });
  const key = `bk-${uid()}`;
  const first = await broadcast({ event: 'promo.start', data: { id: 1 }, idempotency_key: key });
  assert.deepEqual(first.body, { hubs: 1, devices: 1, duplicate: false });
  const again = await broadcast({ event: 'promo.start', data: { id: 1 }, idempotency_key: key });
  assert.deepEqual(again.body, { hubs: 1, devices: 1, duplicate: true });
  await client.next('promo.start');
  await push([user], 'marker.after');
  await client.next('marker.after');
  assert.equal(client.unread('promo.start').length, 0, 'the repeat was not sent');
  const other = await broadcast({ event: 'promo.start', data: { id: 2 }, idempotency_key: `${key}-2` });
  assert.deepEqual(other.body, { hubs: 1, devices: 1, duplicate: false });
  await client.close();
});

test('a broadcast is not stored: no seq, a later connect does not get it, a resume does not replay it', async () => {
  await settled();
  const [early, late] = [uid('early'), uid('late')];
  const first = await connectUser(early);
  assert.equal((await push([early], 'before.broadcast')).body.results[0].seq, 1);
  await first.next('before.broadcast');
  await until(async () => (await online()).body.count === 1, { what: 'the user listed' });
  const res = await broadcast({ event: 'flash.sale', data: { pct: 20 } });
  assert.deepEqual(res.body, { hubs: 1, devices: 1, duplicate: false });
  const got = await first.next('flash.sale');
  assert.equal(got.seq, undefined);
  await first.close();

  const resumed = await connectUser(early, { path: '/v1/connect?since=0' });
  assert.equal(resumed.ready.data.seq, 1, 'the broadcast took no seq');
  assert.equal((await resumed.next('before.broadcast')).seq, 1);
  assert.deepEqual((await resumed.next('synced')).data, { seq: 1, recovered: true, more: false });
  const later = await connectUser(late, { path: '/v1/connect?since=0' });
  await later.next('synced');
  await push([early, late], 'marker.after');
  await resumed.next('marker.after');
  await later.next('marker.after');
  assert.deepEqual(resumed.unread().map((f) => f.event), [], 'nothing but the replayed push and the marker');
  assert.equal(later.unread('flash.sale').length, 0);
  await Promise.all([resumed.close(), later.close()]);
});

test('the SDK hands a broadcast to its handlers and keeps its resume point', async (t) => {
  await settled();
  const user = uid('sdk');
  const client = connect({ url: BASE, getToken: () => token(user), WebSocket });
  t.after(() => client.close());
  await client.connect();
  const pushed = new Promise((resolve) => client.on('before.broadcast', resolve));
  await push([user], 'before.broadcast');
  await pushed;
  assert.equal(client.lastSeq, 1);
  const got = new Promise((resolve) => client.on('flash.sale', (data, frame) => resolve({ data, frame })));
  await until(async () => (await online()).body.count === 1, { what: 'the SDK user listed' });
  assert.equal((await broadcast({ event: 'flash.sale', data: { pct: 5 } })).body.devices, 1);
  const { data, frame } = await got;
  assert.deepEqual(data, { pct: 5 });
  assert.equal(frame.broadcast, true);
  assert.equal(client.lastSeq, 1, 'the resume point did not move');
  client.close();
  await until(async () => (await online()).body.count === 0, { what: 'the SDK user unlisted' });
});

test('GET /internal/v1/online lists connected users in pages and drops them after they disconnect', async () => {
  await settled();
  const users = Array.from({ length: 7 }, (_, i) => uid(`on${i}`));
  const clients = await Promise.all(users.map((user) => connectUser(user)));
  const twice = await connectUser(users[0]);
  await until(async () => (await online()).body.count === users.length, { what: 'every user listed' });
  const whole = await online('?limit=1000');
  assert.equal(whole.body.next_cursor, null);
  assert.deepEqual([...whole.body.users].sort(), [...users].sort(), 'a user with two sockets is listed once');
  const paged = await listAll(3);
  assert.equal(paged.pages, 3);
  assert.deepEqual(paged.users, whole.body.users, 'pages follow one order: shard, then user id');

  await Promise.all(clients.slice(0, 4).map((c) => c.close()));
  await until(async () => (await online()).body.count === 4, { what: 'three users unlisted, one with a socket left' });
  assert.ok((await online()).body.users.includes(users[0]), 'a user with a socket left stays listed');
  await twice.close();
  await until(async () => (await online()).body.count === 3, { what: 'the second socket gone' });
  await Promise.all(clients.slice(4).map((c) => c.close()));
  await until(async () => (await online()).body.count === 0, { what: 'everyone unlisted' });
});

test('users going offline during a broadcast to many: no error, consistent counts, their hubs dropped', async () => {
  await settled();
  const N = 200;
  const LEAVING = 50;
  const users = Array.from({ length: N }, (_, i) => uid(`many${i}`));
  const clients = [];
  for (let i = 0; i < N; i += 50) clients.push(...await Promise.all(users.slice(i, i + 50).map((user) => connectUser(user))));
  await until(async () => (await online()).body.count === N, { timeoutMs: 20_000, what: `${N} users listed` });

  const sent = broadcast({ event: 'storm.notice', data: { n: 1 } });
  for (const client of clients.slice(0, LEAVING)) client.ws.terminate();
  const res = await sent;
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.hubs, res.body.devices, 'one socket per user');
  assert.ok(res.body.devices >= N - LEAVING && res.body.devices <= N, JSON.stringify(res.body));
  const staying = clients.slice(LEAVING);
  for (const client of staying) {
    await client.next('storm.notice');
  }
  const leaving = new Set(users.slice(0, LEAVING));
  await until(async () => (await online()).body.count === N - LEAVING, { what: 'the leaving users unlisted' });
  const { users: listed } = await listAll(1000);
  assert.equal(listed.filter((u) => leaving.has(u)).length, 0);
  const again = await broadcast({ event: 'storm.notice', data: { n: 2 } });
  assert.deepEqual(again.body, { hubs: N - LEAVING, devices: N - LEAVING, duplicate: false });
  await push(users.slice(LEAVING), 'marker.after');
  for (const client of staying) {
    await client.next('marker.after');
    assert.deepEqual(client.unread('storm.notice').map((f) => f.data.n), [2], 'each broadcast once');
  }
  await Promise.all(staying.map((c) => c.close()));
  await until(async () => (await online()).body.count === 0, { what: 'everyone unlisted' });
});

test('after a restart the directory still lists the dead sockets: a broadcast drops them, reconnects list again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-directory-'));
  const gw = await ownGateway(dir, GENEROUS_RATES);
  let child = await gw.start(1);
  t.after(() => {
    child.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const count = async () => (await gw.call('GET', '/internal/v1/online', undefined, gw.internalToken)).body.count;
  const users = Array.from({ length: 5 }, (_, i) => uid(`restart${i}`));
  const before = await Promise.all(users.map((user) => gw.socket('/v1/connect', user)));
  await until(async () => (await count()) === 5, { what: 'five users listed' });

  child.kill('SIGKILL');
  await child.exited;
  for (const { ws } of before) ws.terminate();
  child = await gw.start(2);
  assert.equal(await count(), 5, 'the stored listings outlive the sockets');
  const empty = await gw.call('POST', '/internal/v1/broadcast', { event: 'after.restart' }, gw.internalToken);
  assert.deepEqual(empty.body, { hubs: 0, devices: 0, duplicate: false });
  assert.equal(await count(), 0, 'the broadcast dropped every hub with no socket');

  const back = await Promise.all(users.slice(0, 2).map((user) => gw.socket('/v1/connect', user)));
  await until(async () => (await count()) === 2, { what: 'the reconnected users listed again' });
  const listed = await gw.call('GET', '/internal/v1/online', undefined, gw.internalToken);
  assert.deepEqual([...listed.body.users].sort(), users.slice(0, 2).sort());
  const res = await gw.call('POST', '/internal/v1/broadcast', { event: 'welcome.back', data: {} }, gw.internalToken);
  assert.deepEqual(res.body, { hubs: 2, devices: 2, duplicate: false });
  for (const { frames } of back) {
    await until(() => frames.some((f) => f.event === 'welcome.back'), { what: 'the broadcast after the restart' });
  }
  for (const { ws } of back) ws.terminate();
});
