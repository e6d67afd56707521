// The demo app (client/demo, served by the gateway at /demo/ in DEV_MODE) in real headless
// Chromium, driven by playwright-core: two users chat (room creation, adding a member, pending →
// stored, typing, read receipts, presence, live unread badges, a direct message), one goes
// offline and comes back to exactly what it missed, a backend push reaches the notifications
// panel, an expired token shows auth_failed without a reconnect loop, and a page on an origin
// that is not in ALLOWED_ORIGINS cannot call the REST API.
//
// Screenshots go to tests/artifacts/; a two-user composite also goes to docs/demo.png.
// Synchronisation is on events the pages show (selectors, waitForFunction), never on sleeps,
// except where the test asserts that something does NOT happen for a while.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BASE, claims, internal, launchChromium, push, signHS256, uid,
} from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(root, 'tests', 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const WAIT = { timeout: 15_000 };

let browser;
const contexts = new Set();
const pageErrors = [];

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  for (const ctx of contexts) await ctx.close().catch(() => undefined);
  await browser?.close();
});

async function newContext(opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 }, ...opts });
  contexts.add(ctx);
  return ctx;
}

async function closeContext(ctx) {
  contexts.delete(ctx);
  await ctx.close().catch(() => undefined);
}

/** The demo's URL for `user`, with a fast heartbeat so a dead link is noticed in ~2.5 s. */
const demoUrl = (params) => `${BASE}/demo/?${new URLSearchParams({ hb: '1000', hbTimeout: '1500', backoffMax: '1000', ...params })}`;

async function signedIn(ctx, user, params = {}) {
  const page = await ctx.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
  await page.goto(demoUrl({ user, ...params }));
  await page.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  return page;
}

/** Texts of the message bodies in the open room, in display order. */
const bodies = (page) => page.$$eval('#messages li[data-status="stored"] .body', (els) => els.map((e) => e.textContent));
const seqs = (page) => page.$$eval('#messages li[data-status="stored"]', (els) => els.map((e) => Number(e.dataset.seq)));

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.click('#composer-send');
  await page.locator('#messages li[data-status="stored"]', { hasText: text }).waitFor(WAIT);
}

/** A room with both users (created by the backend) open in two signed-in pages. */
async function pair() {
  const alice = uid('alice');
  const bob = uid('bob');
  const res = await internal('POST', '/internal/v1/rooms', { name: 'Pair room', owner: alice, members: [bob] });
  assert.equal(res.status, 201, res.text);
  const roomId = res.body.id;
  const ctxA = await newContext();
  const ctxB = await newContext();
  const a = await signedIn(ctxA, alice, { room: roomId });
  const b = await signedIn(ctxB, bob, { room: roomId });
  for (const page of [a, b]) await page.waitForSelector('#room-state[data-state="connected"]', WAIT);
  return { alice, bob, roomId, ctxA, ctxB, a, b };
}

