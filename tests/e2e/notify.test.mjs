// Issue #14, "deliver or notify": when no device of a user took an event within
// NOTIFY_AFTER_SECONDS, one Web Push notification per push subscription of the user, and/or one
// signed webhook call to the backend.
//
// Web Push runs against the suite's gateway (tests/run.mjs gives it a fresh VAPID key pair,
// NOTIFY_AFTER_SECONDS=1, NOTIFY_MIN_INTERVAL_SECONDS=2, MAX_PUSH_SUBSCRIPTIONS=3, DEV_MODE) and
// a local push service (tests/e2e/push-service.mjs) that hands out browser-like subscriptions
// and checks every push as a real push service and browser would: VAPID JWT verified against the
// gateway's public key, the body decrypted with the independent http_ece package. The webhook
// runs against a gateway of its own (ownGateway) whose NOTIFY_WEBHOOK_URL points at a test
// backend that verifies the signature (tests/e2e/hook-server.mjs).
//
// Arrivals are awaited. Where a test shows that something does NOT happen, it waits a bounded
// window, QUIET_MS from the event: the notification would have been due NOTIFY_AFTER_SECONDS
// after the event, a collapsed follow-up at most NOTIFY_MIN_INTERVAL_SECONDS later, plus slack
// for the alarm and the request.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BASE, claims, connectRoom, connectUser, http, internal, push, signHS256, token, uid, until,
} from './helpers.mjs';
import { MAX_BODY_BYTES, startPushService } from './push-service.mjs';
import { sign as signHook, startHookServer, verifySignature, SIGNATURE_HEADER } from './hook-server.mjs';
import { GENEROUS_RATES, ownGateway } from '../server.mjs';
import { io } from 'socket.io-client';

