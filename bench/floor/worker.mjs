// The platform floor: a minimal JavaScript Worker + two Durable Objects implementing exactly the
// subset of Switchboard's wire contract that the benchmarks drive (docs/PROTOCOL.md), served the
// same way as Switchboard (bench/serve.mjs --target floor). Whatever this costs is what the
// platform costs; Switchboard's figure divided by this one is what Switchboard's own code costs.
//
// Implemented, with Switchboard's frame and body shapes:
// - GET /v1/connect: HS256 JWT (WebCrypto) from `Authorization: Bearer`, `Sec-WebSocket-Protocol:
//   bearer, <jwt>` or `?token=`; refusals as JSON 426/401 before any Durable Object is addressed;
//   then the user's hub accepts a hibernatable socket and sends `ready`. `{"event":"ping"}` is
//   answered with `{"event":"pong"}` by the runtime (auto-response).
// - POST /internal/v1/push (internal bearer token): per user, one SQLite insert in the user's hub,
//   then `{"event","data","seq"}` to every device; `{"results":[{user,seq,devices,duplicate}]}`.
// - POST /internal/v1/rooms `{id,name}`, POST /internal/v1/rooms/{id}/members `{users}`: membership
//   in D1 (the project's migrations), as in Switchboard, then `room.added` pushed to each added
//   user's hub like any other push (stored, sent to their devices): the contract makes it a
//   durable stream event.
// - GET /v1/rooms/{id}/connect: the token, then ONE D1 read (room exists, user is a member; the
//   Worker reads D1 before the upgrade in Switchboard too), then the room accepts the socket and
//   sends `ready` and `presence`, and `user.joined` to the others on a user's first socket;
//   `user.left` to the others when a user's last socket closes.
// - Room frame `send`: one SQLite insert, `ack {message, duplicate}` to the sender, `message` to
//   every socket of the room.
// - Who is online (`GET /internal/v1/online` and broadcasts), which every session pays for: a
//   user's hub lists itself in its shard of a directory (16 Durable Objects, FNV-1a of the user
//   id, one SQLite upsert with a stamp) when it accepts a socket and does not know itself listed,
//   and unlists itself (one SQLite delete) when its last socket closes, as Switchboard's does;
//   neither call holds up the connect or the close. The last close also stores `last_seen`
//   (presence's grace period reads it).
// - Token expiry, in both hubs: every socket the benchmarks hold is under the contract's promise
//   that it is sent `token.expired` and closed 4001 when its token expires, and on this platform
//   only an alarm can wake a hibernated object for that. The alarm is kept at the soonest expiry
//   of an open socket (set on connect, re-planned on close, deleted when none is open).
// Not implemented (not benchmarked): resume (`since`), cursors and read receipts, idempotency keys,
// token refresh (`auth`), rate limits, typing, the D1 copy of room messages, room.activity.

const PING = '{"event":"ping"}';
const PONG = '{"event":"pong"}';
const LEEWAY_S = 30;
const HUB_FAN_OUT = 50;
const DIRECTORY_SHARDS = 16;
const encoder = new TextEncoder();

function errorResponse(status, code, message) {
  return Response.json({ error: { code, message } }, { status });
}

function base64UrlBytes(text) {
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const raw = atob(padded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

let hmacKey = null;
let hmacSecret = null;
function verifyKey(secret) {
  if (hmacSecret !== secret) {
    hmacSecret = secret;
    hmacKey = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'verify',
    ]);
  }
  return hmacKey;
}

class Refusal extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function tokenOf(request, url) {
  const authorization = request.headers.get('authorization');
  if (authorization) {
    const [scheme, token] = authorization.split(' ');
    if (scheme.toLowerCase() !== 'bearer' || !token) throw new Refusal(401, 'token_malformed', 'bad Authorization header');
    return { token, subprotocol: false };
  }
  const protocols = request.headers.get('sec-websocket-protocol');
  if (protocols) {
    const [first, token] = protocols.split(',').map((p) => p.trim());
    if (first === 'bearer' && token) return { token, subprotocol: true };
  }
  const token = url.searchParams.get('token');
  if (token) return { token, subprotocol: false };
  throw new Refusal(401, 'token_missing', 'send a token');
}

