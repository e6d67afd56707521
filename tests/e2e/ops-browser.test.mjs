// The operator page (client/ops, served by the gateway at /ops/ in DEV_MODE) in real headless
// Chromium, driven by playwright-core like browser.test.mjs: the internal token is entered once
// and kept in sessionStorage only; a connected user's devices and stream head, and a room's
// sockets per shard, head seq and D1 copy are shown and follow a push and a message on their
// own (the page refreshes every 2 s); a refused token sends the page back to the token form.
//
// Synchronisation is on what the page shows (waitForFunction on its text), never on sleeps.
// A screenshot goes to tests/artifacts/ (not committed).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BASE, INTERNAL_TOKEN, connectRoom, connectUser, createRoom, push, uid } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(root, 'tests', 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const WAIT = { timeout: 15_000 };

let browser;
let ctx;
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await ctx?.close().catch(() => undefined);
  await browser?.close();
});

/** Waits until element `id` shows exactly `text`. */
const shows = (page, id, text) => page.waitForFunction(
  ([id, text]) => document.getElementById(id)?.textContent === text, [id, String(text)], WAIT);

async function lookUp(page, kind, id) {
  await page.selectOption('#lookup-kind', kind);
  await page.fill('#lookup-id', id);
  await page.click('#lookup-btn');
}

test('the operator page: a token once, a connected user and a room, numbers that follow a push and a message', async () => {
  const user = uid('opsu');
  const phone = await connectUser(user, { path: '/v1/connect?device=phone' });
  const laptop = await connectUser(user, { path: '/v1/connect?device=laptop', carrier: 'subprotocol' });
  assert.equal((await push([user], 'ops.one', {})).status, 200);

  const [owner, m1, m2] = [uid('opso'), uid('opsm'), uid('opsm')];
  const room = await createRoom(owner, [m1, m2]);
  const members = [await connectRoom(owner, room), await connectRoom(m1, room), await connectRoom(m2, room)];

  const page = await ctx.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${BASE}/ops/`);
  await page.waitForSelector('#token-form', WAIT);
  assert.equal(await page.isVisible('#ops-view'), false, 'nothing to look up without a token');
  await page.fill('#token-input', INTERNAL_TOKEN);
  await page.click('#token-save');
  await page.waitForSelector('#lookup-form', WAIT);
  // The token is in this tab's sessionStorage, and nowhere else the page keeps things.
  const kept = await page.evaluate(() => ({
    session: Object.values(sessionStorage),
    local: Object.values(localStorage),
    cookie: document.cookie,
    url: location.href,
    html: document.documentElement.outerHTML,
  }));
  assert.deepEqual(kept.session, [INTERNAL_TOKEN]);
  assert.deepEqual(kept.local, []);
  assert.equal(kept.cookie, '');
  assert.ok(!kept.url.includes(INTERNAL_TOKEN) && !kept.html.includes(INTERNAL_TOKEN));

  // A connected user: two devices, the stream head; a push moves it with no click.
  await lookUp(page, 'user', user);
  await shows(page, 'user-id', user);
  await shows(page, 'user-open-devices', 2);
  await shows(page, 'user-head-seq', 1);
  const devices = await page.$$eval('#user-devices tr', (rows) => rows.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(devices.map((cells) => [cells[0], cells[1], cells[2]]).sort(), [['laptop', 'websocket', 'subprotocol'], ['phone', 'websocket', 'header']]);
  assert.match(await page.textContent('#user-alarm'), /token expiry/);
  assert.equal((await push([user], 'ops.two', {})).status, 200);
  await shows(page, 'user-head-seq', 2);
  await laptop.close();
  await shows(page, 'user-open-devices', 1);

  // A room over two objects: sockets per shard, the head seq and D1's copy following a message.
  await lookUp(page, 'room', room);
  await shows(page, 'room-id', room);
  await shows(page, 'room-sockets', 3);
  await shows(page, 'room-head-seq', 0);
  const shards = await page.$$eval('#room-shards tr', (rows) => rows.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(shards, [['0', '2', '2'], ['1', '1', '1']]);
  assert.equal((await members[2].request('send', { type: 'text', body: 'hello ops', client_id: 'ops-1' })).event, 'ack');
  await shows(page, 'room-head-seq', 1);
  await shows(page, 'room-flushed', 1);
  await page.screenshot({ path: join(ARTIFACTS, 'ops-room.png') });

  // The same tab keeps the token across a reload; a refused one is forgotten.
  await page.goto(`${BASE}/ops/?user=${encodeURIComponent(user)}`);
  await shows(page, 'user-head-seq', 2);
  await page.evaluate(() => sessionStorage.setItem('switchboard-ops-token', 'not-the-token'));
  await lookUp(page, 'user', user);
  await page.waitForSelector('#token-form', WAIT);
  await page.waitForSelector('#status[data-state="error"]', WAIT);
  assert.deepEqual(await page.evaluate(() => Object.values(sessionStorage)), []);

  assert.deepEqual(pageErrors, []);
  for (const client of [phone, ...members]) client.close();
});

test('the operator page\'s files are served, and nothing beside them', async () => {
  // Served like /demo/ (dev::asset, DEV_MODE only): a plain file name of client/dist/ops, nothing
  // else.
  const res = await fetch(`${BASE}/ops/..%2Fwrangler.toml`);
  assert.equal(res.status, 404);
  const page = await fetch(`${BASE}/ops/ops.js`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /sessionStorage/);
});