test('two users: create a room, add a member, chat with acks, typing, read receipts, badges, DMs', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const ctxA = await newContext();
  const ctxB = await newContext();
  // Alice signs in with the form, Bob with ?user=.
  const a = await ctxA.newPage();
  a.on('pageerror', (err) => pageErrors.push(`${alice}: ${err.message}`));
  await a.goto(demoUrl({}));
  await a.fill('#signin-name', alice);
  await a.click('#signin-btn');
  await a.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  const b = await signedIn(ctxB, bob);
  assert.equal(await a.textContent('#me'), alice);

  // Alice creates "General" and adds Bob by name.
  await a.fill('#new-room-name', 'General');
  await a.click('#create-room');
  await a.waitForSelector('#room-pane:not([hidden])', WAIT);
  const roomId = await a.getAttribute('#room-pane', 'data-room-id');
  await a.waitForSelector(`#room-list li[data-room-id="${roomId}"].active`, WAIT);
  await a.waitForSelector('#room-state[data-state="connected"]', WAIT);
  await a.fill('#add-member-name', bob);
  await a.click('#add-member');
  await a.waitForFunction(() => document.getElementById('add-member-name').value === '', null, WAIT);

  // A send shows as pending, then stored once acked.
  await a.evaluate(() => {
    window.statuses = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('#messages li')) window.statuses.push(li.dataset.status);
    }).observe(document.getElementById('messages'), { childList: true, subtree: true });
  });
  await send(a, 'hi bob');
  const statuses = await a.evaluate(() => window.statuses);
  assert.ok(statuses.includes('pending'), `statuses seen: ${statuses}`);

  // Bob's list picks the room up from room.activity, with an unread badge and a preview.
  const badgeIs = (page, id, n) => page.waitForFunction(
    ([id, n]) => document.querySelector(`[data-testid="unread-${id}"]`)?.dataset.count === String(n), [id, n], WAIT);
  await badgeIs(b, roomId, 1);
  assert.match(await b.textContent(`#room-list li[data-room-id="${roomId}"] .preview`), /hi bob/);

  // Bob opens it: the message is there, the badge clears, Alice sees the read receipt and Bob online.
  await b.click(`#room-list li[data-room-id="${roomId}"]`);
  await b.locator('#messages li[data-status="stored"]', { hasText: 'hi bob' }).waitFor(WAIT);
  await badgeIs(b, roomId, 0);
  await a.locator('#messages [data-testid="receipt"]', { hasText: `Seen by ${bob}` }).waitFor(WAIT);
  await a.waitForSelector(`#online li[data-user="${bob}"]`, WAIT);
  await b.waitForSelector(`#online li[data-user="${alice}"]`, WAIT);

  // Typing indicator, then Bob's answer clears it.
  await b.fill('#composer-input', 'hey al');
  await a.waitForFunction((bob) => document.getElementById('typing').textContent.includes(`${bob} is typing`), bob, WAIT);
  await b.fill('#composer-input', '');
  await send(b, 'hey alice');
  await a.locator('#messages li[data-status="stored"]', { hasText: 'hey alice' }).waitFor(WAIT);
  await a.waitForFunction(() => document.getElementById('typing').textContent === '', null, WAIT);
  await b.locator('#messages [data-testid="receipt"]', { hasText: `Seen by ${alice}` }).waitFor(WAIT);
  assert.deepEqual(await bodies(a), ['hi bob', 'hey alice']);
  assert.deepEqual(await bodies(b), ['hi bob', 'hey alice']);

  // A second room: Bob, busy in General, gets a badge for it.
  await a.fill('#new-room-name', 'Random');
  await a.click('#create-room');
  await a.waitForFunction((id) => document.getElementById('room-pane').dataset.roomId !== id, roomId, WAIT);
  const randomId = await a.getAttribute('#room-pane', 'data-room-id');
  await a.waitForSelector('#room-state[data-state="connected"]', WAIT);
  await a.fill('#add-member-name', bob);
  await a.click('#add-member');
  await a.waitForFunction(() => document.getElementById('add-member-name').value === '', null, WAIT);
  await send(a, 'lunch at noon?');
  await badgeIs(b, randomId, 1);
  assert.match(await b.textContent(`#room-list li[data-room-id="${randomId}"] .preview`), /lunch at noon\?/);

  // A direct message: Bob's DM badge counts it.
  await a.fill('#dm-to', bob);
  await a.fill('#dm-body', 'psst, a direct message');
  await a.click('#dm-send');
  await b.locator('#dm-list li', { hasText: 'psst, a direct message' }).waitFor(WAIT);
  await b.waitForFunction(() => document.getElementById('dm-unread').dataset.count === '1', null, WAIT);

  // Back in General for the screenshots.
  await a.click(`#room-list li[data-room-id="${roomId}"]`);
  await a.locator('#messages li', { hasText: 'hey alice' }).waitFor(WAIT);

  await a.screenshot({ path: join(ARTIFACTS, 'chat-alice.png') });
  await b.screenshot({ path: join(ARTIFACTS, 'chat-bob.png') });

  // Both users side by side in one picture (two fresh sessions in iframes) for the docs.
  const ctxShot = await newContext({ viewport: { width: 1600, height: 720 } });
  const shot = await ctxShot.newPage();
  const frame = (user) => `<iframe src="${demoUrl({ user, room: roomId })}" style="width:50%;height:100%;border:0;border-right:2px solid #c9ced8"></iframe>`;
  await shot.setContent(`<!doctype html><html><body style="margin:0;height:100vh;display:flex">${frame(alice)}${frame(bob)}</body></html>`);
  await shot.waitForFunction(() => document.querySelectorAll('iframe').length === 2);
  for (const f of shot.frames().filter((f) => f !== shot.mainFrame())) {
    await f.waitForSelector('#messages li[data-status="stored"] >> nth=1', WAIT);
    await f.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  }
  const bobFrame = shot.frames().find((f) => f.url().includes(bob));
  const aliceFrame = shot.frames().find((f) => f.url().includes(alice));
  await bobFrame.waitForFunction((id) => document.querySelector(`[data-testid="unread-${id}"]`)?.dataset.count === '1', randomId, WAIT);
  await bobFrame.waitForSelector(`#online li[data-user="${alice}"]`, WAIT);
  await bobFrame.fill('#composer-input', 'see you at');
  await aliceFrame.waitForFunction((bob) => document.getElementById('typing').textContent.includes(`${bob} is typing`), bob, WAIT);
  await shot.screenshot({ path: join(ARTIFACTS, 'demo-two-users.png') });
  await shot.screenshot({ path: join(root, 'docs', 'demo.png') });

  await closeContext(ctxShot);

  // A recall: Alice takes a message back; Bob's copy becomes a tombstone.
  await send(a, 'oops, wrong room');
  const oops = b.locator('#messages li[data-status="stored"]', { hasText: 'oops, wrong room' });
  await oops.waitFor(WAIT);
  const seq = await oops.getAttribute('data-seq');
  const mineOops = a.locator(`#messages li[data-seq="${seq}"]`);
  await mineOops.hover();
  await mineOops.locator('[data-testid="recall"]').click();
  await b.locator(`#messages li[data-seq="${seq}"].recalled`, { hasText: 'message recalled' }).waitFor(WAIT);
  await a.locator(`#messages li[data-seq="${seq}"].recalled`).waitFor(WAIT);
  assert.equal(await b.locator('#messages li', { hasText: 'oops, wrong room' }).count(), 0);
  await a.screenshot({ path: join(ARTIFACTS, 'chat-recalled-alice.png') });
  await closeContext(ctxA);
  await closeContext(ctxB);
  assert.deepEqual(pageErrors, []);
});