const VAPID_PUBLIC_KEY = process.env.SB_VAPID_PUBLIC_KEY;
const AFTER_MS = Number(process.env.SB_NOTIFY_AFTER_SECONDS) * 1000;
const INTERVAL_MS = Number(process.env.SB_NOTIFY_MIN_INTERVAL_SECONDS) * 1000;
const MAX_SUBS = Number(process.env.SB_MAX_PUSH_SUBSCRIPTIONS);
/** Slack for the due alarm to fire and its request to reach us. */
const SLACK_MS = 1500;
/** How long after an event a notification it was going to cause has surely arrived. */
const QUIET_MS = AFTER_MS + INTERVAL_MS + SLACK_MS;
/** The payload's fields (docs: "Web Push request"); the ones that do not apply are null. */
const PAYLOAD_KEYS = ['title', 'body', 'url', 'count', 'kind', 'sender_id', 'room_id', 'message_id', 'seq', 'at'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/**
 * Waits until QUIET_MS after `since` (a Date.now()), for tests that assert that nothing arrived:
 * by then a notification that was going to be sent has been (see QUIET_MS).
 */
const quietSince = (since) => sleep(Math.max(0, since + QUIET_MS - Date.now()));

let service;
before(async () => {
  service = await startPushService();
});
after(async () => {
  await service?.close();
});
afterEach(() => {
  assert.deepEqual(service.rejected.map((r) => r.reason), [], 'every push the gateway sent passed the push service checks');
});

const subsPath = '/v1/push-subscriptions';
const register = (user, body, tok = token(user)) => http('POST', subsPath, { tok, body });
const list = async (user, tok = token(user)) => {
  const res = await http('GET', subsPath, { tok });
  assert.equal(res.status, 200, res.text);
  return res.body.subscriptions;
};

/** A fresh subscription of the push service, registered for `user`; returns it with its id. */
async function subscribed(user, device) {
  const sub = service.subscribe();
  const res = await register(user, device === undefined ? sub.json : { ...sub.json, device });
  assert.equal(res.status, 201, res.text);
  sub.registration = res.body;
  return sub;
}

/** A direct message over REST; resolves with the stored message. */
async function dm(from, to, body) {
  const res = await http('POST', '/v1/messages', { tok: token(from), body: { to: [to].flat(), type: 'text', body } });
  assert.equal(res.status, 201, res.text);
  return res.body.message;
}

/** The seq of the `message` event carrying `messageId` in `user`'s stream (a replay from 0). */
async function streamSeqOf(user, messageId) {
  const client = await connectUser(user, { path: '/v1/connect?since=0' });
  await client.next('synced');
  const frame = client.frames.find((f) => f.event === 'message' && f.data.id === messageId);
  await client.close();
  assert.ok(frame, `message ${messageId} is in ${user}'s stream`);
  return frame.seq;
}

/** Every field of the payload is there (null where it does not apply), with the right types. */
function assertPayloadShape(payload) {
  assert.deepEqual(Object.keys(payload).filter((k) => PAYLOAD_KEYS.includes(k)).sort(), [...PAYLOAD_KEYS].sort(), JSON.stringify(payload));
  assert.equal(typeof payload.count, 'number');
  assert.ok(['message', 'push', 'room'].includes(payload.kind), payload.kind);
  assert.equal(typeof payload.at, 'number');
  for (const key of ['title', 'body', 'url', 'sender_id', 'room_id', 'message_id']) {
    assert.ok(payload[key] === null || typeof payload[key] === 'string', `${key}: ${JSON.stringify(payload[key])}`);
  }
  if (payload.body !== null) assert.ok([...payload.body].length <= 200, `a preview of at most 200 characters: ${payload.body.length}`);
}

/** The headers the spec fixes for every Web Push request; `urgency` as expected. */
function assertPushRequest(note, urgency) {
  assert.equal(note.headers.ttl, '86400');
  assert.equal(note.headers.urgency, urgency);
  assert.equal(note.headers.topic, 'switchboard');
  assert.equal(note.headers['content-encoding'], 'aes128gcm');
  assert.equal(note.headers['content-type'], 'application/octet-stream');
  assert.equal(note.rs, 4096, 'record size 4096');
  assert.ok(note.bodyBytes <= MAX_BODY_BYTES, `body ${note.bodyBytes} bytes`);
  assert.notEqual(note.keyid, VAPID_PUBLIC_KEY, 'the keyid is an ephemeral key, not the VAPID key');
  assert.equal(note.jwt.claims.sub, 'mailto:ops@switchboard.test', 'sub is VAPID_SUBJECT');
}

// --- Subscriptions over REST -------------------------------------------------------------

test('the VAPID public key is public; subscriptions register, list and delete per user, with a token', async () => {
  const key = await http('GET', '/v1/push/public-key');
  assert.equal(key.status, 200, key.text);
  assert.deepEqual(key.body, { public_key: VAPID_PUBLIC_KEY });
  assert.equal(Buffer.from(key.body.public_key, 'base64url').length, 65);

  const [user, other] = [uid('sub'), uid('other')];
  const phone = service.subscribe();
  const laptop = service.subscribe();
  const first = await register(user, { ...phone.json, device: 'phone-1' });
  assert.equal(first.status, 201, first.text);
  assert.match(first.body.id, /^[0-9a-f]+$/);
  assert.equal(first.body.endpoint, phone.endpoint);
  assert.equal(first.body.device, 'phone-1');
  assert.equal(typeof first.body.created_at, 'number');
  const again = await register(user, { ...phone.json, device: 'phone-1' });
  assert.equal(again.status, 200, 'the same endpoint again is 200');
  assert.equal(again.body.id, first.body.id, 'the id is stable per endpoint');
  const second = await register(user, laptop.json);
  assert.equal(second.status, 201);
  assert.equal(second.body.device, null, 'no device given');
  assert.notEqual(second.body.id, first.body.id);

  const listed = await list(user);
  assert.deepEqual(listed.map((s) => s.id).sort(), [first.body.id, second.body.id].sort());
  const listedPhone = listed.find((s) => s.id === first.body.id);
  assert.deepEqual(Object.keys(listedPhone).sort(), ['created_at', 'device', 'endpoint', 'id']);
  assert.deepEqual(listedPhone, { id: first.body.id, endpoint: phone.endpoint, device: 'phone-1', created_at: first.body.created_at });
  assert.deepEqual(await list(other), [], "another user sees none of them");

  const notMine = await http('DELETE', `${subsPath}/${first.body.id}`, { tok: token(other) });
  assert.equal(notMine.status, 404, "another user's subscription is 404");
  assert.equal(notMine.body.error.code, 'not_found');
  const removed = await http('DELETE', `${subsPath}/${first.body.id}`, { tok: token(user) });
  assert.equal(removed.status, 204, removed.text);
  assert.deepEqual((await list(user)).map((s) => s.id), [second.body.id]);
  const twice = await http('DELETE', `${subsPath}/${first.body.id}`, { tok: token(user) });
  assert.equal(twice.status, 404);
  assert.equal(twice.body.error.code, 'not_found');

  for (const [method, path, body] of [['GET', subsPath], ['POST', subsPath, phone.json], ['DELETE', `${subsPath}/${second.body.id}`]]) {
    const res = await http(method, path, { body });
    assert.equal(res.status, 401, `${method} ${path} without a token`);
    assert.equal(res.body.error.code, 'token_missing');
  }
  const bad = await http('GET', subsPath, { tok: 'not-a-jwt' });
  assert.equal(bad.status, 401);
  assert.deepEqual((await list(user)).map((s) => s.id), [second.body.id], 'nothing changed without a token');
});

test('endpoints a browser would not give and keys that are not keys are refused', async () => {
  const user = uid('sub');
  const good = service.subscribe().json;
  const endpoints = [
    'http://10.0.0.1/x',
    'http://example.com/push/1',
    'https://push.example.com/x',
    'http://fcm.googleapis.com/fcm/send/abc',
    'https://user:pw@push.example.com/x',
    'file:///etc/passwd',
    'ftp://push.example.com/x',
    'ws://127.0.0.1:9/x',
    'javascript:alert(1)',
  ];
  for (const endpoint of endpoints) {
    const res = await register(user, { ...good, endpoint });
    assert.equal(res.status, 400, `${endpoint}: ${res.text}`);
    assert.equal(res.body.error.code, 'endpoint_not_allowed', endpoint);
  }
  const point = Buffer.from(good.keys.p256dh, 'base64url');
  const compressed = Buffer.concat([Buffer.from([2 + (point[64] & 1)]), point.subarray(1, 33)]);
  const offCurve = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
  const wrongTag = Buffer.concat([Buffer.from([5]), point.subarray(1)]);
  const badKeys = [
    ['p256dh of 64 bytes', { p256dh: point.subarray(1).toString('base64url'), auth: good.keys.auth }],
    ['p256dh compressed (33 bytes)', { p256dh: compressed.toString('base64url'), auth: good.keys.auth }],
    ['p256dh not on the curve', { p256dh: offCurve.toString('base64url'), auth: good.keys.auth }],
    ['p256dh with a wrong tag', { p256dh: wrongTag.toString('base64url'), auth: good.keys.auth }],
    ['p256dh not base64url', { p256dh: '!!!', auth: good.keys.auth }],
    ['auth of 15 bytes', { p256dh: good.keys.p256dh, auth: randomBytes(15).toString('base64url') }],
    ['auth of 17 bytes', { p256dh: good.keys.p256dh, auth: randomBytes(17).toString('base64url') }],
    ['no auth', { p256dh: good.keys.p256dh }],
    ['no p256dh', { auth: good.keys.auth }],
  ];
  for (const [what, keys] of badKeys) {
    const res = await register(user, { ...good, keys });
    assert.equal(res.status, 400, `${what}: ${res.text}`);
    assert.equal(res.body.error.code, 'validation', what);
  }
  for (const [what, body] of [['no keys', { endpoint: good.endpoint }], ['no endpoint', { keys: good.keys }], ['not an object', [good]]]) {
    const res = await register(user, body);
    assert.equal(res.status, 400, `${what}: ${res.text}`);
    assert.equal(res.body.error.code, 'validation', what);
  }
  const notJson = await http('POST', subsPath, { tok: token(user), raw: '{"endpoint":', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assert.ok(['validation', 'bad_json'].includes(notJson.body.error.code), notJson.text);
  assert.deepEqual(await list(user), [], 'nothing was registered');
  // The same body with good parts is accepted: the refusals above were about what they changed.
  assert.equal((await register(user, { ...good, expirationTime: 1790000000000 })).status, 201, 'expirationTime is ignored');
  const local = await register(user, { ...good, endpoint: good.endpoint.replace('127.0.0.1', 'localhost') });
  assert.equal(local.status, 201, `localhost with DEV_MODE: ${local.text}`);
  const fcm = await register(user, { ...service.subscribe().json, endpoint: `https://fcm.googleapis.com/fcm/send/${uid('t')}` });
  assert.equal(fcm.status, 201, `a known push service: ${fcm.text}`);
  assert.equal((await http('DELETE', `${subsPath}/${fcm.body.id}`, { tok: token(user) })).status, 204);
});

test(`beyond MAX_PUSH_SUBSCRIPTIONS (${MAX_SUBS}) the oldest goes; a second user registering an endpoint takes it over`, async () => {
  const [user, thief] = [uid('sub'), uid('sub')];
  const subs = [];
  for (let i = 0; i <= MAX_SUBS; i++) subs.push(await subscribed(user, `device-${i}`));
  const kept = await list(user);
  assert.equal(kept.length, MAX_SUBS);
  assert.deepEqual(kept.map((s) => s.endpoint).sort(), subs.slice(1).map((s) => s.endpoint).sort(), 'the oldest was dropped');

  const taken = subs[2];
  const res = await register(thief, taken.json);
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.endpoint, taken.endpoint);
  assert.equal(res.body.id, taken.registration.id, 'the id is stable per endpoint');
  assert.deepEqual((await list(thief)).map((s) => s.endpoint), [taken.endpoint]);
  const left = await list(user);
  assert.ok(!left.some((s) => s.endpoint === taken.endpoint), 'the first user no longer has it');
  assert.equal(left.length, MAX_SUBS - 1);
  const gone = await http('DELETE', `${subsPath}/${taken.registration.id}`, { tok: token(user) });
  assert.equal(gone.status, 404, 'and cannot delete it');
  assert.equal((await list(thief)).length, 1);
});

/**
 * Spellings of `endpoint` (`http://127.0.0.1:<port>/push/<id>`) that name the same endpoint: a
 * URL parser (and so the gateway's fetch) turns each into the endpoint itself.
 */
function spellingsOf(endpoint) {
  const { port, pathname } = new URL(endpoint);
  const id = pathname.split('/').pop();
  return [
    endpoint,
    endpoint.replace('http://', 'HTTP://'),
    `http://0x7f.0.0.1:${port}/push/${id}`,
    `http://127.1:0${port}/push/${id}`,
    `http://127.0.0.1:${port}/push/./${id}`,
    `http://127.0.0.1:${port}/push/x/../${id}`,
    `http://127.0.0.1:${port}/push/%2e/${id}`,
    `http://127.0.0.1:${port}/pu\tsh/${id}`,
    `http:\\127.0.0.1:${port}\\push\\${id}`,
    `http://127.0.0.1:${port}/%70ush/${id}`,
  ];
}

test('one endpoint under many spellings is one subscription: an event notifying every registrant is one POST to it, from the last registrant', async () => {
  const sub = service.subscribe();
  const spellings = spellingsOf(sub.endpoint);
  const users = spellings.map(() => uid('spell'));
  const ids = [];
  for (const [i, endpoint] of spellings.entries()) {
    const res = await register(users[i], { ...sub.json, endpoint });
    assert.equal(res.status, 201, `${JSON.stringify(endpoint)}: ${res.text}`);
    ids.push(res.body.id);
  }
  const last = users.at(-1);
  const again = await register(last, sub.json);

  // One direct message notifies every one of them: the push service must hear of it once.
  const sentAt = Date.now();
  await dm(uid('sender'), users, 'to everyone who claimed the endpoint');
  const note = await sub.notification(1);
  await quietSince(sentAt);
  assert.equal(sub.attempts.length, 1, `one POST to the endpoint, not one per spelling (got ${sub.attempts.length})`);
  assert.equal(note.payload.user_id, last, 'sent for the last registrant');
  assert.deepEqual(service.unknown.filter((u) => u.path.endsWith(sub.id)), [], 'nothing was sent to a spelling the push service does not know');

  assert.equal(new Set(ids).size, 1, `one id for every spelling: ${ids.join(', ')}`);
  assert.equal(again.status, 200, `the last registrant's endpoint again, in another spelling, is the same subscription: ${again.text}`);
  assert.equal(again.body.id, ids[0]);
  assert.deepEqual(await list(last), [{ ...again.body }], 'the last registrant holds it');
  assert.equal(again.body.endpoint, sub.endpoint, 'stored and shown in its canonical spelling');
  for (const user of users.slice(0, -1)) assert.deepEqual(await list(user), [], `${user} no longer holds it`);
});

test('an endpoint without one spelling (a fragment, an empty path segment, an empty query, a stray %) is 400 validation saying why', async () => {
  const user = uid('sub');
  const sub = service.subscribe();
  const { origin, pathname } = new URL(sub.endpoint);
  for (const [endpoint, why] of [
    [`${sub.endpoint}#a`, /fragment/],
    [`${sub.endpoint}#`, /fragment/],
    [`${origin}/push//${pathname.split('/').pop()}`, /empty path segment/],
    [`${origin}/${pathname}`, /empty path segment/],
    [`${sub.endpoint}?`, /empty query/],
    [`${sub.endpoint}%zz`, /not followed by two hex digits/],
  ]) {
    const res = await register(user, { ...sub.json, endpoint });
    assert.equal(res.status, 400, `${endpoint}: ${res.text}`);
    assert.equal(res.body.error.code, 'validation', endpoint);
    assert.match(res.body.error.message, why, endpoint);
  }
  assert.deepEqual(await list(user), [], 'nothing was registered');
});

// --- Web Push -----------------------------------------------------------------------------

test('an offline user\'s direct message is one encrypted, VAPID-signed notification after the delay', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const bobs = await subscribed(bob, 'bob-phone');
  const alices = await subscribed(alice);
  const sender = await connectUser(alice);
  const text = 'lunch at noon?';
  const sentAt = Date.now();
  const ack = await sender.request('message.send', { to: [bob], type: 'text', body: text });
  assert.equal(ack.event, 'ack', JSON.stringify(ack));
  const message = ack.data.message;

  const note = await bobs.notification(1);
  assert.ok(note.at - sentAt >= AFTER_MS - 100, `not before the delay: ${note.at - sentAt} ms`);
  assertPushRequest(note, 'high');
  const { payload } = note;
  assertPayloadShape(payload);
  assert.equal(payload.kind, 'message');
  assert.equal(payload.sender_id, alice);
  assert.equal(payload.message_id, message.id);
  assert.equal(payload.count, 1);
  assert.equal(payload.room_id, null);
  assert.equal(payload.body, text, 'a short message is its own preview');
  assert.equal(payload.title, alice, 'the title is the sender (the message has no title)');
  assert.equal(payload.user_id, bob);
  assert.equal(payload.urgent, true);
  assert.ok(payload.at >= sentAt - 1000 && payload.at <= Date.now() + 1000, `at is unix ms: ${payload.at}`);

  await quietSince(sentAt);
  assert.equal(bobs.notifications.length, 1, 'exactly one notification');
  assert.equal(bobs.attempts.length, 1);
  assert.equal(alices.attempts.length, 0, 'the sender is not notified of their own message (and is online, not acking)');
  await sender.close();
  assert.equal(payload.seq, await streamSeqOf(bob, message.id), "seq is the event's seq in the receiver's stream");
});

test('a long message is previewed, never sent whole, and the push stays within 4096 bytes', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const [bobs, carols] = [await subscribed(bob), await subscribed(carol)];
  const words = Array.from({ length: 700 }, (_, i) => `w${i}`).join(' ');
  assert.ok(words.length > 3000 && words.length <= 4000, String(words.length));
  // Three UTF-8 bytes a character: the whole would not fit in a push; a cut mid-character would
  // not decode.
  const euros = '€'.repeat(3000);
  const [long, wide] = [await dm(alice, bob, words), await dm(alice, carol, euros)];
  const note = await bobs.notification(1);
  assertPayloadShape(note.payload);
  assert.equal(note.payload.message_id, long.id);
  assert.ok(note.payload.body.length <= 200, `${note.payload.body.length} characters`);
  assert.ok(!note.payload.body.includes('w699'), 'not the whole message');
  assert.ok(note.payload.body.startsWith('w0 w1 w2'), note.payload.body);
  assert.ok(note.bodyBytes <= MAX_BODY_BYTES);
  const other = await carols.notification(1);
  assert.equal(other.payload.message_id, wide.id);
  assert.ok(!other.payload.body.includes('\uFFFD'), 'cut at a character boundary');
  assert.match(other.payload.body, /^€{1,200}…?$/u, other.payload.body);
  assert.ok(other.bodyBytes <= MAX_BODY_BYTES, `${other.bodyBytes} bytes`);
});

