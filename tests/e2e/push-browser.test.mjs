// Web Push in the browser (issue #14, browser side): the demo's service worker (client/demo/sw.js,
// served at /demo/sw.js), its "Enable notifications" control, and the SDK's registerPush against
// the real gateway, in headless Chromium driven by playwright-core (launched like browser.test.mjs).
//
// What is real and what is stood in for, and why:
//
// - Real: the gateway (wrangler dev, with the VAPID key pair tests/run.mjs generates), the demo
//   page and the SDK, the service worker's registration, Chromium's notification permission,
//   `showNotification` / `getNotifications`, the push event the worker handles (delivered by
//   Chromium itself through DevTools' `ServiceWorker.deliverPushMessage`, a trusted PushEvent, the
//   path of DevTools' "Push" button), `GET /v1/push/public-key`, `POST`/`GET`/`DELETE
//   /v1/push-subscriptions`, and the gateway's encrypted Web Push request with its VAPID header.
// - Stood in for: the browser's push service, only. Chromium's `pushManager.subscribe` cannot
//   work here: in Playwright's (incognito) contexts Chromium refuses it at once ("AbortError:
//   Registration failed - permission denied", crbug.com/41124656, the first test checks it), and
//   in a persistent profile it waits for Google's push service (FCM), which these machines cannot
//   reach (seen to hang for over a minute). So after checking that the real `subscribe` fails (and
//   that the demo says so), the page's `PushManager.prototype.subscribe` / `getSubscription` are
//   replaced by a stand-in that makes a PushSubscription-shaped object from a P-256 key pair and
//   an auth secret generated in the page (WebCrypto), whose endpoint is a push service stand-in
//   in this process (`http://127.0.0.1:<port>/push/<id>`, which the gateway accepts with
//   DEV_MODE). What a push service and the browser do with a push is done here: the stand-in
//   answers 201, this file checks the VAPID header and decrypts the RFC 8291 body with the
//   page's private key, and hands the plaintext to Chromium (`deliverPushMessage`) as the
//   browser would after decrypting it.
// - A notification cannot be clicked in headless Chromium: `notificationclick` is dispatched in
//   the worker as a script-made NotificationEvent. A script-made event carries no user
//   activation, so `clients.openWindow` / `focus` are refused; the path where a demo tab is open
//   (the worker tells it to open the conversation) is checked, and the new-tab path by opening
//   the notification's URL in a new page.

import assert from 'node:assert/strict';
import { createECDH } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import {
  BASE, http, internal, launchChromium, token, uid, until,
} from './helpers.mjs';
import { decryptBody, verifyVapid } from './push-service.mjs';

const WAIT = { timeout: 15_000 };
const VAPID_PUBLIC_KEY = process.env.SB_VAPID_PUBLIC_KEY;
const SCOPE = `${BASE}/demo/`;

let browser;
const contexts = new Set();
const pageErrors = [];

// The push service stand-in: records every request, answers 201 like FCM.
const pushed = [];
let pushWaiters = [];
const pushService = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const entry = { method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
    pushed.push(entry);
    for (const w of pushWaiters) w();
    res.statusCode = 201;
    res.end();
  });
});
let PUSH_SERVICE;

before(async () => {
  await new Promise((resolve) => pushService.listen(0, '127.0.0.1', resolve));
  PUSH_SERVICE = `http://127.0.0.1:${pushService.address().port}`;
  browser = await launchChromium();
});

after(async () => {
  for (const ctx of contexts) await ctx.close().catch(() => undefined);
  await browser?.close();
  pushService.close();
});

/** A context; `notifications: true` grants the permission to the gateway's origin. */
async function newContext({ notifications = true } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  if (notifications) await ctx.grantPermissions(['notifications'], { origin: BASE });
  contexts.add(ctx);
  return ctx;
}

async function closeContext(ctx) {
  contexts.delete(ctx);
  await ctx.close().catch(() => undefined);
}

const demoUrl = (params) => `${BASE}/demo/?${new URLSearchParams(params)}`;

/** The demo signed in as `user`, its service worker active and the push control settled. */
async function signedIn(ctx, user, params = {}) {
  const page = await ctx.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
  await page.goto(demoUrl({ user, ...params }));
  await page.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.waitForSelector('#push-enable:not([hidden])', WAIT);
  return page;
}