/** Verifies an HS256 JWT; returns the identity the hubs trust. */
async function verify(token, env) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Refusal(401, 'token_malformed', 'not a JWT');
  let header;
  let claims;
  try {
    header = JSON.parse(new TextDecoder().decode(base64UrlBytes(parts[0])));
    claims = JSON.parse(new TextDecoder().decode(base64UrlBytes(parts[1])));
  } catch {
    throw new Refusal(401, 'token_malformed', 'not a JWT');
  }
  if (header.alg !== 'HS256') throw new Refusal(401, 'token_invalid', 'unsupported alg');
  const key = await verifyKey(env.JWT_SECRET);
  const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
  if (!(await crypto.subtle.verify('HMAC', key, base64UrlBytes(parts[2]), signed))) {
    throw new Refusal(401, 'token_invalid', 'bad signature');
  }
  const now = Date.now() / 1000;
  if (typeof claims.sub !== 'string' || !claims.sub || typeof claims.exp !== 'number') {
    throw new Refusal(401, 'token_invalid', 'exp and sub are required');
  }
  if (claims.exp + LEEWAY_S < now) throw new Refusal(401, 'token_expired', 'the token has expired');
  for (const claim of ['nbf', 'iat']) {
    if (typeof claims[claim] === 'number' && claims[claim] - LEEWAY_S > now) {
      throw new Refusal(401, 'token_not_yet_valid', `${claim} is in the future`);
    }
  }
  if (env.JWT_ISSUER && claims.iss !== env.JWT_ISSUER) throw new Refusal(401, 'token_invalid', 'wrong iss');
  if (env.JWT_AUDIENCE) {
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(env.JWT_AUDIENCE)) throw new Refusal(401, 'token_invalid', 'wrong aud');
  }
  return { user_id: claims.sub, expires_at: claims.exp };
}

async function admit(request, url, env) {
  if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
    throw new Refusal(426, 'upgrade_required', 'this route only accepts WebSocket upgrades');
  }
  const { token, subprotocol } = tokenOf(request, url);
  return { identity: await verify(token, env), subprotocol };
}

function hubUpgrade(admitted, url, extra = {}) {
  const headers = { upgrade: 'websocket', 'x-identity': JSON.stringify(admitted.identity), ...extra };
  if (admitted.subprotocol) headers['x-subprotocol'] = 'bearer';
  const device = url.searchParams.get('device');
  return new Request(`https://hub/connect${device ? `?device=${encodeURIComponent(device)}` : ''}`, { headers });
}

/** The directory shard a user is listed in: FNV-1a (32 bits) of the user id. */
function shardOf(user) {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(user)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash % DIRECTORY_SHARDS;
}

/** Lists (`join`) or unlists (`leave`) `user` under `stamp`, without waiting for the answer. */
function register(env, call, user, stamp) {
  const stub = env.DIRECTORY.get(env.DIRECTORY.idFromName(`online-${shardOf(user)}`));
  stub.fetch(`https://directory/${call}`, { method: 'POST', body: JSON.stringify({ user, stamp }) }).catch(() => {});
}

function internal(request, env) {
  if (request.headers.get('authorization') !== `Bearer ${env.INTERNAL_API_TOKEN}`) {
    throw new Refusal(401, 'unauthorized', 'internal token required');
  }
}

async function push(request, env) {
  internal(request, env);
  const body = await request.json();
  if (!Array.isArray(body.users) || body.users.length === 0 || typeof body.event !== 'string') {
    throw new Refusal(400, 'validation', 'users and event are required');
  }
  return Response.json({ results: await pushAll(env, [...new Set(body.users)], body.event, body.data ?? null) });
}

/** One stored event per user, through each user's hub, at most HUB_FAN_OUT hubs at a time. */
async function pushAll(env, users, event, data) {
  const payload = JSON.stringify({ event, data });
  const results = [];
  for (let i = 0; i < users.length; i += HUB_FAN_OUT) {
    const chunk = users.slice(i, i + HUB_FAN_OUT);
    const answers = await Promise.all(
      chunk.map((user) =>
        env.USER_HUB.get(env.USER_HUB.idFromName(user))
          .fetch('https://hub/push', { method: 'POST', body: payload })
          .then((r) => r.json()),
      ),
    );
    answers.forEach((a, k) => results.push({ user: chunk[k], seq: a.seq, devices: a.devices, duplicate: false }));
  }
  return results;
}

