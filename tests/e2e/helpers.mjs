// Shared helpers for the end-to-end tests: tokens of every kind, WebSocket clients whose
// frames can be awaited, and HTTP calls to the gateway started by tests/run.mjs.

import { createHmac, createPrivateKey, randomBytes, randomUUID, sign } from 'node:crypto';
import net from 'node:net';
import { after } from 'node:test';
import WebSocket from 'ws';

export const BASE = process.env.SB_BASE ?? 'http://127.0.0.1:8787';
export const WS_BASE = BASE.replace(/^http/, 'ws');
export const INTERNAL_TOKEN = process.env.SB_INTERNAL_TOKEN;
export const ISSUER = process.env.SB_ISSUER;
export const AUDIENCE = process.env.SB_AUDIENCE;
const SECRET = process.env.SB_JWT_SECRET;
const PRIVATE = JSON.parse(process.env.SB_PRIVATE_KEYS ?? '{}');

// Every socket a test file opens is ended when the file's tests are done, so a test that fails
// half-way cannot leave a socket open that keeps the file from finishing.
const sockets = new Set();
after(() => {
  for (const end of sockets) end();
});

/** A user id no other test uses. */
export const uid = (prefix = 'u') => `${prefix}-${randomUUID().slice(0, 8)}`;

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Standard claims for `sub`, valid for `ttl` seconds, with the configured iss/aud. */
export function claims(sub, extra = {}) {
  const { ttl = 600, ...rest } = extra;
  return { sub, iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + ttl, ...rest };
}

export function signHS256(payload, secret = SECRET, header = {}) {
  const head = b64({ alg: 'HS256', typ: 'JWT', ...header });
  const body = b64(payload);
  const mac = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

function signAsymmetric(alg, jwk, payload, kid) {
  const head = b64({ alg, typ: 'JWT', kid });
  const body = b64(payload);
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  const options = alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key;
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), options).toString('base64url');
  return `${head}.${body}.${sig}`;
}

export const signES256 = (payload, kid = 'ec-1', jwk = PRIVATE.ec) => signAsymmetric('ES256', jwk, payload, kid);
export const signRS256 = (payload, kid = 'rsa-1', jwk = PRIVATE.rsa) => signAsymmetric('RS256', jwk, payload, kid);

/** A valid HS256 token for `sub`. */
export const token = (sub, extra) => signHS256(claims(sub, extra));

/**
 * A WebSocket client whose incoming frames are queued; `next(pred)` takes the first unread
 * frame matching `pred` (an event name or a function), waiting for it if needed.
 */
export class Client {
  constructor(ws) {
    this.ws = ws;
    sockets.add(() => ws.terminate());
    this.frames = [];
    this.raw = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { event: '<unparsable>', text };
      }
      this.frames.push(frame);
      this.wake();
    });
  }

  wake() {
    for (const waiter of [...this.waiters]) {
      const index = this.frames.findIndex(waiter.pred);
      if (index >= 0) {
        const [frame] = this.frames.splice(index, 1);
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.resolve(frame);
      }
    }
  }

  next(pred = () => true, timeoutMs = 10_000) {
    const test = typeof pred === 'string' ? (f) => f.event === pred : pred;
    return new Promise((resolve, reject) => {
      const waiter = { pred: test, resolve };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        const seen = this.frames.map((f) => f.event).join(', ');
        reject(new Error(`no frame matching ${pred} within ${timeoutMs} ms (unread: ${seen || 'none'})`));
      }, timeoutMs);
      this.waiters.push(waiter);
      this.wake();
    });
  }

  /** Takes `n` frames of `event`, in arrival order. */
  async take(event, n, timeoutMs = 10_000) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.next(event, timeoutMs));
    return out;
  }

  /** Unread frames, without waiting. */
  unread(event) {
    return this.frames.filter((f) => !event || f.event === event);
  }

  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a request frame with an id and waits for its ack or error. */
  async request(event, data, id = randomUUID()) {
    this.send({ event, data, id });
    return this.next((f) => (f.event === 'ack' || f.event === 'error') && f.id === id);
  }

  close() {
    this.ws.close();
    return this.closed;
  }
}

function carrierOptions(tok, carrier, extra = {}) {
  const headers = { ...(extra.headers ?? {}) };
  let protocols;
  let query = '';
  if (tok && carrier === 'header') headers.authorization = `Bearer ${tok}`;
  if (tok && carrier === 'subprotocol') protocols = ['bearer', tok];
  if (tok && carrier === 'query') query = `token=${encodeURIComponent(tok)}`;
  return { headers, protocols, query };
}

function withQuery(path, query) {
  if (!query) return path;
  return path + (path.includes('?') ? '&' : '?') + query;
}

/**
 * Opens a socket and waits for the upgrade. Resolves with a Client, or rejects with
 * `{status, body}` when the gateway refused the upgrade.
 */
export function open(path, tok, { carrier = 'header', base = BASE, ...extra } = {}) {
  const { headers, protocols, query } = carrierOptions(tok, carrier, extra);
  const ws = new WebSocket(base.replace(/^http/, 'ws') + withQuery(path, query), protocols, { headers });
  const client = new Client(ws);
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(client));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        let parsed = body;
        try { parsed = JSON.parse(body); } catch { /* keep text */ }
        reject({ status: res.statusCode, body: parsed });
      });
    });
    ws.on('error', (err) => reject({ status: 0, body: String(err) }));
  });
}