/** The demo's service worker as Playwright sees it (for evaluating in its global scope). */
async function serviceWorkerOf(ctx) {
  const url = `${BASE}/demo/sw.js`;
  return ctx.serviceWorkers().find((w) => w.url() === url)
    ?? ctx.waitForEvent('serviceworker', { predicate: (w) => w.url() === url, ...WAIT });
}

/** The worker's notifications, as plain objects, once `check` accepts them. */
async function notificationsOf(page, check = (list) => list.length > 0) {
  let last = [];
  try {
    await until(async () => {
      last = await page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
        .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })));
      return check(last);
    }, { timeoutMs: WAIT.timeout, what: 'notifications' });
  } catch (err) {
    throw new Error(`${err.message}; last seen: ${JSON.stringify(last)}`);
  }
  return last;
}

/** Chromium delivers `data` to the demo's worker as a (trusted) push event. */
async function deliverPush(page, data) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const registrations = new Map();
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: list }) => {
      for (const r of list) if (!r.isDeleted) registrations.set(r.scopeURL, r.registrationId);
    });
    await cdp.send('ServiceWorker.enable');
    const registrationId = await until(() => registrations.get(SCOPE), { what: 'the demo worker registration' });
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: BASE, registrationId, data: typeof data === 'string' ? data : JSON.stringify(data),
    });
  } finally {
    await cdp.detach().catch(() => undefined);
  }
}

/** Clicks (a script-made `notificationclick`) the worker's notification with this title. */
async function clickNotification(ctx, title) {
  const sw = await serviceWorkerOf(ctx);
  return sw.evaluate(async (title) => {
    const notification = (await self.registration.getNotifications()).find((n) => n.title === title);
    if (!notification) return 'no such notification';
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification }));
    return 'clicked';
  }, title);
}

/**
 * Replaces the page's PushManager with the stand-in described at the top: `subscribe` makes a
 * subscription from a fresh P-256 key pair and auth secret (the private key stays readable for
 * this file in `window.__pushStandIn`), with an endpoint at the push service stand-in.
 */
async function installPushStandIn(page) {
  await page.evaluate((endpointBase) => {
    const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const state = { current: null, subscribes: 0, unsubscribes: 0, privateJwk: null, json: null };
    window.__pushStandIn = state;
    PushManager.prototype.getSubscription = async function getSubscription() {
      return state.current;
    };
    PushManager.prototype.subscribe = async function subscribe(options = {}) {
      // What Chromium insists on too.
      if (options.userVisibleOnly !== true) throw new DOMException('userVisibleOnly required', 'NotAllowedError');
      const key = options.applicationServerKey;
      if (!key || typeof key === 'string') throw new DOMException('a key as bytes, please', 'InvalidAccessError');
      const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
      const p256dh = b64u(await crypto.subtle.exportKey('raw', pair.publicKey));
      const auth = b64u(crypto.getRandomValues(new Uint8Array(16)));
      const endpoint = `${endpointBase}/push/${crypto.randomUUID()}`;
      const keyBytes = new Uint8Array(ArrayBuffer.isView(key) ? key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength) : key);
      const subscription = {
        endpoint,
        expirationTime: null,
        options: { userVisibleOnly: true, applicationServerKey: keyBytes.slice().buffer },
        toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
        unsubscribe: async () => {
          if (state.current === subscription) state.current = null;
          state.unsubscribes++;
          return true;
        },
      };
      state.privateJwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
      state.json = subscription.toJSON();
      state.current = subscription;
      state.subscribes++;
      return subscription;
    };
  }, PUSH_SERVICE);
}

/** Waits for the next request to the push service stand-in for `path`. */
function nextPush(path, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const entry = pushed.find((p) => p.path === path);
      if (!entry) return false;
      pushed.splice(pushed.indexOf(entry), 1);
      pushWaiters = pushWaiters.filter((w) => w !== check);
      clearTimeout(timer);
      resolve(entry);
      return true;
    };
    const timer = setTimeout(() => {
      pushWaiters = pushWaiters.filter((w) => w !== check);
      reject(new Error(`no push to ${path} within ${timeoutMs} ms (seen: ${pushed.map((p) => p.path).join(', ') || 'none'})`));
    }, timeoutMs);
    if (!check()) pushWaiters.push(check);
  });
}