function roomAdded(id, name, now) {
  return { room: { id, name, created_by: null, created_at: now, last_seq: 0, activity_at: now, role: 'member' } };
}

async function createRoom(request, env) {
  internal(request, env);
  const body = await request.json();
  const now = Date.now();
  const members = Array.isArray(body.members) ? body.members : [];
  await env.DB.batch([
    env.DB.prepare('INSERT INTO rooms (id, name, created_by, created_at, activity_at) VALUES (?, ?, NULL, ?, ?)').bind(
      body.id,
      body.name ?? body.id,
      now,
      now,
    ),
    ...members.map((user) =>
      env.DB.prepare("INSERT OR IGNORE INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)").bind(
        body.id,
        user,
        now,
      ),
    ),
  ]);
  await pushAll(env, members, 'room.added', roomAdded(body.id, body.name ?? body.id, now));
  return Response.json({ id: body.id, name: body.name ?? body.id, members: members.length }, { status: 201 });
}

async function addMembers(request, env, roomId) {
  internal(request, env);
  const body = await request.json();
  const now = Date.now();
  await env.DB.batch(
    body.users.map((user) =>
      env.DB.prepare("INSERT OR IGNORE INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)").bind(
        roomId,
        user,
        now,
      ),
    ),
  );
  await pushAll(env, body.users, 'room.added', roomAdded(roomId, roomId, now));
  return Response.json({ room_id: roomId, added: body.users.length });
}

async function connectRoom(request, url, env, roomId) {
  const admitted = await admit(request, url, env);
  const row = await env.DB.prepare(
    'SELECT (SELECT 1 FROM rooms WHERE id = ?1) AS room, (SELECT 1 FROM room_members WHERE room_id = ?1 AND user_id = ?2) AS member',
  )
    .bind(roomId, admitted.identity.user_id)
    .first();
  if (!row.room) throw new Refusal(404, 'not_found', `no room '${roomId}'`);
  if (!row.member) throw new Refusal(403, 'not_a_member', 'you are not a member of this room');
  const stub = env.ROOM.get(env.ROOM.idFromName(roomId));
  return stub.fetch(hubUpgrade(admitted, url, { 'x-room': roomId }));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname;
    const method = request.method;
    try {
      if (method === 'GET' && path === '/health') return Response.json({ ok: true });
      if (method === 'GET' && path === '/v1/connect') {
        const admitted = await admit(request, url, env);
        const stub = env.USER_HUB.get(env.USER_HUB.idFromName(admitted.identity.user_id));
        return await stub.fetch(hubUpgrade(admitted, url));
      }
      if (method === 'POST' && path === '/internal/v1/push') return await push(request, env);
      if (method === 'POST' && path === '/internal/v1/rooms') return await createRoom(request, env);
      let m = path.match(/^\/internal\/v1\/rooms\/([^/]+)\/members$/);
      if (method === 'POST' && m) return await addMembers(request, env, decodeURIComponent(m[1]));
      m = path.match(/^\/v1\/rooms\/([^/]+)\/connect$/);
      if (method === 'GET' && m) return await connectRoom(request, url, env, decodeURIComponent(m[1]));
      return errorResponse(404, 'not_found', 'no such route');
    } catch (err) {
      if (err instanceof Refusal) return errorResponse(err.status, err.code, err.message);
      return errorResponse(500, 'internal', String(err));
    }
  },
};

function deviceOf(url) {
  return url.searchParams.get('device') ?? `d-${crypto.randomUUID().replaceAll('-', '')}`;
}

function upgradeResponse(request, client) {
  const headers = request.headers.get('x-subprotocol') ? { 'sec-websocket-protocol': 'bearer' } : {};
  return new Response(null, { status: 101, webSocket: client, headers });
}

function frameOf(message) {
  if (typeof message !== 'string') return null;
  try {
    const frame = JSON.parse(message);
    return frame && typeof frame.event === 'string' ? frame : null;
  } catch {
    return null;
  }
}

function sendError(ws, id, code, message) {
  ws.send(JSON.stringify({ event: 'error', ...(id === undefined ? {} : { id }), data: { code, message } }));
}

function reciprocate(ws, code) {
  ws.close(code === 1005 || code === 1006 ? 1000 : code, '');
}