test('a device acking in time takes the event; the next event, unacked and offline, notifies with count 1', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const device = await connectUser(bob, { path: '/v1/connect?device=bob-laptop' });
  const firstAt = Date.now();
  const first = await dm(alice, bob, 'are you there?');
  const frame = await device.next((f) => f.event === 'message' && f.data.id === first.id);
  assert.deepEqual((await device.request('ack', { seq: frame.seq })).data, { cursor: frame.seq });
  // The ack takes the pending event at once: nothing waits, and the alarm is not woken for it.
  const report = (await internal('GET', `/internal/v1/users/${bob}`)).body;
  assert.equal(report.push.pending, 0, 'the ack took the pending event');
  assert.equal(report.push.notify_at, null);
  assert.ok(!report.alarm.reasons.some((r) => r.reason === 'notifications'), JSON.stringify(report.alarm));
  await quietSince(firstAt);
  assert.equal(sub.attempts.length, 0, 'acked in time: no notification');

  await device.close();
  const second = await dm(alice, bob, 'guess not');
  const note = await sub.notification(1);
  assert.equal(note.payload.count, 1, 'the acked event is not counted');
  assert.equal(note.payload.message_id, second.id);
  assert.equal(note.payload.seq, frame.seq + 1);
});

test('one of two devices acking is enough', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const phone = await connectUser(bob, { path: '/v1/connect?device=bob-phone' });
  const laptop = await connectUser(bob, { path: '/v1/connect?device=bob-laptop' });
  const sentAt = Date.now();
  const message = await dm(alice, bob, 'either will do');
  const onPhone = await phone.next((f) => f.event === 'message' && f.data.id === message.id);
  await laptop.next((f) => f.event === 'message' && f.data.id === message.id);
  await phone.request('ack', { seq: onPhone.seq });
  await quietSince(sentAt);
  assert.equal(sub.attempts.length, 0, 'the phone took it; the laptop never acked');
  await Promise.all([phone.close(), laptop.close()]);
});

