// Issue #21: the NestJS example (examples/nest-chat, NestJS 11 from npm, built by `make test`)
// served through the real gateway by @switchboard/nestjs — its gateway classes as socket.io apps
// write them, its main.ts one line away from a stock app. Two instances of the app run behind
// the gateway's one EVENT_HOOK_URL (a round-robin proxy on SB_HOOK_PORT, so consecutive calls of
// one socket land on different processes), and socket.io-client 4.8 connects as apps do:
// `io(url + '/chat', { auth: { token } })`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import {
  BASE, INTERNAL_TOKEN, claims, connected, launchChromium, signHS256, socketioClients, uid, until,
} from './helpers.mjs';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'nest-chat');
const clients = socketioClients(io);
const apps = [];
let proxy;
/** The example's page, served on the origin the suite's gateway allows (localhost:SB_PAGE_PORT). */
let pages;

/** A port nothing listens on now. */
async function freePort() {
  const server = createTcpServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts one instance of the example on `port`; resolves once it listens. */
async function startApp(port) {
  const child = spawn(process.execPath, [join(EXAMPLE, 'dist', 'main.js')], {
    cwd: EXAMPLE,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      SWITCHBOARD_URL: BASE,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      EVENT_HOOK_SECRET: process.env.SB_HOOK_SECRET,
      JWT_SECRET: process.env.SB_JWT_SECRET,
      JWT_ISSUER: process.env.SB_ISSUER,
      JWT_AUDIENCE: process.env.SB_AUDIENCE,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const ready = new Promise((resolve, reject) => {
    const look = (chunk) => {
      log += chunk;
      if (log.includes('nest-chat listening')) resolve();
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.once('exit', (code) => reject(new Error(`the example exited ${code}:\n${log}`)));
  });
  await ready;
  return { child, port, log: () => log };
}

/** Alternates each request between the instances, as a load balancer without affinity does. */
function roundRobin(ports) {
  let next = 0;
  return createServer((req, res) => {
    const port = ports[next++ % ports.length];
    const upstream = request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
}

before(async () => {
  const ports = [await freePort(), await freePort()];
  for (const port of ports) apps.push(await startApp(port));
  proxy = roundRobin(ports);
  proxy.listen(Number(process.env.SB_HOOK_PORT), '127.0.0.1');
  await once(proxy, 'listening');
  pages = roundRobin(ports);
  pages.listen(Number(process.env.SB_PAGE_PORT), '127.0.0.1');
  await once(pages, 'listening');
});

after(async () => {
  clients.closeAll();
  for (const server of [proxy, pages]) {
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  }
  for (const app of apps) app.child.kill('SIGTERM');
});

const tokenOf = (user, extra = {}) => signHS256(claims(user, extra));
/** A client of a namespace as the tutorials write it: the token in `auth`. */
const client = (nsp, user, extra) => clients.make(nsp, { auth: { token: tokenOf(user, extra) }, transports: ['websocket'] });
function collect(socket, event) {
  const seen = [];
  socket.on(event, (first) => seen.push(first));
  return seen;
}

test('nest: join-room, user-joined, send-message with its ack, new-message to both in order, across two app instances', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const roomId = uid('room');
  const a = await connected(client('/chat', alice));
  const b = await connected(client('/chat', bob));
  const joined = collect(a, 'user-joined');
  assert.deepEqual(await a.emitWithAck('join-room', { roomId }), { success: true });
  assert.deepEqual(await b.emitWithAck('join-room', { roomId }), { success: true });
  await until(() => joined.length === 1, { what: 'alice hears bob joined' });
  assert.deepEqual(joined[0], { userId: bob, roomId });
  const [atA, atB] = [collect(a, 'new-message'), collect(b, 'new-message')];
  const acks = [];
  for (const content of ['one', 'two', 'three', 'four']) acks.push(await a.emitWithAck('send-message', { roomId, content }));
  assert.ok(acks.every((m) => m.senderId === alice), 'client.data.userId set by handleConnection, read on any instance');
  await until(() => atA.length === 4 && atB.length === 4, { what: 'every message at both' });
  assert.deepEqual(atB.map((m) => m.id), acks.map((m) => m.id));
  assert.deepEqual(atA.map((m) => m.id), acks.map((m) => m.id));
  assert.deepEqual(await a.emitWithAck('set-nickname', { nickname: 'Al' }), { nickname: 'Al' });
  for (let i = 0; i < 2; i += 1) {
    const me = await a.emitWithAck('whoami', {});
    assert.deepEqual(me, { userId: alice, nickname: 'Al', socketId: a.id }, 'socket.data the same on both instances');
  }
});

test('nest: handleConnection refuses a bad token; a guard and a WsException answer the ack with an error', async () => {
  const refused = clients.make('/chat', { auth: { token: signHS256(claims(uid('eve')), 'not-the-secret-but-long-enough-to-sign-with') }, transports: ['websocket'] });
  const err = await new Promise((resolve) => refused.once('connect_error', resolve));
  assert.match(err.message, /token_invalid|disconnected/);
  const user = await connected(client('/chat', uid('carol')));
  const guarded = await user.emitWithAck('announce', { text: 'hi' });
  assert.equal(guarded.error.code, 'ws_exception', JSON.stringify(guarded));
  const invalid = await user.emitWithAck('send-message', { roomId: 'r', content: '' });
  assert.equal(invalid.error.code, 'ws_exception');
  const admin = await connected(client('/chat', uid('admin'), { roles: ['admin'] }));
  const heard = collect(user, 'announcement');
  assert.deepEqual(await admin.emitWithAck('announce', { text: 'maintenance' }), { sent: true });
  await until(() => heard.length === 1, { what: 'the announcement' });
});

test('nest: presence online, get-online-users and offline through fetchSockets, stateless', async () => {
  const [watcher, dana] = [uid('watch'), uid('dana')];
  const w = await connected(client('/presence', watcher));
  const online = collect(w, 'user-online');
  const offline = collect(w, 'user-offline');
  const d = await connected(client('/presence', dana));
  await until(() => online.some((u) => u.userId === dana), { what: 'user-online' });
  const { users } = await w.emitWithAck('get-online-users', {});
  assert.ok(users.includes(dana) && users.includes(watcher), JSON.stringify(users));
  d.disconnect();
  await until(() => offline.some((u) => u.userId === dana), { what: 'user-offline' });
});

test('nest: the orders controller reaches a user\'s sockets with fetchSockets', async () => {
  const user = uid('buyer');
  const socket = await connected(client('/chat', user));
  const got = once(socket, 'order-update');
  const res = await fetch(`http://127.0.0.1:${process.env.SB_HOOK_PORT}/orders/${user}/update`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId: 'o-1', status: 'shipped' }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { notified: 1 });
  assert.deepEqual((await got)[0], { orderId: 'o-1', status: 'shipped' });
});

test('nest: a reconnect recovers the new-messages it missed', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const roomId = uid('room');
  const a = await connected(client('/chat', alice));
  const b = await connected(client('/chat', bob));
  await a.emitWithAck('join-room', { roomId });
  await b.emitWithAck('join-room', { roomId });
  const atB = collect(b, 'new-message');
  await a.emitWithAck('send-message', { roomId, content: 'before' }); // b's client keeps its offset
  await until(() => atB.length === 1, { what: 'the first message' });
  const dropped = once(b, 'disconnect');
  b.io.engine.close();
  await dropped;
  const missed = [];
  for (const content of ['m1', 'm2']) missed.push(await a.emitWithAck('send-message', { roomId, content }));
  await connected(b);
  assert.equal(b.recovered, true);
  await until(() => atB.length === 3, { what: 'the missed messages' });
  assert.deepEqual(atB.slice(1).map((m) => m.id), missed.map((m) => m.id));
});

test('nest: in Chromium, the example\'s page signs in, joins and chats through the gateway', async () => {
  const browser = await launchChromium();
  try {
    const room = uid('room');
    const open = async (user) => {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`http://localhost:${process.env.SB_PAGE_PORT}/`);
      await page.fill('#user', user);
      await page.click('#login button:not([type=button])');
      await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('connected as'), null, { timeout: 15_000 });
      await page.fill('#room', room);
      await page.click('#join button:not([type=button])');
      await page.waitForFunction((r) => document.querySelector('#log').textContent.includes(`you joined ${r}`), room, { timeout: 15_000 });
      return page;
    };
    const [alice, bob] = [uid('alice'), uid('bob')];
    const a = await open(alice);
    const b = await open(bob);
    await a.fill('#text', 'hello from the page');
    await a.click('#send button:not([type=button])');
    await b.waitForFunction((line) => document.querySelector('#log').textContent.includes(line), `${alice}: hello from the page`, { timeout: 15_000 });
  } finally {
    await browser.close();
  }
});