class Hub {
  constructor(ctx, schema, table) {
    this.ctx = ctx;
    this.sql = ctx.storage.sql;
    this.sql.exec(schema);
    this.seq = this.sql.exec(`SELECT COALESCE(MAX(seq), 0) AS seq FROM ${table}`).one().seq;
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    // Token expiry: each open socket's expiry (unix s), loaded from the attachments once per
    // wake; the alarm is kept at the soonest and deleted when no socket is open.
    this.expiries = null;
    this.alarmAt = undefined;
  }

  expiryMap() {
    if (this.expiries === null) {
      this.expiries = new Map();
      for (const ws of this.ctx.getWebSockets()) this.expiries.set(ws, ws.deserializeAttachment().expires_at);
    }
    return this.expiries;
  }

  async planAlarm() {
    let next = null;
    for (const at of this.expiryMap().values()) if (next === null || at < next) next = at;
    const wanted = next === null ? null : next * 1000;
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (wanted === this.alarmAt) return;
    if (wanted === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(wanted);
    this.alarmAt = wanted;
  }

  async alarm() {
    this.alarmAt = null;
    const now = Date.now() / 1000;
    const expiries = this.expiryMap();
    for (const [ws, at] of expiries) {
      if (at > now) continue;
      expiries.delete(ws);
      ws.send(JSON.stringify({ event: 'token.expired', data: { expires_at: at } }));
      ws.close(4001, 'token expired');
    }
    await this.planAlarm();
  }

  /** Accepts a hibernatable socket for the identity the Worker verified. */
  accept(request, extra = {}) {
    const identity = JSON.parse(request.headers.get('x-identity'));
    const pair = new WebSocketPair();
    const ws = pair[1];
    this.ctx.acceptWebSocket(ws);
    const info = {
      user_id: identity.user_id,
      conn_id: crypto.randomUUID(),
      device: deviceOf(new URL(request.url)),
      expires_at: identity.expires_at,
    };
    ws.serializeAttachment({ ...info, ...extra });
    this.expiryMap().set(ws, info.expires_at);
    return { ws, client: pair[0], info };
  }

  /** A socket is gone: it no longer holds the alarm. */
  async gone(ws) {
    this.expiryMap().delete(ws);
    await this.planAlarm();
  }

  async webSocketClose(ws, code) {
    reciprocate(ws, code);
    await this.gone(ws);
  }
}

export class UserHub extends Hub {
  constructor(ctx, env) {
    super(
      ctx,
      `CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL);
       CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;`,
      'events',
    );
    this.env = env;
    // Whether this wake of the hub knows itself listed in the directory; a stamp per call.
    this.listed = false;
    this.stamp = 0;
  }

  nextStamp() {
    this.stamp = Math.max(Date.now(), this.stamp + 1);
    return this.stamp;
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/connect') {
      const { ws, client, info } = this.accept(request);
      ws.send(JSON.stringify({ event: 'ready', data: { ...info, seq: this.seq, cursor: null } }));
      await this.planAlarm();
      if (!this.listed) {
        this.listed = true;
        register(this.env, 'join', info.user_id, this.nextStamp());
      }
      return upgradeResponse(request, client);
    }
    if (path === '/push') {
      const { event, data } = await request.json();
      const seq = ++this.seq;
      const text = JSON.stringify(data);
      this.sql.exec('INSERT INTO events (seq, event, data, created_at) VALUES (?, ?, ?, ?)', seq, event, text, Date.now());
      const frame = `{"event":${JSON.stringify(event)},"data":${text},"seq":${seq}}`;
      const sockets = this.ctx.getWebSockets();
      for (const ws of sockets) ws.send(frame);
      return Response.json({ seq, devices: sockets.length });
    }
    return errorResponse(404, 'not_found', 'no such hub route');
  }

  webSocketMessage(ws, raw) {
    const frame = frameOf(raw);
    if (!frame) return sendError(ws, undefined, 'bad_frame', 'send a JSON object with an event');
    if (frame.event === 'ping') return ws.send(PONG);
    sendError(ws, frame.id, 'unknown_event', `unknown event '${frame.event}' on the user socket`);
  }

  /** After the last socket: `last_seen`, and the hub unlists itself. */
  async gone(ws) {
    const user = ws.deserializeAttachment().user_id;
    await super.gone(ws);
    if (this.expiryMap().size > 0) return;
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES ('last_seen', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      Date.now(),
    );
    this.listed = false;
    register(this.env, 'leave', user, this.nextStamp());
  }
}

