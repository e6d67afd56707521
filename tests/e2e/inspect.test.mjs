// Operators' views (issue #15): GET /internal/v1/users/{id} (a user's devices, stream, cursors,
// revocation, push state and alarm, from their UserHub) and GET /internal/v1/rooms/{id}/stats (a
// room's sockets per shard, window, D1 copy, pending notes and alarm, from the Room). The suite's
// gateway runs with ROOM_SHARD_SOCKETS=2, so a room of five sockets spans three objects.
//
// Every answer is also checked for what must never be in it: a user token, the internal token,
// a push endpoint's path (a capability) or a subscription's keys.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { io } from 'socket.io-client';
import {
  BASE, INTERNAL_TOKEN, connectRoom, connectUser, createRoom, http, internal, push, token, uid, until,
} from './helpers.mjs';

/** Every secret a test handed the gateway, to look for in its answers. */
const secrets = new Set([INTERNAL_TOKEN]);
const tokenFor = (user, extra) => {
  const tok = token(user, extra);
  secrets.add(tok);
  return tok;
};

function assertNoSecret(body) {
  const text = JSON.stringify(body);
  for (const secret of secrets) assert.ok(!text.includes(secret), `a secret leaked into ${text.slice(0, 200)}…`);
}

async function report(user) {
  const res = await internal('GET', `/internal/v1/users/${encodeURIComponent(user)}`);
  assert.equal(res.status, 200, res.text);
  assertNoSecret(res.body);
  return res.body;
}

async function stats(room) {
  const res = await internal('GET', `/internal/v1/rooms/${encodeURIComponent(room)}/stats`);
  assert.equal(res.status, 200, res.text);
  assertNoSecret(res.body);
  return res.body;
}

const reasons = (alarm) => alarm.reasons.map((r) => r.reason);
const byDevice = (r) => Object.fromEntries(r.devices.map((d) => [d.device, d]));

test('a user with two devices and an ack: both devices, how each token came, the cursor, the stream head; a push moves it', async () => {
  const user = uid('insp');
  const phone = await connectUser(user, { path: '/v1/connect?device=phone', tok: tokenFor(user) });
  const laptop = await connectUser(user, { path: '/v1/connect?device=laptop', tok: tokenFor(user, { ttl: 900 }), carrier: 'subprotocol' });
  const first = await push([user], 'ops.first', { n: 1 });
  assert.equal(first.status, 200, first.text);
  assert.equal((await phone.next('ops.first')).seq, 1);
  assert.equal((await phone.request('ack', { seq: 1 })).event, 'ack');

  const r = await report(user);
  assert.equal(r.user_id, user);
  assert.equal(r.open_devices, 2);
  const devices = byDevice(r);
  assert.deepEqual(Object.keys(devices).sort(), ['laptop', 'phone']);
  assert.equal(devices.phone.carrier, 'header');
  assert.equal(devices.laptop.carrier, 'subprotocol');
  for (const [name, client] of [['phone', phone], ['laptop', laptop]]) {
    const d = devices[name];
    assert.equal(d.kind, 'websocket');
    assert.equal(d.conn_id, client.ready.data.conn_id);
    assert.equal(d.expires_at, client.ready.data.expires_at);
    assert.equal(d.closing, false);
    assert.ok(Math.abs(d.connected_at - Date.now()) < 60_000, `connected_at ${d.connected_at}`);
  }
  assert.equal(r.stream.head_seq, 1);
  assert.equal(r.stream.pruned_through, 0);
  assert.equal(r.stream.classes.backend.events, 1);
  assert.ok(r.stream.classes.backend.bytes > 0);
  assert.equal(r.stream.classes.chat.events, 0);
  assert.equal(r.cursor_count, 1);
  assert.equal(r.cursors.length, 1);
  assert.equal(r.cursors[0].device, 'phone');
  assert.equal(r.cursors[0].seq, 1);
  assert.equal(r.revoked_before, null);
  assert.equal(r.last_seen, null);
  // The alarm waits for the sooner token expiry, and says so.
  const expiry = Math.min(devices.phone.expires_at, devices.laptop.expires_at) * 1000;
  assert.ok(reasons(r.alarm).includes('token_expiry'), JSON.stringify(r.alarm));
  assert.equal(r.alarm.reasons.find((x) => x.reason === 'token_expiry').at, expiry);
  assert.ok(r.alarm.at !== null && r.alarm.at <= expiry, JSON.stringify(r.alarm));

  const second = await push([user], 'ops.second', { n: 2 });
  assert.equal(second.body.results[0].seq, 2);
  const after = await report(user);
  assert.equal(after.stream.head_seq, 2);
  assert.equal(after.stream.classes.backend.events, 2);
  assert.equal(after.cursors[0].seq, 1, 'the cursor moves only with an ack');

  await laptop.close();
  const one = await until(async () => {
    const now = await report(user);
    return now.devices.length === 1 && now;
  }, { what: 'the laptop gone from the report' });
  assert.equal(one.devices[0].device, 'phone');
  await phone.close();
  const none = await until(async () => {
    const now = await report(user);
    return now.devices.length === 0 && now;
  }, { what: 'every device gone' });
  assert.ok(none.last_seen !== null, 'last_seen set when the last device left');
  assert.ok(!reasons(none.alarm).includes('token_expiry'), 'no expiry waited for without a socket');
});

