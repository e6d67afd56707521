// Generated input against both socket kinds and every HTTP route. Every frame with an id gets
// exactly one answer with a documented error code (never `internal`), no socket is dropped,
// no HTTP answer is a 5xx, and well-formed requests afterwards still work. Deterministic: the
// seed is SB_FUZZ_SEED or a fixed one, and every failure message carries it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  connectRoom, connectUser, createRoom, http, internal, push, token, uid, INTERNAL_TOKEN,
} from './helpers.mjs';

const SEED = Number(process.env.SB_FUZZ_SEED ?? 20261122);
const SOCKETS = 50;
const FRAMES_PER_SOCKET = 40;
const FRAME_CODES = new Set(['bad_frame', 'unknown_event', 'validation', 'forbidden', 'token_malformed', 'token_invalid', 'token_expired', 'token_not_yet_valid', 'token_revoked', 'delivery_incomplete', 'replay_limited']);

/** mulberry32: a small deterministic generator. */
function generator(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  const text = (n) => Array.from({ length: n }, () => String.fromCharCode(32 + int(95))).join('');
  return { next, int, pick, text };
}

const EVENTS = ['send', 'typing', 'read', 'auth', 'ack', 'sync', 'message.send', 'ping', 'nope', 'SEND', '', 'ready', 'message'];

function value(g, depth = 0) {
  switch (g.int(depth > 3 ? 5 : 8)) {
    case 0: return null;
    case 1: return g.next() < 0.5;
    case 2: return g.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 9223372036854775807, Number.MAX_SAFE_INTEGER]);
    case 3: return g.text(g.int(40));
    case 4: return g.pick(['m_' + 'a'.repeat(32), 'a b', '../x', 'x'.repeat(200), '😀', '%00']);
    case 5: return Array.from({ length: g.int(4) }, () => value(g, depth + 1));
    default: return Object.fromEntries(Array.from({ length: g.int(5) }, () => [g.pick(['type', 'body', 'seq', 'since', 'token', 'to', 'client_id', 'url', 'data', 'active', g.text(5)]), value(g, depth + 1)]));
  }
}

/** One generated frame: [text or Buffer, id or null]. */
function frame(g, n) {
  const id = g.next() < 0.8 ? `f${n}` : null;
  const withId = (obj) => (id ? { ...obj, id } : obj);
  switch (g.int(10)) {
    case 0: return [g.text(g.int(60)), null];
    case 1: return [Buffer.from(g.text(g.int(30))), null];
    case 2: {
      const depth = 100 + g.int(3000);
      return [`{"event":"send","id":"${id ?? 'x'}","data":${'['.repeat(depth)}${']'.repeat(depth)}}`, id];
    }
    case 3: return [JSON.stringify(withId({ event: g.pick(EVENTS), data: value(g) })), id];
    case 4: return [`{"event":"send","event":"typing","id":"${id ?? 'x'}","data":{}}`, id];
    case 5: return [JSON.stringify(withId({ event: 'send', data: { type: g.pick(['text', 'image', 'poll', 5]), body: g.text(g.int(5000)), client_id: g.pick(['ok-1', 'has space', 'x'.repeat(300)]) } })), id];
    case 6: return [`{"event":"read","id":"${id ?? 'x'}","data":{"seq":1${'0'.repeat(g.int(400))}}}`, id];
    case 7: return [JSON.stringify(withId({ event: g.pick(EVENTS), data: g.text(10) })), id];
    case 8: return [JSON.stringify({ event: 'send', id: value(g), data: {} }), null];
    default: return [JSON.stringify(withId({ event: g.pick(['typing', 'read', 'ack', 'sync']), data: value(g) })), id];
  }
}