test('offline and back: the page sees what it missed, in order, with no duplicate', async () => {
  const { roomId, ctxA, ctxB, a, b } = await pair();
  await send(a, 'before');
  await b.locator('#messages li[data-status="stored"]', { hasText: 'before' }).waitFor(WAIT);
  // Bob has the room open: it is read, no badge (whatever order room.activity arrives in).
  await b.waitForFunction((id) => document.querySelector(`[data-testid="unread-${id}"]`)?.dataset.count === '0', roomId, WAIT);

  await ctxB.setOffline(true);
  // The SDK notices by its heartbeat (no pong within 1.5 s), on both sockets.
  await b.waitForSelector('#conn-state[data-state="disconnected"]', WAIT);
  await b.waitForSelector('#room-state[data-state="disconnected"]', WAIT);
  for (const text of ['while away 1', 'while away 2', 'while away 3']) await send(a, text);
  // Bob writes while offline: it stays pending in the outbox.
  await b.fill('#composer-input', 'from the train');
  await b.click('#composer-send');
  await b.locator('#messages li[data-status="pending"]', { hasText: 'from the train' }).waitFor(WAIT);
  await b.screenshot({ path: join(ARTIFACTS, 'offline-bob.png') });
  assert.deepEqual(await bodies(b), ['before']);

  await ctxB.setOffline(false);
  await b.waitForSelector('#room-state[data-state="connected"]', WAIT);
  await b.locator('#messages li[data-status="stored"]', { hasText: 'while away 3' }).waitFor(WAIT);
  // The outbox went out after the reconnect, once.
  await b.locator('#messages li[data-status="stored"]', { hasText: 'from the train' }).waitFor(WAIT);
  await a.locator('#messages li[data-status="stored"]', { hasText: 'from the train' }).waitFor(WAIT);
  await send(a, 'after');
  await b.locator('#messages li[data-status="stored"]', { hasText: 'after' }).waitFor(WAIT);
  await b.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  const expected = ['before', 'while away 1', 'while away 2', 'while away 3', 'from the train', 'after'];
  assert.deepEqual(await bodies(b), expected);
  assert.deepEqual(await bodies(a), expected);
  const s = await seqs(b);
  assert.deepEqual(s, [...new Set(s)].sort((x, y) => x - y), 'unique and in seq order');
  assert.equal(await b.locator('#messages li[data-status="pending"]').count(), 0);
  await b.waitForFunction((id) => document.querySelector(`[data-testid="unread-${id}"]`)?.dataset.count === '0', roomId, WAIT);
  await b.screenshot({ path: join(ARTIFACTS, 'back-online-bob.png') });
  await closeContext(ctxA);
  await closeContext(ctxB);
});