test('a Socket.IO connection that received the message live takes it (Socket.IO clients do not ack)', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const socket = io(BASE, { transports: ['websocket'], forceNew: true, reconnection: false, query: { token: token(bob) } });
  try {
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const got = once(socket, 'message');
    const sentAt = Date.now();
    const message = await dm(alice, bob, 'over socket.io');
    const [data] = await got;
    assert.equal(data.id, message.id);
    await quietSince(sentAt);
    assert.equal(sub.attempts.length, 0, 'received live: no notification');
  } finally {
    socket.disconnect();
  }
});

test('connected but not acking, or all devices gone: exactly one notification after the delay', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const bobs = await subscribed(bob);
  const carols = await subscribed(carol);
  // Bob's devices were here and left; Carol's device is connected and never acks.
  const gone = await Promise.all([connectUser(bob), connectUser(bob)]);
  await Promise.all(gone.map((d) => d.close()));
  const idle = await connectUser(carol);
  const sentAt = Date.now();
  const message = await dm(alice, [bob, carol], 'anyone?');
  await idle.next((f) => f.event === 'message' && f.data.id === message.id);
  for (const sub of [bobs, carols]) {
    const note = await sub.notification(1);
    assert.ok(note.at - sentAt >= AFTER_MS - 100, `after the delay: ${note.at - sentAt} ms`);
    assert.equal(note.payload.message_id, message.id);
    assert.equal(note.payload.count, 1);
  }
  await quietSince(sentAt);
  assert.equal(bobs.attempts.length, 1, 'exactly one for bob');
  assert.equal(carols.attempts.length, 1, 'exactly one for carol');
  await idle.close();
});