test('sw.js is served as JavaScript at /demo/ and the demo registers it for the whole demo', async () => {
  const res = await fetch(`${BASE}/demo/sw.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /javascript/);
  assert.match(await res.text(), /addEventListener\('push'/);

  const ctx = await newContext();
  const page = await signedIn(ctx, uid('sw'));
  const reg = await page.evaluate(async () => {
    const r = await navigator.serviceWorker.ready;
    return { scope: r.scope, script: r.active?.scriptURL, state: r.active?.state };
  });
  assert.deepEqual(reg, { scope: SCOPE, script: `${BASE}/demo/sw.js`, state: 'activated' });
  // The worker claims the page, so it can tell this tab what a click is about.
  await page.waitForFunction(() => navigator.serviceWorker.controller?.scriptURL.endsWith('/demo/sw.js'), null, WAIT);
  assert.equal(await page.textContent('#push-enable'), 'Enable notifications');
  assert.equal(await page.getAttribute('#push-status', 'data-state'), 'off');
  await closeContext(ctx);
  assert.deepEqual(pageErrors, []);
});

test('a push shows one notification: title, count and preview, one tag, a link to the conversation', async () => {
  const ctx = await newContext();
  const page = await signedIn(ctx, uid('shown'));

  // Three direct messages waiting: the count and the latest preview.
  await deliverPush(page, {
    title: 'bob', body: 'are you there?', url: null, count: 3, kind: 'message', sender_id: 'bob',
    room_id: null, message_id: 'm-3', seq: 12, at: Date.now(),
  });
  let list = await notificationsOf(page);
  assert.equal(list.length, 1);
  assert.equal(list[0].title, 'bob');
  assert.equal(list[0].body, '3 new messages — latest: are you there?');
  assert.equal(list[0].tag, 'switchboard');
  assert.equal(list[0].data.url, `${SCOPE}?dm=bob`);

  // A newer push replaces it (same tag): one room message, the room's link.
  await deliverPush(page, {
    title: 'General', body: 'alice: @you lunch?', url: null, count: 1, kind: 'room', sender_id: 'alice',
    room_id: 'r-general', message_id: 'm-9', seq: 40, at: Date.now(),
  });
  list = await notificationsOf(page, (l) => l.length === 1 && l[0].title === 'General');
  assert.equal(list[0].body, 'alice: @you lunch?');
  assert.equal(list[0].data.url, `${SCOPE}?room=r-general`);

  // A backend's push with its own url; a script-made PushEvent in the worker (the brief's
  // other way in) is handled the same.
  const sw = await serviceWorkerOf(ctx);
  await sw.evaluate(() => {
    self.dispatchEvent(new PushEvent('push', {
      data: JSON.stringify({ title: 'Invoice paid', body: 'INV-7', url: 'https://app.example.com/invoices/7', count: 1, kind: 'push' }),
    }));
  });
  list = await notificationsOf(page, (l) => l.length === 1 && l[0].title === 'Invoice paid');
  assert.equal(list[0].data.url, 'https://app.example.com/invoices/7');

  // Not JSON: the text is the body.
  await deliverPush(page, 'plain words');
  list = await notificationsOf(page, (l) => l.length === 1 && l[0].body === 'plain words');
  assert.equal(list[0].title, 'Switchboard');
  await closeContext(ctx);
});

test('a click on a notification opens the conversation in the open demo tab, or at its URL', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const res = await internal('POST', '/internal/v1/rooms', { name: 'Clicked room', owner: alice, members: [bob] });
  assert.equal(res.status, 201, res.text);
  const roomId = res.body.id;
  const ctx = await newContext();
  const page = await signedIn(ctx, alice);
  await page.waitForSelector('#room-pane', { state: 'hidden', ...WAIT });

  await deliverPush(page, { user_id: alice, title: roomId, body: `${bob}: look`, count: 1, kind: 'room', room_id: roomId, sender_id: bob });
  const [roomNote] = await notificationsOf(page, (l) => l.some((n) => n.title === roomId));
  assert.equal(roomNote.data.url, `${SCOPE}?${new URLSearchParams({ user: alice, room: roomId })}`);
  assert.equal(await clickNotification(ctx, roomId), 'clicked');
  await page.waitForSelector(`#room-pane[data-room-id="${roomId}"]:not([hidden])`, WAIT);
  await page.waitForSelector('#room-state[data-state="connected"]', WAIT);
  assert.equal(new URL(page.url()).searchParams.get('room'), roomId);
  await notificationsOf(page, (l) => l.length === 0); // the click closed it

  // A direct message's notification opens the conversation with its sender.
  await deliverPush(page, { user_id: alice, title: bob, body: 'psst', count: 1, kind: 'message', sender_id: bob });
  await notificationsOf(page, (l) => l.some((n) => n.title === bob));
  assert.equal(await clickNotification(ctx, bob), 'clicked');
  await page.waitForSelector(`#dm-list[data-peer="${bob}"]`, { state: 'attached', ...WAIT });
  assert.equal(await page.inputValue('#dm-to'), bob);

  // No tab open: the worker would open the notification's URL. That URL, in a new tab, is the
  // room, signed in (this payload has no user_id: as the user last signed in here).
  await deliverPush(page, { title: 'Again', body: 'x', count: 1, kind: 'room', room_id: roomId, sender_id: bob });
  const [note] = await notificationsOf(page, (l) => l.some((n) => n.title === 'Again'));
  await page.close();
  const fresh = await ctx.newPage();
  fresh.on('pageerror', (err) => pageErrors.push(`${alice} (new tab): ${err.message}`));
  await fresh.goto(note.data.url);
  await fresh.waitForSelector('#conn-state[data-state="connected"]', WAIT);
  assert.equal(await fresh.textContent('#me'), alice);
  await fresh.waitForSelector(`#room-pane[data-room-id="${roomId}"]:not([hidden])`, WAIT);
  await fresh.waitForSelector('#room-state[data-state="connected"]', WAIT);
  await closeContext(ctx);
  assert.deepEqual(pageErrors, []);
});

test('without notification permission, "Enable notifications" says they are blocked', async () => {
  const ctx = await newContext({ notifications: false });
  const user = uid('blocked');
  const page = await signedIn(ctx, user);
  await page.click('#push-enable');
  // Headless Chromium answers the permission prompt with a refusal.
  await page.waitForSelector('#push-status[data-state="denied"]', WAIT);
  assert.match(await page.textContent('#push-status'), /blocked/);
  const list = await http('GET', '/v1/push-subscriptions', { tok: token(user) });
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.body.subscriptions, []);
  await closeContext(ctx);
});