test('history: the newest messages arrive over the socket, older pages over REST', async () => {
  const alice = uid('alice');
  const res = await internal('POST', '/internal/v1/rooms', { name: 'Long room', owner: alice });
  assert.equal(res.status, 201, res.text);
  const roomId = res.body.id;
  for (let i = 1; i <= 60; i++) {
    const published = await internal('POST', `/internal/v1/rooms/${roomId}/publish`, { body: `note ${i}` });
    assert.equal(published.status, 201, published.text);
  }
  const ctx = await newContext();
  const page = await signedIn(ctx, alice, { room: roomId });
  await page.locator('#messages li[data-status="stored"]', { hasText: 'note 60' }).waitFor(WAIT);
  await page.waitForFunction(() => document.querySelectorAll('#messages li[data-status="stored"]').length === 50, null, WAIT);
  assert.equal((await bodies(page))[0], 'note 11');
  await page.click('#load-older');
  await page.waitForFunction(() => document.querySelectorAll('#messages li[data-status="stored"]').length === 60, null, WAIT);
  const all = await bodies(page);
  assert.deepEqual(all, Array.from({ length: 60 }, (_, i) => `note ${i + 1}`));
  await page.waitForSelector('#load-older', { state: 'hidden', ...WAIT });
  await closeContext(ctx);
});

test('a backend push shows in the notifications panel; the dev push button reaches another user', async () => {
  const { alice, bob, ctxA, ctxB, a, b } = await pair();
  const res = await push([bob], 'permission.changed', { role: 'editor', project: 'apollo' });
  assert.equal(res.status, 200, res.text);
  const note = b.locator('#notifications li[data-event="permission.changed"]', { hasText: 'apollo' });
  await note.waitFor(WAIT);
  assert.match(await note.textContent(), /"role":"editor"/);
  assert.equal(await a.locator('#notifications li').count(), 0, 'only the target gets it');

  // The development button: POST /dev/push from Alice's page to Bob.
  await a.fill('#push-target', bob);
  await a.click('#push-btn');
  await b.locator('#notifications li[data-event="permission.changed"]', { hasText: `"by":"${alice}"` }).waitFor(WAIT);
  assert.equal(await b.locator('#notifications li').count(), 2);
  await b.screenshot({ path: join(ARTIFACTS, 'notifications-bob.png') });
  await closeContext(ctxA);
  await closeContext(ctxB);
});