test('a burst of ten direct messages collapses into one notification with count 10', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const sender = await connectUser(alice);
  const ids = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
  const sentAt = Date.now();
  // All ten frames at once, then their acks: the burst takes far less than the delay.
  for (const [i, id] of ids.entries()) sender.send({ event: 'message.send', id, data: { to: [bob], body: `burst ${i}` } });
  const acks = [];
  for (const id of ids) acks.push(await sender.next((f) => f.id === id));
  assert.deepEqual(acks.map((a) => a.event), Array(10).fill('ack'), JSON.stringify(acks.find((a) => a.event !== 'ack')));
  const burstMs = Date.now() - sentAt;
  assert.ok(burstMs < AFTER_MS, `the burst was stored within the delay (${burstMs} ms)`);
  const note = await sub.notification(1);
  assert.equal(note.payload.count, 10);
  assert.equal(note.payload.kind, 'message');
  assert.equal(note.payload.seq, 10, "the latest event of bob's stream");
  const latest = acks.find((a) => a.data.message.id === note.payload.message_id);
  assert.ok(latest, 'the preview is one of the burst');
  assert.ok(note.payload.body.includes(latest.data.message.body), `the latest one's preview: ${note.payload.body}`);
  await quietSince(sentAt);
  assert.equal(sub.attempts.length, 1, 'one notification for the whole burst');
  await sender.close();
});

