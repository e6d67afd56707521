// Issue #12 in a real browser: the seeds' socket.io client snippet (the tutorial's shape:
// `io(url + '/chat', …)`, `join-room`, `send-message` with an ack, `new-message`) runs in
// headless Chromium against the gateway, changed only in the URL and `transports: ['websocket']`
// (the token stays in `auth`, as the tutorial puts it). The seeds' two handlers move to a backend
// hook: `join-room` remembers the member, `send-message` answers the ack and pushes `new-message`
// to the room's members through the internal API.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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

/** The seeds' client, as the tutorial writes it; only the URL and the transports differ. */
function seedsClient({ url, token, roomId }) {
  window.received = [];
  // eslint-disable-next-line no-undef
  const socket = io(url + '/chat', { auth: { token }, transports: ['websocket'] });
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
  assert.equal(await a.p.evaluate(() => window.socket.io.engine.transport.name), 'websocket');
  assert.deepEqual([...a.errors, ...b.errors], []);
});