async function fuzzSocket(client, g, final, label) {
  const ids = [];
  for (let n = 0; n < FRAMES_PER_SOCKET; n++) {
    const [payload, id] = frame(g, n);
    client.ws.send(payload);
    if (id && typeof payload === 'string' && payload.includes(`"id":"${id}"`)) ids.push(id);
  }
  const done = await client.request(final.event, final.data, 'final');
  assert.equal(done.event, 'ack', `${label}: a well-formed request after the fuzz (seed ${SEED}): ${JSON.stringify(done)}`);
  for (const f of client.frames.filter((f) => f.event === 'error')) {
    assert.ok(FRAME_CODES.has(f.data.code), `${label}: documented error code, got ${JSON.stringify(f.data)} (seed ${SEED})`);
  }
  for (const id of ids) {
    const answers = client.frames.filter((f) => f.id === id && (f.event === 'ack' || f.event === 'error'));
    assert.ok(answers.length <= 1, `${label}: at most one answer for ${id} (seed ${SEED})`);
  }
  assert.equal(client.ws.readyState, 1, `${label}: still open (seed ${SEED})`);
}

test('thousands of generated frames on user and room sockets get documented errors, and the sockets keep working', async () => {
  const g = generator(SEED);
  const owner = uid('fuzz-owner');
  const users = Array.from({ length: SOCKETS }, (_, i) => uid(`fz${i}`));
  const room = await createRoom(owner, users.slice(0, 90));
  for (let batch = 0; batch < SOCKETS; batch += 10) {
    await Promise.all(users.slice(batch, batch + 10).map(async (user, i) => {
      const hub = await connectUser(user);
      await fuzzSocket(hub, g, { event: 'ack', data: { seq: 0 } }, `user socket ${batch + i}`);
      const inRoom = await connectRoom(user, room);
      await fuzzSocket(inRoom, g, { event: 'read', data: { seq: 0 } }, `room socket ${batch + i}`);
      hub.ws.terminate();
      inRoom.ws.terminate();
    }));
  }
  const res = await push([owner], 'still.works', {});
  assert.equal(res.status, 200);
});

function routes() {
  const doc = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => [method.toUpperCase(), path]));
}

test('generated bodies and parameters on every HTTP route never get a 5xx', async () => {
  const g = generator(SEED + 1);
  const me = uid('fuzz-http');
  const room = await createRoom(me, []);
  const tok = token(me, { roles: g.next() < 0.5 ? ['admin'] : [] });
  const fill = (path) => path.replace(/\{(\w+)\}/g, () => encodeURIComponent(g.pick([room, me, 'm_' + '0'.repeat(32), g.text(8), 'x'.repeat(200), '%zz'.slice(0, 1)])));
  let requests = 0;
  for (const [method, path] of routes()) {
    for (let i = 0; i < 16; i++) {
      const url = fill(path) + (g.next() < 0.3 ? `?${g.pick(['limit', 'cursor', 'since', 'before_seq', 'users', 'unread', 'from'])}=${encodeURIComponent(String(value(g)))}` : '');
      const auth = path.startsWith('/internal/') ? INTERNAL_TOKEN : tok;
      const raw = g.pick([JSON.stringify(value(g)), g.text(g.int(100)), '', '{', JSON.stringify({ users: [me], event: 'a.b', data: value(g), name: g.text(5), body: g.text(10), ids: [g.text(5)], to: [me] })]);
      const res = await http(method, url, method === 'GET' || method === 'DELETE' ? { tok: auth } : { tok: auth, raw, headers: { 'content-type': 'application/json' } });
      requests++;
      assert.ok(res.status < 500 || res.status === 502, `${method} ${url} ${raw.slice(0, 80)} → ${res.status} ${res.text.slice(0, 200)} (seed ${SEED})`);
      // /socket.io/ answers what a socket.io server answers: {code: <number>, message}.
      const socketIoError = path === '/socket.io/' && Number.isInteger(res.body?.code) && res.body?.message;
      if (res.status >= 400) assert.ok(res.body?.error?.code || socketIoError, `${method} ${url} → ${res.status} has a JSON error (seed ${SEED})`);
    }
  }
  assert.equal(requests, routes().length * 16);
  // A fresh user: the fuzz may have revoked `me` (DELETE /internal/v1/users/{id} or the
  // disconnect route with `me` picked), and then every token of `me` minted now is refused.
  const after = await http('GET', '/v1/rooms', { tok: token(uid('fuzz-after')) });
  assert.equal(after.status, 200);
  assert.equal((await internal('POST', '/internal/v1/push', { users: [me], event: 'still.works', data: {} })).status, 200);
});