test('room levels: none never notifies, mentions only when mentioned, all always; a member who saw it live is not notified', async () => {
  const [alice, bob, carol, dave, erin, frank] = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((p) => uid(p));
  const made = await internal('POST', '/internal/v1/rooms', { name: 'notify room', owner: alice, members: [bob, carol, dave, erin, frank] });
  assert.equal(made.status, 201, made.text);
  const room = made.body.id;
  const levelPath = `/v1/rooms/${encodeURIComponent(room)}/notifications`;
  const setLevel = (user, level) => http('PUT', levelPath, { tok: token(user), body: { level } });

  const initial = await http('GET', levelPath, { tok: token(carol) });
  assert.equal(initial.status, 200, initial.text);
  assert.deepEqual(initial.body, { room_id: room, level: 'mentions' }, 'mentions is the default');
  for (const [user, level] of [[bob, 'none'], [dave, 'all'], [erin, 'all'], [frank, 'all']]) {
    const res = await setLevel(user, level);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { room_id: room, level });
  }
  assert.deepEqual((await http('GET', levelPath, { tok: token(bob) })).body, { room_id: room, level: 'none' });
  const loud = await setLevel(carol, 'loud');
  assert.equal(loud.status, 400);
  assert.equal(loud.body.error.code, 'validation');
  assert.equal((await http('GET', levelPath)).status, 401);
  const stranger = await setLevel(uid('stranger'), 'all');
  assert.equal(stranger.status, 403, 'only members have a level');
  assert.equal(stranger.body.error.code, 'not_a_member');
  assert.equal((await http('GET', '/v1/rooms/no-such-room/notifications', { tok: token(carol) })).status, 404);

  const [bobs, carols, daves, erins, franks] = await Promise.all([bob, carol, dave, erin, frank].map((u) => subscribed(u)));
  // Erin is on the room socket (gets the message itself); Frank on his user socket only (gets
  // room.activity): both saw it live.
  const live = await connectRoom(erin, room);
  const elsewhere = await connectUser(frank);
  const say = async (body, mentions) => {
    const res = await http('POST', `/v1/rooms/${encodeURIComponent(room)}/messages`, {
      tok: token(alice),
      body: { type: 'text', body, ...(mentions ? { data: { mentions } } : {}) },
    });
    assert.equal(res.status, 201, res.text);
    return res.body.message;
  };

  const firstAt = Date.now();
  const first = await say('bob, look at this', [bob]);
  await live.next((f) => f.event === 'message' && f.data.id === first.id);
  assert.equal((await elsewhere.next('room.activity')).data.last_message.id, first.id);
  const daveNote = await daves.notification(1);
  assertPayloadShape(daveNote.payload);
  assert.equal(daveNote.payload.kind, 'room');
  assert.equal(daveNote.payload.room_id, room);
  assert.equal(daveNote.payload.sender_id, alice);
  assert.equal(daveNote.payload.message_id, first.id);
  assert.equal(daveNote.payload.count, 1);
  assert.equal(daveNote.payload.title, room, 'a room note is titled with the room id');
  assert.equal(daveNote.payload.body, `${alice}: bob, look at this`);
  assert.equal(daveNote.payload.seq, null, 'room notes have no seq');
  assert.equal(daveNote.payload.urgent, false);
  assertPushRequest(daveNote, 'normal');
  await quietSince(firstAt);
  assert.equal(bobs.attempts.length, 0, 'bob (none) is not notified though mentioned');
  assert.equal(carols.attempts.length, 0, 'carol (mentions) is not notified of a message without her');
  assert.equal(erins.attempts.length, 0, 'erin (all) saw it live on the room socket');
  assert.equal(franks.attempts.length, 0, 'frank (all) got its room.activity live');
  assert.equal(daves.attempts.length, 1);

  const second = await say('carol, your turn', [carol]);
  const carolNote = await carols.notification(1);
  assert.equal(carolNote.payload.kind, 'room');
  assert.equal(carolNote.payload.room_id, room);
  assert.equal(carolNote.payload.message_id, second.id);
  assert.equal(carolNote.payload.count, 1);
  assert.equal(carolNote.payload.urgent, true, 'a mention is urgent');
  assertPushRequest(carolNote, 'high');
  await Promise.all([live.close(), elsewhere.close()]);
});

test('a revoked user\'s subscriptions and pending notification are gone; nothing is sent', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const sentAt = Date.now();
  await dm(alice, bob, 'before the revocation');
  const revoked = await internal('POST', `/internal/v1/users/${bob}/disconnect`, { reason: 'account locked', revoke: true });
  assert.equal(revoked.status, 200, revoked.text);
  assert.ok(Date.now() - sentAt < AFTER_MS, 'revoked before the notification was due');
  const old = await http('GET', subsPath, { tok: token(bob, { iat: revoked.body.revoked_before }) });
  assert.equal(old.status, 401);
  assert.equal(old.body.error.code, 'token_revoked');
  const fresh = signHS256(claims(bob, { iat: revoked.body.revoked_before + 1 }));
  const after = await until(async () => {
    const res = await http('GET', subsPath, { tok: fresh });
    return res.status === 200 ? res.body : null;
  }, { what: 'the first token past the cut-off accepted', timeoutMs: 3000, everyMs: 200 });
  assert.deepEqual(after.subscriptions, [], 'the subscriptions were deleted');
  await dm(alice, bob, 'after the revocation');
  await quietSince(Date.now());
  assert.equal(sub.attempts.length, 0, 'nothing was sent, before or after');
});

test('account deletion deletes the subscriptions and the pending notification', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = await subscribed(bob);
  const sentAt = Date.now();
  await dm(alice, bob, 'before the deletion');
  const deleted = await internal('DELETE', `/internal/v1/users/${encodeURIComponent(bob)}`);
  assert.ok(deleted.status >= 200 && deleted.status < 300, `${deleted.status} ${deleted.text}`);
  assert.ok(Date.now() - sentAt < AFTER_MS, 'deleted before the notification was due');
  await quietSince(sentAt);
  assert.equal(sub.attempts.length, 0);
});