test('registerPush end to end: the gateway lists the subscription, pushes to it when no device is connected, and unregister removes it', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const ctx = await newContext();
  const page = await signedIn(ctx, alice);
  const publicKey = await http('GET', '/v1/push/public-key');
  assert.equal(publicKey.status, 200, publicKey.text);
  assert.equal(publicKey.body.public_key, VAPID_PUBLIC_KEY);

  // The real push service piece, first: Chromium refuses to subscribe here (see the top).
  const real = await page.evaluate(async (key) => {
    const reg = await navigator.serviceWorker.ready;
    try {
      await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      return 'subscribed';
    } catch (err) {
      return `${err.name}: ${err.message}`;
    }
  }, VAPID_PUBLIC_KEY);
  assert.match(real, /^AbortError: Registration failed/);
  // The demo's button goes through registerPush and says what the browser said.
  await page.click('#push-enable');
  await page.waitForSelector('#push-status[data-state="error"]', WAIT);
  assert.match(await page.textContent('#push-status'), /push_subscribe_failed/);
  const none = await http('GET', '/v1/push-subscriptions', { tok: token(alice) });
  assert.deepEqual(none.body.subscriptions, []);

  // With the stand-in push service: the same button, the real gateway.
  await installPushStandIn(page);
  await page.click('#push-enable');
  await page.waitForSelector('#push-status[data-state="on"]', WAIT);
  assert.equal(await page.textContent('#push-enable'), 'Disable notifications');
  const { handle, device, json } = await page.evaluate(() => ({
    handle: { id: demo.push.handle.id, endpoint: demo.push.handle.endpoint, device: demo.push.handle.device },
    device: sb.deviceId,
    json: window.__pushStandIn.json,
  }));
  assert.match(handle.id, /^[0-9a-f]+$/);
  assert.equal(handle.endpoint, json.endpoint);
  assert.ok(device, 'the SDK knows its device id once ready');
  assert.equal(handle.device, device);
  const listed = await http('GET', '/v1/push-subscriptions', { tok: token(alice) });
  assert.equal(listed.status, 200, listed.text);
  assert.deepEqual(listed.body.subscriptions.map((s) => [s.id, s.endpoint, s.device]), [[handle.id, json.endpoint, device]]);
  assert.deepEqual(await page.evaluate(async () => (await sb.pushSubscriptions()).map((s) => s.id)), [handle.id]);

  // Registering again reuses the browser's subscription and the gateway's record.
  const again = await page.evaluate(async () => {
    const h = await sb.registerPush(await navigator.serviceWorker.ready);
    return { id: h.id, subscribes: window.__pushStandIn.subscribes };
  });
  assert.deepEqual(again, { id: handle.id, subscribes: 1 });

  // Alice has no device connected: Bob's direct message is pushed to her subscription.
  await page.evaluate(() => sb.close());
  await page.waitForSelector('#conn-state[data-state="closed"]', WAIT);
  const text = `are you free at ${Date.now() % 100000}?`;
  const sent = await http('POST', '/v1/messages', { tok: token(bob), body: { to: [alice], type: 'text', body: text } });
  assert.ok(sent.status === 200 || sent.status === 201, sent.text);
  const request = await nextPush(new URL(json.endpoint).pathname);
  assert.equal(request.method, 'POST');
  assert.equal(request.headers['content-encoding'], 'aes128gcm');
  assert.equal(request.headers['content-type'], 'application/octet-stream');
  assert.equal(request.headers.ttl, '86400');
  assert.equal(request.headers.urgency, 'high');
  assert.ok(request.body.length <= 4096, `body ${request.body.length} bytes`);
  // The same checks the notify suite's push service makes (tests/e2e/push-service.mjs): the VAPID
  // JWT verifies with the gateway's key, and the body opens with the independent http_ece — here
  // with the key the page generated, as the browser would.
  verifyVapid(request.headers.authorization, json.endpoint, VAPID_PUBLIC_KEY);
  const privateJwk = await page.evaluate(() => window.__pushStandIn.privateJwk);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(privateJwk.d, 'base64url'));
  const { payload, rs } = decryptBody(request.body, ecdh, json.keys.auth);
  assert.equal(rs, 4096, 'record size');
  const plaintext = JSON.stringify(payload);
  assert.equal(payload.kind, 'message');
  assert.equal(payload.sender_id, bob);
  assert.equal(payload.count, 1);
  assert.equal(payload.room_id, null);
  assert.equal(payload.urgent, true);
  assert.ok(payload.body.includes(text), `body: ${payload.body}`);
  assert.equal(typeof payload.title, 'string');

  // What the browser does with it: the worker shows it, a click opens the conversation.
  await deliverPush(page, plaintext);
  const [note] = await notificationsOf(page, (l) => l.length === 1);
  assert.equal(note.title, payload.title || `Message from ${bob}`);
  assert.equal(note.body, payload.body);
  assert.equal(note.tag, 'switchboard');
  assert.equal(payload.user_id, alice);
  assert.equal(note.data.url, payload.url ? new URL(payload.url, SCOPE).href : `${SCOPE}?${new URLSearchParams({ user: alice, dm: bob })}`);
  if (!payload.url) {
    assert.equal(await clickNotification(ctx, note.title), 'clicked');
    await page.waitForSelector(`#dm-list[data-peer="${bob}"]`, { state: 'attached', ...WAIT });
  }

  // Disable: the gateway forgets it, the browser's subscription goes.
  await page.click('#push-enable');
  await page.waitForSelector('#push-status[data-state="off"]', WAIT);
  const gone = await http('GET', '/v1/push-subscriptions', { tok: token(alice) });
  assert.deepEqual(gone.body.subscriptions, []);
  assert.deepEqual(await page.evaluate(() => ({ current: window.__pushStandIn.current, unsubscribes: window.__pushStandIn.unsubscribes })),
    { current: null, unsubscribes: 1 });
  // Deleting it again: not_found, or false with missingOk.
  assert.equal(await page.evaluate((id) => sb.removePushSubscription(id, { missingOk: true }), handle.id), false);
  assert.equal(await page.evaluate((id) => sb.removePushSubscription(id).then(() => 'deleted', (e) => `${e.status} ${e.code}`), handle.id), '404 not_found');
  await closeContext(ctx);
  assert.deepEqual(pageErrors, []);
});