test('a token in the query and a socket.io connection are told apart', async () => {
  const user = uid('inspq');
  const raw = await connectUser(user, { path: '/v1/connect?device=query-dev', tok: tokenFor(user), carrier: 'query' });
  const sio = io(`${BASE}/`, { transports: ['websocket'], forceNew: true, reconnection: false, query: { device: 'sio-dev' }, extraHeaders: { authorization: `Bearer ${tokenFor(user)}` } });
  try {
    await once(sio, 'connect');
    const r = await report(user);
    const devices = byDevice(r);
    assert.equal(devices['query-dev'].carrier, 'query');
    assert.equal(devices['query-dev'].kind, 'websocket');
    assert.equal(devices['sio-dev'].kind, 'socketio');
    assert.equal(devices['sio-dev'].carrier, 'header');
    assert.deepEqual(reasons(r.alarm), ['token_expiry'], `the relay keeps the heartbeat, not the hub's alarm: ${JSON.stringify(r.alarm)}`);
    // Two heartbeats later the hub has not woken: pings and pongs stop at the relay.
    for (let i = 0; i < 2; i++) await once(sio.io, 'ping');
    const later = await report(user);
    assert.equal(later.alarm.wakes, r.alarm.wakes, JSON.stringify(later.alarm));
  } finally {
    sio.disconnect();
    raw.close();
  }
});

test('revoked: the cut-off shows, and no device is open', async () => {
  const user = uid('insr');
  const client = await connectUser(user, { tok: tokenFor(user) });
  const res = await internal('POST', `/internal/v1/users/${user}/disconnect`, { reason: 'ops test', revoke: true });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.devices, 1);
  // The hub marks the socket closing before it answers: whether or not the client has let go
  // yet, nothing is open.
  const r = await report(user);
  assert.equal(r.revoked_before, res.body.revoked_before);
  assert.equal(r.open_devices, 0);
  assert.ok(r.devices.every((d) => d.closing), JSON.stringify(r.devices));
  client.ws.terminate();
});

test('an unknown user is a valid empty report, and asking twice wakes nothing', async () => {
  const user = uid('nobody');
  for (let i = 0; i < 2; i++) {
    const r = await report(user);
    assert.deepEqual(r, {
      user_id: user,
      open_devices: 0,
      devices: [],
      stream: {
        head_seq: 0,
        pruned_through: 0,
        classes: {
          backend: { events: 0, bytes: 0, pruned_through: 0 },
          chat: { events: 0, bytes: 0, pruned_through: 0 },
        },
        prune_at: null,
      },
      cursors: [],
      cursor_count: 0,
      revoked_before: null,
      last_seen: null,
      push: { subscriptions: [], pending: 0, queued: 0, notify_at: null, last_sent: null },
      alarm: { at: null, wakes: 0, reasons: [] },
    });
  }
  assert.equal((await internal('GET', '/internal/v1/users/bad%20id')).status, 400);
});

test('push state: a subscription by its host only, a pending notification and its alarm, then the one sent', async () => {
  const received = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.url);
      res.writeHead(201).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const user = uid('insn');
    const capability = `cap-${randomBytes(12).toString('hex')}`;
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    secrets.add(capability);
    secrets.add(keys.p256dh);
    secrets.add(keys.auth);
    const endpoint = `http://127.0.0.1:${server.address().port}/push/${capability}`;
    const sub = await http('POST', '/v1/push-subscriptions', { tok: tokenFor(user), body: { endpoint, keys, device: 'tablet' } });
    assert.equal(sub.status, 201, sub.text);

    const pushed = await push([user], 'ops.notify', {}, { notify: { title: 'Hello', body: 'from ops' } });
    assert.equal(pushed.status, 200, pushed.text);
    const r = await report(user);
    assert.equal(r.push.subscriptions.length, 1);
    assert.deepEqual(r.push.subscriptions[0], { id: sub.body.id, host: '127.0.0.1', device: 'tablet', created_at: r.push.subscriptions[0].created_at });
    if (r.push.last_sent === null) {
      // Not decided yet (NOTIFY_AFTER_SECONDS=1): pending, and the alarm waits for it.
      assert.equal(r.push.pending, 1);
      assert.ok(r.push.notify_at !== null);
      assert.ok(reasons(r.alarm).includes('notifications'), JSON.stringify(r.alarm));
    }
    const sent = await until(async () => {
      const now = await report(user);
      return now.push.last_sent !== null && now.push.queued === 0 && now.push.pending === 0 && now;
    }, { what: 'the notification decided and delivered' });
    await until(() => received.length === 1, { what: 'the push service called' });
    assert.ok(!reasons(sent.alarm).includes('notifications') || sent.push.notify_at !== null);
    assert.ok(sent.alarm.wakes >= 1);
  } finally {
    server.close();
  }
});