/** A generated Engine.IO / Socket.IO packet: mostly broken in one place. */
function socketIoPacket(g) {
  const nsp = g.pick(['', '/chat,', '/', '/x', `/${g.text(g.int(20))},`, '/\u0000,', `/${'n'.repeat(200)},`]);
  const id = g.pick(['', '1', '007', '-1', String(2 ** 53), '99999999999999999999', 'x']);
  const json = g.pick([
    JSON.stringify([g.pick(['message.send', 'room.join', 'room.send', 'auth', 'ack', 'connect', 'disconnect', 'x', 7]), value(g)]),
    JSON.stringify(value(g)),
    `[${g.text(g.int(30))}`,
    '{"token":5}',
    '',
  ]);
  switch (g.int(8)) {
    case 0: return `${g.pick(['0', '1', '5', '6', '7', '9', 'a', ''])}${g.text(g.int(10))}`;
    case 1: return `4${g.int(10)}${nsp}${id}${json}`;
    case 2: return `45${g.pick(['1', '99', '-1', '1000000', ''])}-${nsp}${json}`;
    case 3: return `40${nsp}${json}`;
    case 4: return `42${nsp}${id}${json}`;
    case 5: return `43${nsp}${id}${json}`;
    case 6: return `41${nsp}`;
    default: return `4${g.text(g.int(40))}`;
  }
}

test('fuzz: generated Engine.IO and Socket.IO packets get error events or clean closes, never a crash; the socket still answers', async () => {
  const { default: WebSocket } = await import('ws');
  const { WS_BASE } = await import('./helpers.mjs');
  const g = generator(SEED + 12);
  const CLEAN = new Set([1000, 1007, 1009, 4008]);
  for (let s = 0; s < 20; s++) {
    const user = uid('fz');
    const ws = new WebSocket(`${WS_BASE}/socket.io/?EIO=4&transport=websocket&token=${token(user)}`);
    const frames = [];
    let closed;
    ws.on('message', (data, binary) => frames.push(binary ? '<binary>' : String(data)));
    ws.on('close', (code) => { closed = code; });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send('40');
    const sent = [];
    for (let i = 0; i < 25; i++) {
      const packet = g.next() < 0.1 ? Buffer.from([0x04, g.int(256), g.int(256)]) : socketIoPacket(g);
      sent.push(String(packet));
      ws.send(packet);
    }
    // A well-formed request afterwards is answered, unless the socket was closed cleanly.
    ws.send('42/probe,1["ack",{"seq":0}]');
    ws.send('40/probe,');
    ws.send('42/probe,2["ack",{"seq":0}]');
    const answered = () => frames.some((f) => f.startsWith('43/probe,2['));
    const deadline = Date.now() + 10_000;
    while (!answered() && closed === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const where = `seed ${SEED + 12}, socket ${s}, sent ${JSON.stringify(sent)}`;
    if (closed !== undefined) assert.ok(CLEAN.has(closed), `closed with ${closed}: ${where}`);
    else assert.ok(answered(), `no answer after the garbage: ${where}`);
    for (const frame of frames.filter((f) => f.startsWith('42') && f.includes('["error",'))) {
      const code = JSON.parse(frame.slice(frame.indexOf('["error",'))).at(1).code;
      assert.ok(FRAME_CODES.has(code) || code === 'not_joined', `undocumented code ${code}: ${where}`);
    }
    ws.terminate();
  }
  const health = await http('GET', '/health');
  assert.equal(health.status, 200);
});
