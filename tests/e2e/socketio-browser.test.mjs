// Issue #12 in a real browser: the seeds' socket.io client snippet (the tutorial's shape:
// `io(url + '/chat', …)`, `join-room`, `send-message` with an ack, `new-message`) runs in
// headless Chromium against the gateway, changed only in the URL (the token stays in `auth` and
// the transports are the client's defaults: long-polling, then the WebSocket). The seeds' two handlers move to a backend
// hook: `join-room` remembers the member, `send-message` answers the ack and pushes `new-message`
// to the room's members through the internal API.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BASE, launchChromium, push, token, uid,
} from './helpers.mjs';
import { hookServerFromEnv } from './hook-server.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = join(root, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');
const WAIT = { timeout: 15_000 };

let browser;
let hook;
const members = new Map();

before(async () => {
  browser = await launchChromium();
  hook = await hookServerFromEnv(async (call) => {
    if (call.kind !== 'event') return { status: 204 }; // the suite turns on connection calls
    const [data] = call.args;
    if (call.event === 'join-room') {
      const room = members.get(data) ?? new Set();
      room.add(call.user_id);
      members.set(data, room);
      return { body: { joined: data } };
    }
    if (call.event === 'send-message') {
      const { roomId, message } = data;
      if (!members.get(roomId)?.has(call.user_id)) return { status: 403, body: { error: { code: 'not_in_room', message: 'join first' } } };
      const msg = { roomId, message, from: call.user_id, at: Date.now() };
      const res = await push([...members.get(roomId)], 'new-message', msg);
      if (res.status !== 200) return { status: 500, body: { error: { code: 'push_failed', message: res.text } } };
      return { body: { ok: true, msg } };
    }
    return { status: 404, body: { error: { code: 'no_handler', message: call.event } } };
  });
});

after(async () => {
  await browser?.close();
  await hook?.close();
});

/** The seeds' client, as the tutorial writes it; only the URL differs. */
function seedsClient({ url, token, roomId }) {
  window.received = [];
  // eslint-disable-next-line no-undef
  const socket = io(url + '/chat', { auth: { token } });
  window.socket = socket;
  socket.on('connect', () => {
    socket.emit('join-room', roomId, () => { window.joined = true; });
  });
  socket.on('new-message', (msg) => { window.received.push(msg); });
  window.sendMessage = (message) => new Promise((resolve) => {
    socket.emit('send-message', { roomId, message }, (response) => resolve(response));
  });
}

async function page(user, roomId) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (err) => errors.push(err.message));
  await p.goto(`${BASE}/health`);
  await p.addScriptTag({ path: BUNDLE });
  await p.evaluate(seedsClient, { url: BASE, token: token(user), roomId });
  await p.waitForFunction(() => window.joined === true, null, WAIT);
  return { p, errors };
}

test('socket.io in Chromium: the seeds\' snippet joins, sends with an ack and receives new-message through the hook backend', async () => {
  const roomId = uid('room');
  const alice = uid('alice');
  const bob = uid('bob');
  const a = await page(alice, roomId);
  const b = await page(bob, roomId);
  const ack = await a.p.evaluate(() => window.sendMessage('hello from the browser'));
  assert.equal(ack.ok, true);
  assert.equal(ack.msg.from, alice);
  await b.p.waitForFunction(() => window.received.length === 1, null, WAIT);
  const [got] = await b.p.evaluate(() => window.received);
  assert.equal(got.message, 'hello from the browser');
  assert.equal(got.from, alice, 'the hook saw the verified user, not a claim of the page');
  await a.p.waitForFunction(() => window.received.length === 1, null, WAIT);
  await a.p.waitForFunction(() => window.socket.io.engine.transport.name === 'websocket', null, WAIT);
  assert.deepEqual([...a.errors, ...b.errors], []);
});

/** A page of another origin than the gateway's (`localhost` against its `127.0.0.1`). */
async function otherOrigin() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>app</title>');
  });
  server.listen(Number(process.env.SB_PAGE_PORT), '127.0.0.1');
  await once(server, 'listening');
  return server;
}

test('socket.io in Chromium: a page on another origin connects with the default transports, credentials or not', async () => {
  const server = await otherOrigin();
  try {
    for (const opts of [{}, { withCredentials: true }, { withCredentials: true, transports: ['polling'] }]) {
      const user = uid();
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(`http://localhost:${process.env.SB_PAGE_PORT}/`);
      await p.addScriptTag({ path: BUNDLE });
      await p.evaluate(({ url, token, opts }) => {
        window.pushed = [];
        // eslint-disable-next-line no-undef
        window.socket = io(url + '/chat', { auth: { token }, ...opts });
        window.socket.on('order.shipped', (data) => window.pushed.push(data));
      }, { url: BASE, token: token(user), opts });
      await p.waitForFunction(() => window.socket.connected, null, WAIT);
      const res = await push([user], 'order.shipped', { order: 5 });
      assert.equal(res.status, 200, res.text);
      await p.waitForFunction(() => window.pushed.length === 1, null, WAIT);
      const expected = opts.transports ? 'polling' : 'websocket';
      await p.waitForFunction((name) => window.socket.io.engine.transport.name === name, expected, WAIT);
      await ctx.close();
    }
  } finally {
    server.close();
  }
});
