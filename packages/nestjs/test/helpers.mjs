// Test helpers: a fake Switchboard gateway (its internal socket.io API, with the little state a
// test needs), the gateway's side of the hook (signed calls to the app), and the example app
// started for real as a child process.

import { createServer } from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = join(here, '..');
export const EXAMPLE_DIR = join(here, '..', '..', '..', 'examples', 'nest-chat');
export const HOOK_SECRET = 'test-hook-secret-at-least-32-bytes-long';
export const JWT_SECRET = 'test-jwt-secret-at-least-32-bytes-long!';
export const INTERNAL_TOKEN = 'test-internal-token';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `x-switchboard-signature` for `body` as the gateway makes it: HMAC-SHA256 over "<t>.<body>". */
export function sign(body, { secret = HOOK_SECRET, t = Math.floor(Date.now() / 1000) } = {}) {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** An HS256 JWT, made with node:crypto alone. */
export function jwt(claims, secret = JWT_SECRET) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iat: now, exp: now + 3600, ...claims })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

export function newSocketId(userId) {
  return `${userId}~${randomBytes(16).toString('hex')}`;
}

/**
 * The fake gateway: records every `/internal/v1/socketio/<op>` call in order and keeps what the
 * real one keeps for a test (connected sockets with their namespace, rooms and data), answering
 * emit → {rooms:{}, sockets:1}, join/leave/disconnect/data → {sockets:1}, fetch → a page.
 */
export async function startFakeGateway() {
  const gw = {
    calls: [],
    sockets: new Map(), // id|nsp → {id, user_id, namespace, rooms:Set, data, handshake}
    unauthorized: 0,
  };
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${INTERNAL_TOKEN}`) {
      gw.unauthorized += 1;
      return reply(401, { error: { code: 'unauthorized', message: 'bad token' } });
    }
    const match = /^\/internal\/v1\/socketio\/(\w+)$/.exec(req.url);
    if (req.method !== 'POST' || match === null) return reply(404, { error: { code: 'not_found', message: req.url } });
    const op = match[1];
    const body = JSON.parse(raw);
    gw.calls.push({ op, body });
    const chosen = gw.select(body);
    switch (op) {
      case 'emit':
        return reply(200, { rooms: {}, sockets: 1 });
      case 'join':
        for (const socket of chosen) for (const room of body.join) socket.rooms.add(room);
        return reply(200, { sockets: 1 });
      case 'leave':
        for (const socket of chosen) for (const room of body.leave) socket.rooms.delete(room);
        return reply(200, { sockets: 1 });
      case 'disconnect':
        return reply(200, { sockets: 1 });
      case 'data': {
        const socket = gw.sockets.get(`${body.socket_id}|${body.namespace}`);
        if (socket !== undefined) socket.data = body.data;
        return reply(200, { sockets: 1 });
      }
      case 'fetch':
        return reply(200, {
          sockets: chosen.map((s) => ({ id: s.id, user_id: s.user_id, namespace: s.namespace, rooms: [...s.rooms], data: s.data, handshake: s.handshake })),
          next_cursor: null,
        });
      default:
        return reply(404, { error: { code: 'not_found', message: op } });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  gw.url = `http://127.0.0.1:${server.address().port}`;

  /** The sockets a selector names, as the gateway reads `rooms`/`except` (ids or rooms). */
  gw.select = ({ namespace = '/', rooms = [], except = [] }) => [...gw.sockets.values()].filter((s) => {
    if (s.namespace !== namespace) return false;
    const inAny = (names) => names.some((name) => name === s.id || s.rooms.has(name));
    return (rooms.length === 0 || inAny(rooms)) && !inAny(except);
  });

  /** Calls made since `mark` (an index into gw.calls). */
  gw.since = (mark) => gw.calls.slice(mark);

  /** Waits until `predicate(calls)` holds, or fails after `ms`. */
  gw.waitFor = async (predicate, ms = 3000) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (predicate(gw.calls)) return;
      await sleep(20);
    }
    throw new Error(`the fake gateway never got the expected calls; it got:\n${JSON.stringify(gw.calls, null, 1)}`);
  };

  gw.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return gw;
}

/** POSTs one signed hook call to `app`; resolves to {status, body}. */
export async function hook(app, call, { signature, rawBody } = {}) {
  const body = rawBody ?? JSON.stringify(call);
  const response = await fetch(`${app.url}/switchboard/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-switchboard-signature': signature ?? sign(body) },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? null : JSON.parse(text) };
}

function handshakeOf(token) {
  return {
    headers: { 'user-agent': 'node-test', host: '127.0.0.1:8787' },
    query: { EIO: '4', transport: 'websocket' },
    address: '127.0.0.1',
    issued: Date.now(),
    url: '/socket.io/?EIO=4&transport=websocket',
    xdomain: false,
    secure: false,
    auth: token === undefined ? {} : { token },
  };
}

/**
 * A socket.io client as the gateway sees it: its connection call, its events (with the data and
 * handshake the gateway keeps), its disconnect call. Any `app` may answer any of its calls.
 */
export class GatewaySocket {
  constructor(gw, { userId, namespace = '/', token }) {
    this.gw = gw;
    this.userId = userId;
    this.namespace = namespace;
    this.id = newSocketId(userId);
    this.handshake = handshakeOf(token);
  }

  #call(kind, event, args, extra = {}) {
    const record = this.gw.sockets.get(`${this.id}|${this.namespace}`);
    return {
      kind,
      event,
      args,
      namespace: this.namespace,
      socket_id: this.id,
      conn_id: this.id,
      user_id: this.userId,
      data: record?.data ?? null,
      handshake: this.handshake,
      sent_at: Date.now(),
      ...extra,
    };
  }

  /** The connection call; on 2xx the socket is connected at the fake gateway with the answer's data. */
  async connect(app) {
    const answer = await hook(app, this.#call('connection', 'connection', [], { handshake: { ...this.handshake, recovered: false } }));
    if (answer.status >= 200 && answer.status < 300) {
      this.gw.sockets.set(`${this.id}|${this.namespace}`, {
        id: this.id,
        user_id: this.userId,
        namespace: this.namespace,
        rooms: new Set([this.id]),
        data: answer.body?.data ?? null,
        handshake: this.handshake,
      });
    }
    return answer;
  }

  emit(app, event, ...args) {
    return hook(app, this.#call('event', event, args));
  }

  async disconnect(app, reason = 'client namespace disconnect') {
    const call = this.#call('disconnect', 'disconnect', [], { reason });
    this.gw.sockets.delete(`${this.id}|${this.namespace}`);
    return hook(app, call);
  }
}

/** Starts examples/nest-chat (dist/main.js) on a free port as a child process. */
export async function startExample(gatewayUrl, name = 'app', extraEnv = {}) {
  const main = join(EXAMPLE_DIR, 'dist', 'main.js');
  if (!existsSync(main)) {
    throw new Error(`${main} is missing: build the example first (cd examples/nest-chat && npm install && npm run build)`);
  }
  const child = spawn(process.execPath, [main], {
    cwd: EXAMPLE_DIR,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      SWITCHBOARD_URL: gatewayUrl,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      EVENT_HOOK_SECRET: HOOK_SECRET,
      JWT_SECRET,
      NO_COLOR: '1',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s:\n${output}`)), 30_000);
    const onData = (chunk) => {
      output += chunk;
      const match = /nest-chat listening on (http:\/\/[^\s]+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${output}`));
    });
  });
  return {
    name,
    url,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