test('a backend push notifies with its notify title, body and url, and never without notify', async () => {
  const [bob, carol] = [uid('bob'), uid('carol')];
  const bobs = await subscribed(bob);
  const carols = await subscribed(carol);
  const sentAt = Date.now();
  const notify = { title: 'Order shipped', body: 'Your order #42 is on its way', url: 'https://shop.example/orders/42' };
  const withNotify = await push([bob], 'order.shipped', { order: 42 }, { notify });
  assert.equal(withNotify.status, 200, withNotify.text);
  const without = await push([carol], 'order.shipped', { order: 43 });
  assert.equal(without.status, 200, without.text);

  const note = await bobs.notification(1);
  assertPayloadShape(note.payload);
  assert.equal(note.payload.kind, 'push');
  assert.equal(note.payload.title, notify.title);
  assert.equal(note.payload.body, notify.body);
  assert.equal(note.payload.url, notify.url);
  assert.equal(note.payload.count, 1);
  assert.equal(note.payload.seq, withNotify.body.results[0].seq);
  assert.equal(note.payload.sender_id, null);
  assert.equal(note.payload.room_id, null);
  assert.equal(note.payload.user_id, bob);
  assert.equal(note.payload.urgent, false);
  assertPushRequest(note, 'normal');
  await quietSince(sentAt);
  assert.equal(bobs.attempts.length, 1);
  assert.equal(carols.attempts.length, 0, 'a push without notify never notifies');

  const bad = await push([bob], 'order.shipped', {}, { notify: { body: 'no title' } });
  assert.equal(bad.status, 400, `notify without a title: ${bad.text}`);
});

test('a 410 from the push service deletes the subscription', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const expired = (await subscribed(bob)).answerAlways({ status: 410 });
  await dm(alice, bob, 'anyone home?');
  const attempt = await expired.attempt(1);
  assert.equal(attempt.status, 410);
  await until(async () => !(await list(bob)).some((s) => s.endpoint === expired.endpoint), {
    what: 'the expired subscription removed', timeoutMs: 5000, everyMs: 100,
  });
  const laterAt = Date.now();
  await dm(alice, bob, 'still nobody?');
  await quietSince(laterAt);
  assert.equal(expired.attempts.length, 1, 'never tried again');
});

test('429 with Retry-After: 1 twice, then delivered on the third attempt', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const sub = (await subscribed(bob)).answerNext({ status: 429, headers: { 'retry-after': '1' } }, 2);
  const message = await dm(alice, bob, 'third time lucky');
  const note = await sub.notification(1, 20_000);
  assert.deepEqual(sub.attempts.map((a) => a.status), [429, 429, 201]);
  assert.equal(note, sub.attempts[2]);
  for (let i = 1; i < 3; i++) {
    const gap = sub.attempts[i].at - sub.attempts[i - 1].at;
    assert.ok(gap >= 900, `attempt ${i + 1} honoured Retry-After: ${gap} ms`);
  }
  assert.deepEqual(sub.attempts.map((a) => a.payload.message_id), [message.id, message.id, message.id], 'the same notification each time');
  const deliveredAt = Date.now();
  await quietSince(deliveredAt - AFTER_MS);
  assert.equal(sub.attempts.length, 3, 'nothing after the delivery');
  assert.equal((await list(bob)).length, 1, 'the subscription stays');
});

// --- The webhook --------------------------------------------------------------------------