test('a room across shards: sockets per shard, head seq, the copy catching up, and why the alarm is set', async () => {
  const users = Array.from({ length: 6 }, (_, i) => uid(`insroom${i}`));
  const room = await createRoom(users[0], users.slice(1));
  // Five sockets (the sixth member stays away, so activity notes have someone to tell).
  const clients = [];
  for (const user of users.slice(0, 5)) clients.push(await connectRoom(user, room, { tok: tokenFor(user) }));

  const s = await stats(room);
  const shards = await internal('GET', `/internal/v1/rooms/${room}/shards`);
  assert.equal(s.room_id, room);
  assert.equal(s.sockets.total, 5);
  assert.equal(s.sockets.users, 5);
  assert.equal(s.sockets.shard_sockets, 2);
  assert.deepEqual(s.sockets.shards.map((x) => [x.shard, x.sockets, x.users]), [[0, 2, 2], [1, 2, 2], [2, 1, 1]]);
  assert.deepEqual(s.sockets.shards, shards.body.shards);
  assert.equal(s.members, 6);
  assert.deepEqual(s.stream, { head_seq: 0, oldest_kept_seq: null, messages_kept: 0, pruned_through: 0, window_messages: Number(process.env.SB_ROOM_WINDOW_MESSAGES) });
  assert.ok(reasons(s.alarm).includes('token_expiry'), JSON.stringify(s.alarm));

  // A first message: copied at once, and the notes go out at once.
  const send = (client, body) => client.request('send', { type: 'text', body, client_id: body });
  assert.equal((await send(clients[4], 'one')).event, 'ack');
  const quiet = await until(async () => {
    const now = await stats(room);
    return now.copy.flushed_through === 1 && now.activity.last_sent_at !== null && now.activity.pending_since === null && now;
  }, { what: 'the first message copied and noted' });
  assert.equal(quiet.copy.lag, 0);

  // A second one within the second: the copy and the notes wait for the alarm, which says why.
  assert.equal((await send(clients[1], 'two')).event, 'ack');
  const busy = await stats(room);
  assert.equal(busy.stream.head_seq, 2);
  assert.ok(busy.activity.pending_since !== null, JSON.stringify(busy.activity));
  const notes = busy.alarm.reasons.find((x) => x.reason === 'activity_notes');
  assert.ok(notes, JSON.stringify(busy.alarm));
  assert.equal(notes.at, busy.activity.due_at);
  if (busy.copy.lag > 0 && !busy.copy.running) {
    assert.ok(reasons(busy.alarm).includes('d1_copy'), JSON.stringify(busy));
    assert.ok(busy.copy.oldest_uncopied_age_ms >= 0);
  }
  assert.ok(busy.alarm.at !== null && busy.alarm.at <= notes.at, JSON.stringify(busy.alarm));

  const caughtUp = await until(async () => {
    const now = await stats(room);
    return now.copy.flushed_through === now.stream.head_seq && now.activity.pending_since === null && now;
  }, { what: 'the copy catching up to the head' });
  assert.equal(caughtUp.stream.head_seq, 2);
  assert.equal(caughtUp.copy.lag, 0);
  assert.equal(caughtUp.copy.oldest_uncopied_age_ms, null);
  assert.equal(caughtUp.copy.failures, 0);
  assert.equal(caughtUp.stream.oldest_kept_seq, 1);
  assert.equal(caughtUp.stream.messages_kept, 2);
  assert.ok(!reasons(caughtUp.alarm).includes('d1_copy') && !reasons(caughtUp.alarm).includes('activity_notes'), JSON.stringify(caughtUp.alarm));
  assert.ok(caughtUp.alarm.wakes >= 1);
  assert.ok(caughtUp.copy.batches >= 1);

  for (const client of clients) await client.close();
  const empty = await until(async () => {
    const now = await stats(room);
    return now.sockets.total === 0 && now;
  }, { what: 'every socket gone' });
  assert.deepEqual(empty.alarm.reasons, []);
});

test('inspection needs the internal token; a missing room is 404', async () => {
  const user = uid('insa');
  const room = await createRoom(user);
  const paths = [`/internal/v1/users/${user}`, `/internal/v1/rooms/${room}/stats`];
  for (const path of paths) {
    assert.equal((await http('GET', path)).status, 401, path);
    const res = await http('GET', path, { tok: tokenFor(user) });
    assert.equal(res.status, 401, path);
    assert.equal(res.body.error.code, 'unauthorized');
  }
  const missing = await internal('GET', `/internal/v1/rooms/${uid('noroom')}/stats`);
  assert.equal(missing.status, 404);
  assert.equal((await internal('GET', '/internal/v1/rooms/bad%20id/stats')).status, 400);
  assert.equal((await internal('POST', `/internal/v1/users/${user}`)).status, 405);
});