/** One shard of who is online: a row per listed user with the stamp that listed them. */
export class Directory {
  constructor(ctx) {
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, stamp INTEGER NOT NULL) WITHOUT ROWID');
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    const { user, stamp } = await request.json();
    if (path === '/join') {
      this.sql.exec(
        'INSERT INTO members (user, stamp) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET stamp = excluded.stamp WHERE excluded.stamp > members.stamp',
        user,
        stamp,
      );
    } else {
      this.sql.exec('DELETE FROM members WHERE user = ? AND stamp <= ?', user, stamp);
    }
    return new Response(null, { status: 204 });
  }
}

export class Room extends Hub {
  constructor(ctx) {
    super(
      ctx,
      `CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, sender_id TEXT, type TEXT NOT NULL, body TEXT NOT NULL, url TEXT, title TEXT, data TEXT, client_id TEXT, created_at INTEGER NOT NULL);
       CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client_id ON messages (COALESCE(sender_id, ''), client_id) WHERE client_id IS NOT NULL;`,
      'messages',
    );
  }

  async fetch(request) {
    if (new URL(request.url).pathname !== '/connect') return errorResponse(404, 'not_found', 'no such room route');
    const roomId = request.headers.get('x-room');
    const { ws, client, info } = this.accept(request, { room_id: roomId });
    ws.send(JSON.stringify({ event: 'ready', data: { room_id: roomId, ...info, seq: this.seq } }));
    const users = {};
    for (const other of this.ctx.getWebSockets()) {
      const user = other.deserializeAttachment().user_id;
      users[user] = (users[user] ?? 0) + 1;
    }
    ws.send(JSON.stringify({ event: 'presence', data: { users } }));
    if (users[info.user_id] === 1) {
      const joined = JSON.stringify({ event: 'user.joined', data: { user_id: info.user_id } });
      for (const other of this.ctx.getWebSockets()) if (other !== ws) other.send(joined);
    }
    await this.planAlarm();
    return upgradeResponse(request, client);
  }

  async webSocketClose(ws, code) {
    reciprocate(ws, code);
    this.announceLeft(ws);
    await this.gone(ws);
  }

  /** `user.left` to the others when this was the user's last socket. */
  announceLeft(ws) {
    const user = ws.deserializeAttachment().user_id;
    const others = this.ctx.getWebSockets().filter((other) => other !== ws);
    if (others.some((other) => other.deserializeAttachment().user_id === user)) return;
    const left = JSON.stringify({ event: 'user.left', data: { user_id: user } });
    for (const other of others) {
      try {
        other.send(left);
      } catch {
        // closing too; its own close event follows
      }
    }
  }

  webSocketMessage(ws, raw) {
    const frame = frameOf(raw);
    if (!frame) return sendError(ws, undefined, 'bad_frame', 'send a JSON object with an event');
    if (frame.event === 'ping') return ws.send(PONG);
    if (frame.event !== 'send') return sendError(ws, frame.id, 'unknown_event', `unknown event '${frame.event}' on a room socket`);
    const data = frame.data ?? {};
    if (typeof data.body !== 'string' || data.body.length === 0) return sendError(ws, frame.id, 'validation', 'body: a text message needs a body');
    const info = ws.deserializeAttachment();
    const message = {
      id: `m_${crypto.randomUUID().replaceAll('-', '')}`,
      seq: this.seq + 1,
      room_id: info.room_id,
      sender_id: info.user_id,
      type: 'text',
      body: data.body,
      client_id: data.client_id ?? null,
      created_at: Date.now(),
    };
    try {
      this.sql.exec(
        'INSERT INTO messages (seq, id, sender_id, type, body, client_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        message.seq,
        message.id,
        message.sender_id,
        message.type,
        message.body,
        message.client_id,
        message.created_at,
      );
    } catch (err) {
      return sendError(ws, frame.id, 'validation', String(err));
    }
    this.seq = message.seq;
    if (frame.id !== undefined) ws.send(JSON.stringify({ event: 'ack', id: frame.id, data: { message, duplicate: false } }));
    const text = JSON.stringify({ event: 'message', data: message, seq: message.seq });
    for (const other of this.ctx.getWebSockets()) other.send(text);
  }
}