test('an expired token shows auth_failed, without a reconnect loop', async () => {
  const user = uid('expired');
  const expired = signHS256(claims(user, { ttl: -300 }));
  const ctx = await newContext();
  await ctx.addInitScript(() => {
    const Native = window.WebSocket;
    window.__upgrades = 0;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__upgrades++;
      }
    };
  });
  const page = await ctx.newPage();
  await page.goto(demoUrl({ token: expired, backoffInitial: '100', backoffMax: '300' }));
  await page.waitForSelector('#conn-state[data-state="auth_failed"]', WAIT);
  assert.match(await page.textContent('#conn-state'), /token_expired/);
  assert.match(await page.textContent('#banner'), /token_expired/);
  // With a 100–300 ms backoff a loop would make many attempts in this time.
  await page.waitForTimeout(2000);
  assert.equal(await page.getAttribute('#conn-state', 'data-state'), 'auth_failed');
  const upgrades = await page.evaluate(() => window.__upgrades);
  assert.ok(upgrades >= 1 && upgrades <= 2, `upgrade attempts: ${upgrades}`);
  await page.screenshot({ path: join(ARTIFACTS, 'auth-failed.png') });
  await closeContext(ctx);
});

test('a forced disconnect (4003) shows closed with the reason, without reconnecting', async () => {
  const { bob, ctxA, ctxB, b } = await pair();
  await b.evaluate(() => { window.__states = []; sb.on('state', (s) => window.__states.push(s)); });
  const res = await internal('POST', `/internal/v1/users/${bob}/disconnect`, { reason: 'account suspended' });
  assert.equal(res.status, 200, res.text);
  await b.waitForSelector('#conn-state[data-state="closed"]', WAIT);
  assert.match(await b.textContent('#conn-state'), /account suspended/);
  assert.match(await b.textContent('#banner'), /account suspended/);
  await b.waitForSelector('#room-state[data-state="closed"]', WAIT);
  await b.waitForTimeout(1000);
  assert.deepEqual(await b.evaluate(() => window.__states), ['closed']);
  await b.screenshot({ path: join(ARTIFACTS, 'forced-disconnect.png') });
  await closeContext(ctxA);
  await closeContext(ctxB);
});

test('a page on an origin outside ALLOWED_ORIGINS cannot call the REST API or open a socket', async () => {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const origin = `http://127.0.0.1:${server.address().port}`;
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto(`${origin}/`);
    const user = uid('cors');
    const tok = signHS256(claims(user));
    const outcome = await page.evaluate(async ([base, tok]) => {
      const result = {};
      try {
        const res = await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${tok}` } });
        result.rest = `answered ${res.status}`;
      } catch (err) {
        result.rest = `rejected: ${err.name}`;
      }
      try {
        await fetch(`${base}/v1/me`);
        result.simple = 'readable';
      } catch (err) {
        result.simple = `rejected: ${err.name}`;
      }
      result.socket = await new Promise((resolve) => {
        const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/connect`, ['bearer', tok]);
        ws.onopen = () => resolve('opened');
        ws.onclose = (ev) => resolve(`closed ${ev.code}`);
      });
      return result;
    }, [BASE, tok]);
    assert.equal(outcome.rest, 'rejected: TypeError');
    assert.equal(outcome.simple, 'rejected: TypeError');
    assert.equal(outcome.socket, 'closed 1006');
    // The same call from the gateway's own demo origin works (same origin, no CORS needed).
    const own = await ctx.newPage();
    await own.goto(`${BASE}/demo/`);
    const status = await own.evaluate(async ([base, tok]) => (await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${tok}` } })).status, [BASE, tok]);
    assert.equal(status, 200);
    await closeContext(ctx);
  } finally {
    server.close();
  }
});