/** Opens a user socket and returns it after `ready`, with the ready frame. */
export async function connectUser(user, { path = '/v1/connect', tok = token(user), ...opts } = {}) {
  const client = await open(path, tok, opts);
  client.ready = await client.next('ready');
  return client;
}

/** Expects the upgrade to be refused; returns `{status, body}`. */
export async function refused(path, tok, opts) {
  try {
    const client = await open(path, tok, opts);
    client.close();
  } catch (err) {
    return err;
  }
  throw new Error(`upgrade to ${path} was accepted, expected a refusal`);
}

export async function http(method, path, { body, tok, headers = {}, raw } = {}) {
  const init = { method, headers: { ...headers } };
  if (tok) init.headers.authorization = `Bearer ${tok}`;
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const res = await fetch(BASE + path, init);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, body: json, text, headers: res.headers };
}

export const internal = (method, path, body, opts = {}) =>
  http(method, path, { body, tok: INTERNAL_TOKEN, ...opts });

export const push = (users, event, data = {}, extra = {}) =>
  internal('POST', '/internal/v1/push', { users, event, data, ...extra });

/**
 * Polls `check` until it returns a truthy value, and returns it. For state that is copied
 * asynchronously (a room's D1 copy) and announces itself with no event.
 */
export async function until(check, { timeoutMs = 10_000, everyMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`${what} not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** Creates a room owned by `owner` with `members`; returns the room id. */
export async function createRoom(owner, members = [], extra = {}) {
  const res = await http('POST', '/v1/rooms', { tok: token(owner), body: { name: 'test room', members, ...extra } });
  if (res.status !== 201) throw new Error(`create room: ${res.status} ${res.text}`);
  return res.body.id;
}

/** Opens a room socket and returns it after `ready` and `presence`. */
export async function connectRoom(user, roomId, { query = '', tok = token(user), ...opts } = {}) {
  const path = `/v1/rooms/${encodeURIComponent(roomId)}/connect${query ? `?${query}` : ''}`;
  const client = await open(path, tok, opts);
  client.ready = await client.next('ready');
  client.presence = await client.next('presence');
  return client;
}

/**
 * A hostile WebSocket client on a bare TCP socket: it upgrades, sends masked text frames, and
 * records what arrives, but never answers a close frame (a polite client would, and the socket
 * would then be gone). Resolves after the 101, or rejects with the status line.
 */
export function rawOpen(path, tok) {
  const url = new URL(BASE + path);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const client = { socket, frames: [], closes: [], buffer: Buffer.alloc(0), upgraded: false };
    sockets.add(() => socket.destroy());
    client.send = (frame) => socket.write(maskedText(JSON.stringify(frame)));
    client.sendBytes = (bytes) => socket.write(maskedTextBytes(bytes));
    client.end = () => socket.destroy();
    socket.on('connect', () => {
      socket.write([
        `GET ${url.pathname}${url.search} HTTP/1.1`,
        `Host: ${url.host}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        `Authorization: Bearer ${tok}`,
        '', '',
      ].join('\r\n'));
    });
    socket.on('error', (err) => reject(err));
    socket.on('data', (chunk) => {
      client.buffer = Buffer.concat([client.buffer, chunk]);
      if (!client.upgraded) {
        const end = client.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = client.buffer.subarray(0, end).toString();
        client.buffer = client.buffer.subarray(end + 4);
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          reject(new Error(head.split('\r\n')[0]));
          return;
        }
        client.upgraded = true;
        resolve(client);
      }
      readFrames(client);
    });
  });
}

function maskedText(text) {
  return maskedTextBytes(Buffer.from(text));
}

/** A masked text frame carrying `payload` as it is (valid UTF-8 or not). */
function maskedTextBytes(payload) {
  const mask = randomBytes(4);
  const length = payload.length;
  const head = length < 126
    ? Buffer.from([0x81, 0x80 | length])
    : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]);
  const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

function readFrames(client) {
  for (;;) {
    const buf = client.buffer;
    if (buf.length < 2) return;
    let length = buf[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (buf.length < 4) return;
      length = buf.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (buf.length < 10) return;
      length = Number(buf.readBigUInt64BE(2));
      offset = 10;
    }
    if (buf.length < offset + length) return;
    const opcode = buf[0] & 0x0f;
    const payload = buf.subarray(offset, offset + length);
    client.buffer = buf.subarray(offset + length);
    if (opcode === 0x1) client.frames.push(JSON.parse(payload.toString()));
    if (opcode === 0x8) client.closes.push(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
  }
}

/** Reads a development-only report of a hub's alarm. */
export const alarmOf = async (kind, id) => {
  const res = await http('GET', `/dev/${kind}/${encodeURIComponent(id)}/alarm`);
  if (res.status !== 200) throw new Error(`alarm report: ${res.status} ${res.text}`);
  return res.body;
};

/** Debian's Chromium, headless, as every browser test drives it (`CHROMIUM_PATH` overrides). */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/**
 * socket.io-client sockets for one test file, all disconnected by `closeAll()`: `make(nsp, opts)`
 * opens one on `BASE + nsp` with quick reconnection, `opts` as an application passes them;
 * `add(socket)` takes one made otherwise.
 */
export function socketioClients(io) {
  const open = new Set();
  return {
    make(nsp = '/', opts = {}) {
      return this.add(io(BASE + nsp, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts }));
    },
    add(socket) {
      open.add(socket);
      return socket;
    },
    closeAll() {
      for (const socket of open) socket.disconnect();
    },
  };
}

/** Resolves with the socket once it is connected; rejects with its `connect_error`. */
export async function connected(socket) {
  if (socket.connected) return socket;
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}