describe('the notification webhook', () => {
  const secret = randomBytes(32).toString('hex');
  let dir;
  let gw;
  let child;
  let hook;
  const waiters = new Set();
  let answer = () => ({ status: 200 });
  const callsOf = (user) => hook.calls.filter((c) => c.user_id === user);
  /** The n-th verified webhook call for `user`, awaited. */
  const webhookCall = (user, n = 1, timeoutMs = 15_000) => new Promise((resolve, reject) => {
    const waiter = () => {
      const calls = callsOf(user);
      if (calls.length < n) return false;
      clearTimeout(timer);
      waiters.delete(waiter);
      resolve(calls[n - 1]);
      return true;
    };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      reject(new Error(`no webhook call #${n} for ${user} within ${timeoutMs} ms (rejected: ${hook.rejected.length})`));
    }, timeoutMs);
    if (!waiter()) waiters.add(waiter);
  });
  const gwDm = async (from, to, body) => {
    const res = await gw.call('POST', '/v1/messages', { to: [to], type: 'text', body }, gw.tok(from));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.message;
  };

  before(async () => {
    hook = await startHookServer({
      secret,
      handler: (call) => {
        call.receivedAt = Date.now();
        for (const waiter of [...waiters]) waiter();
        return answer(call);
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'switchboard-notify-'));
    gw = await ownGateway(dir, GENEROUS_RATES, {
      NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${hook.port}/notify`,
      NOTIFY_WEBHOOK_SECRET: secret,
      NOTIFY_AFTER_SECONDS: String(AFTER_MS / 1000),
      NOTIFY_MIN_INTERVAL_SECONDS: String(INTERVAL_MS / 1000),
    });
    child = await gw.start(1);
  });
  after(async () => {
    child?.stop();
    await Promise.race([child?.exited, sleep(10_000)]);
    await hook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    assert.deepEqual(hook.rejected.map((r) => r.headers[SIGNATURE_HEADER]), [], 'every webhook call the gateway made was signed right');
  });

  test('the test backend verifies signatures as the spec says: a bad one or a stale t is refused', async () => {
    const body = JSON.stringify({ id: 'n-probe', user_id: 'probe', count: 1 });
    const now = Math.floor(Date.now() / 1000);
    assert.ok(verifySignature(body, signHook(secret, now, body), secret));
    assert.ok(!verifySignature(body, signHook(secret, now - 301, body), secret), 'stale t');
    assert.ok(!verifySignature(body, signHook(secret, now + 301, body), secret), 't in the future');
    assert.ok(!verifySignature(body, signHook('another secret', now, body), secret), 'another secret');
    assert.ok(!verifySignature(`${body} `, signHook(secret, now, body), secret), 'another body');
    assert.ok(!verifySignature(body, undefined, secret), 'no header');
    const post = (signature) => fetch(`http://127.0.0.1:${hook.port}/notify`, {
      method: 'POST', headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature }, body,
    });
    assert.equal((await post(signHook(secret, now - 600, body))).status, 401);
    const good = signHook(secret, now, body);
    assert.equal((await post(good.slice(0, -1) + (good.endsWith('0') ? '1' : '0'))).status, 401);
    assert.equal(hook.rejected.length, 2);
    hook.rejected.length = 0;
    assert.equal((await post(signHook(secret, now, body))).status, 200);
    assert.equal(callsOf('probe').length, 1);
    // Web Push is off on this gateway (no VAPID keys): the webhook works alone.
    const key = await gw.call('GET', '/v1/push/public-key');
    assert.equal(key.status, 404);
    assert.equal(key.body.error.code, 'push_disabled');
    const sub = await gw.call('POST', '/v1/push-subscriptions', service.subscribe().json, gw.tok(uid()));
    assert.equal(sub.status, 404);
    assert.equal(sub.body.error.code, 'push_disabled');
  });

  test("an offline user's direct message is one signed webhook call with user_id, count and id", async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    const sentAt = Date.now();
    const message = await gwDm(alice, bob, 'ping from alice');
    const call = await webhookCall(bob);
    assert.ok(call.receivedAt - sentAt >= AFTER_MS - 100, `after the delay: ${call.receivedAt - sentAt} ms`);
    assert.equal(call.path, '/notify');
    assert.match(call.headers['content-type'], /^application\/json/);
    assert.ok(Math.abs(call.t - Date.now() / 1000) < 60, 't is now');
    assertPayloadShape(call);
    assert.equal(call.user_id, bob);
    assert.equal(call.count, 1);
    assert.equal(typeof call.id, 'string');
    assert.ok(call.id.length > 0);
    assert.equal(call.subscriptions, 0, 'no Web Push subscriptions on this gateway');
    assert.equal(call.kind, 'message');
    assert.equal(call.sender_id, alice);
    assert.equal(call.message_id, message.id);
    assert.ok(call.body.includes('ping from alice'), call.body);
    await quietSince(sentAt);
    assert.equal(callsOf(bob).length, 1, 'exactly one call');
    assert.equal(callsOf(alice).length, 0, 'the sender is not notified');
  });

  test('a backend answering 500 is retried with the same id', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    let failed = false;
    answer = (call) => {
      if (call.user_id === bob && !failed) {
        failed = true;
        return { status: 500, body: { error: 'try later' } };
      }
      return { status: 200 };
    };
    try {
      const message = await gwDm(alice, bob, 'retry me');
      const first = await webhookCall(bob, 1);
      const second = await webhookCall(bob, 2, 20_000);
      assert.equal(second.id, first.id, 'the same id across retries');
      assert.equal(second.message_id, message.id);
      assert.equal(second.count, 1);
      const gap = second.receivedAt - first.receivedAt;
      assert.ok(gap >= 900, `backoff from 1 s: ${gap} ms`);
      await quietSince(second.receivedAt - AFTER_MS);
      assert.equal(callsOf(bob).length, 2, 'no call after the 200');
    } finally {
      answer = () => ({ status: 200 });
    }
  });

  test('a webhook holding its answer 4 s slows no delivery', async () => {
    const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
    const HOLD_MS = 4000;
    let answered;
    const held = new Promise((resolve) => { answered = resolve; });
    answer = async (call) => {
      if (call.user_id !== bob) return { status: 200 };
      await sleep(HOLD_MS);
      answered(Date.now());
      return { status: 200 };
    };
    try {
      const other = await connectUser(carol, { tok: gw.tok(carol), base: gw.base });
      await gwDm(alice, bob, 'hold on');
      const hanging = await webhookCall(bob);
      const hangsUntil = hanging.receivedAt + HOLD_MS;

      // Another user of the gateway gets a backend push at once.
      const pushedAt = Date.now();
      const res = await gw.call('POST', '/internal/v1/push', { users: [carol], event: 'order.shipped', data: { n: 1 } }, gw.internalToken);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await other.next('order.shipped', 3000);
      const pushMs = Date.now() - pushedAt;
      assert.ok(pushMs < 1000, `the push took ${pushMs} ms`);

      // Bob himself — whose notification is in flight — connects and gets a new message at once.
      const device = await connectUser(bob, { tok: gw.tok(bob), base: gw.base });
      const dmAt = Date.now();
      const message = await gwDm(alice, bob, 'and now?');
      const frame = await device.next((f) => f.event === 'message' && f.data.id === message.id, 3000);
      const dmMs = Date.now() - dmAt;
      assert.ok(dmMs < 1000, `the message took ${dmMs} ms`);
      assert.ok(Date.now() < hangsUntil, 'all of it while the webhook was still holding its answer');
      await device.request('ack', { seq: frame.seq });
      await Promise.all([device.close(), other.close()]);
      await held;
      assert.equal(callsOf(bob).length, 1, 'not retried while the answer was held (the timeout is 5 s)');
    } finally {
      answer = () => ({ status: 200 });
    }
  });
});
