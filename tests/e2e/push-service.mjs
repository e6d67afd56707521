// A Web Push service for the tests (RFC 8030 push service, RFC 8291 message encryption, RFC 8292
// VAPID), standing where a browser vendor's push service would: a node:http server on a free
// loopback port that hands out browser-like subscriptions and checks each push the gateway sends
// to them the way a real push service and a real browser would.
//
// `subscribe()` makes a subscription as a browser does: a fresh P-256 key pair
// (`crypto.createECDH('prime256v1')`), 16 random bytes of auth secret and an endpoint
// `http://127.0.0.1:<port>/push/<random id>` (the gateway admits loopback http endpoints with
// DEV_MODE). `subscription.json` is what `PushSubscription.toJSON()` gives a web app:
// `{endpoint, expirationTime: null, keys: {p256dh, auth}}`, base64url.
//
// Each POST to an endpoint is checked before it is answered:
// - `Authorization: vapid t=<jwt>, k=<key>`: `k` is the gateway's VAPID public key
//   (SB_VAPID_PUBLIC_KEY, set by tests/run.mjs), the JWT is ES256 and its signature verifies
//   against `k` (IEEE P1363 r||s), `aud` is the endpoint's origin, `exp` is in the future and at
//   most 24 hours away, `sub` is a `mailto:` or `https:` contact;
// - `Content-Encoding: aes128gcm`, and `TTL`, `Urgency` and `Topic` are present and well formed;
// - the body decrypts with the independent `http_ece` package (not the gateway's code) under the
//   subscription's private key and auth secret, its keyid is a 65-byte uncompressed point, and
//   the plaintext is JSON.
// A push that fails a check is answered 400 and recorded in `rejected` (and fails any wait on
// its subscription at once); one that passes is recorded in the subscription's `attempts` as
// `{headers, payload, at, status, rs, keyid, bodyBytes, jwt}` and answered as the test
// programmed (default 201); attempts answered 2xx are also in `notifications`. A POST to an
// endpoint the service never handed out (or that `unsubscribe` dropped) is answered 404.
//
// Waiting is by events, not sleeps: `sub.notification(n)` resolves with the n-th delivered
// notification (1-based) as soon as it arrives, `sub.attempt(n)` with the n-th verified request
// whatever it was answered. Tests that must show that nothing arrives wait a bounded window of
// their own and then look at `notifications.length`.

import { createPublicKey, createECDH, randomBytes, verify } from 'node:crypto';
import { createServer } from 'node:http';
import ece from 'http_ece';

/** The largest body a push service must accept (RFC 8030 §7.2), and the gateway promises. */
export const MAX_BODY_BYTES = 4096;
/** How far `exp` may be in the future (RFC 8292 §2). */
const MAX_EXP_SECS = 24 * 60 * 60;
/** Clock slack for `exp` checks: the gateway and this process share the machine's clock. */
const SKEW_SECS = 5;
const URGENCIES = new Set(['very-low', 'low', 'normal', 'high']);

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const unb64u = (text) => Buffer.from(text, 'base64url');

/** A public KeyObject for a raw uncompressed P-256 point (65 bytes, 0x04 || x || y). */
function p256PublicKey(raw) {
  if (raw.length !== 65 || raw[0] !== 0x04) throw new Error(`not an uncompressed P-256 point (${raw.length} bytes)`);
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64u(raw.subarray(1, 33)), y: b64u(raw.subarray(33, 65)) },
    format: 'jwk',
  });
}

/** The `t` and `k` parameters of `Authorization: vapid t=…, k=…` (RFC 8292 §3). */
function parseVapidHeader(header) {
  const match = /^vapid\s+(.+)$/i.exec(header ?? '');
  if (!match) throw new Error(`Authorization is not "vapid t=…, k=…": ${JSON.stringify(header)}`);
  const params = {};
  for (const part of match[1].split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new Error(`bad vapid parameter ${JSON.stringify(part)}`);
    params[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  if (!params.t || !params.k) throw new Error(`vapid Authorization needs t and k: ${JSON.stringify(header)}`);
  return params;
}

/**
 * Checks the VAPID JWT `jwt` and key `k` for a push to `endpoint`; returns `{header, claims}`.
 * Throws with the reason otherwise.
 */
export function verifyVapid(authorization, endpoint, vapidPublicKey, nowSecs = Date.now() / 1000) {
  const { t: jwt, k } = parseVapidHeader(authorization);
  const key = unb64u(k);
  if (!key.equals(unb64u(vapidPublicKey))) throw new Error(`k is not the gateway's VAPID public key: ${k}`);
  if (/[^A-Za-z0-9_-]/.test(k)) throw new Error(`k is not unpadded base64url: ${k}`);
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error('the JWT does not have three parts');
  const [head, body, sig] = parts;
  const header = JSON.parse(unb64u(head).toString('utf8'));
  if (header.alg !== 'ES256') throw new Error(`JWT alg is ${header.alg}, not ES256`);
  if (header.typ !== undefined && header.typ !== 'JWT') throw new Error(`JWT typ is ${header.typ}`);
  const signature = unb64u(sig);
  if (signature.length !== 64) throw new Error(`ES256 signature is ${signature.length} bytes, not 64 (r||s)`);
  const ok = verify('sha256', Buffer.from(`${head}.${body}`), { key: p256PublicKey(key), dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok) throw new Error('the JWT signature does not verify against k');
  const claims = JSON.parse(unb64u(body).toString('utf8'));
  const origin = new URL(endpoint).origin;
  if (claims.aud !== origin) throw new Error(`aud is ${JSON.stringify(claims.aud)}, not the endpoint's origin ${origin}`);
  if (typeof claims.exp !== 'number' || !Number.isInteger(claims.exp)) throw new Error(`exp is not an integer: ${claims.exp}`);
  if (claims.exp <= nowSecs - SKEW_SECS) throw new Error(`exp ${claims.exp} has passed (now ${Math.floor(nowSecs)})`);
  if (claims.exp > nowSecs + MAX_EXP_SECS + SKEW_SECS) throw new Error(`exp ${claims.exp} is more than 24 h away (now ${Math.floor(nowSecs)})`);
  if (typeof claims.sub !== 'string' || !/^(mailto:.+|https:\/\/.+)$/.test(claims.sub)) {
    throw new Error(`sub is not a mailto: or https: contact: ${JSON.stringify(claims.sub)}`);
  }
  return { header, claims };
}

/** Checks the Web Push headers (RFC 8030 §5); throws with the reason. */
function checkHeaders(headers) {
  if ((headers['content-encoding'] ?? '').toLowerCase() !== 'aes128gcm') {
    throw new Error(`Content-Encoding is ${JSON.stringify(headers['content-encoding'])}, not aes128gcm`);
  }
  if (!/^\d+$/.test(headers.ttl ?? '')) throw new Error(`TTL is missing or not a number: ${JSON.stringify(headers.ttl)}`);
  if (!URGENCIES.has(headers.urgency)) throw new Error(`Urgency is missing or unknown: ${JSON.stringify(headers.urgency)}`);
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(headers.topic ?? '')) throw new Error(`Topic is missing or not ≤ 32 base64url characters: ${JSON.stringify(headers.topic)}`);
}

/**
 * Decrypts an aes128gcm Web Push body (RFC 8291) with http_ece, as the browser holding `ecdh`
 * (the subscription's P-256 key) and `authSecret` (base64url) would; returns its details.
 */
export function decryptBody(body, ecdh, authSecret) {
  if (body.length > MAX_BODY_BYTES) throw new Error(`body is ${body.length} bytes, over ${MAX_BODY_BYTES}`);
  if (body.length < 21) throw new Error(`body is ${body.length} bytes, too short for the aes128gcm header`);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const keyid = body.subarray(21, 21 + idlen);
  if (idlen !== 65 || keyid[0] !== 0x04) throw new Error(`keyid is ${idlen} bytes, not the sender's 65-byte uncompressed point (RFC 8291 §4)`);
  p256PublicKey(keyid);
  let plain;
  try {
    plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: ecdh, authSecret });
  } catch (err) {
    throw new Error(`the body does not decrypt: ${err.message}`);
  }
  let payload;
  try {
    payload = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new Error(`the plaintext is not JSON: ${plain.toString('utf8').slice(0, 200)}`);
  }
  return { payload, rs, keyid: b64u(keyid), plaintextBytes: plain.length };
}

class Subscription {
  constructor(service, id) {
    this.service = service;
    this.id = id;
    this.endpoint = `${service.origin}/push/${id}`;
    this.ecdh = createECDH('prime256v1');
    this.ecdh.generateKeys();
    const auth = randomBytes(16);
    /** What `PushSubscription.toJSON()` gives a web app. */
    this.json = {
      endpoint: this.endpoint,
      expirationTime: null,
      keys: { p256dh: b64u(this.ecdh.getPublicKey()), auth: b64u(auth) },
    };
    /** Every verified request, in arrival order, with the status it was answered. */
    this.attempts = [];
    /** The verified requests answered 2xx. */
    this.notifications = [];
    /** Requests that failed a check: `{reason, headers, at}`. */
    this.rejected = [];
    this.queue = [];
    this.fallback = { status: 201 };
    this.waiters = new Set();
  }

  /** Answers the next `times` verified requests with `answer` (`{status, headers, delayMs}`). */
  answerNext(answer, times = 1) {
    for (let i = 0; i < times; i++) this.queue.push(answer);
    return this;
  }

  /** Answers every request after the queued ones with `answer`. */
  answerAlways(answer) {
    this.fallback = answer;
    return this;
  }

  nextAnswer() {
    return this.queue.length ? this.queue.shift() : this.fallback;
  }

  wake() {
    for (const waiter of [...this.waiters]) waiter.check();
  }

  waitFor(list, n, what, timeoutMs) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          if (this.rejected.length) {
            finish();
            reject(new Error(`a push to ${this.endpoint} was rejected: ${this.rejected[0].reason}`));
          } else if (this[list].length >= n) {
            finish();
            resolve(this[list][n - 1]);
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} #${n} at ${this.endpoint} within ${timeoutMs} ms (have ${this[list].length}; attempts ${this.attempts.map((a) => a.status).join(',') || 'none'})`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /** The n-th (1-based) notification answered 2xx, as soon as it is there. */
  notification(n = 1, timeoutMs = 15_000) {
    return this.waitFor('notifications', n, 'notification', timeoutMs);
  }

  /** The n-th (1-based) verified request, whatever it was answered. */
  attempt(n = 1, timeoutMs = 15_000) {
    return this.waitFor('attempts', n, 'attempt', timeoutMs);
  }

  /** Forgets the subscription: later pushes to it are answered 404, like an expired one. */
  unsubscribe() {
    this.service.subscriptions.delete(this.id);
  }
}

/**
 * Starts the push service. `vapidPublicKey` defaults to SB_VAPID_PUBLIC_KEY. Resolves to
 * `{origin, port, subscribe(), subscriptions, rejected, unknown, close()}`: `rejected` lists
 * every push that failed a check (on any subscription), `unknown` the paths of pushes to
 * endpoints it does not know.
 */
export function startPushService({ vapidPublicKey = process.env.SB_VAPID_PUBLIC_KEY, host = '127.0.0.1', port = 0 } = {}) {
  if (!vapidPublicKey) throw new Error('startPushService needs the VAPID public key (SB_VAPID_PUBLIC_KEY, set by tests/run.mjs)');
  const subscriptions = new Map();
  const rejected = [];
  const unknown = [];
  const service = { subscriptions, rejected, unknown };
  const server = createServer(async (req, res) => {
    res.on('error', () => {});
    const answer = (status, headers = {}, body = '') => {
      if (res.destroyed) return;
      res.writeHead(status, headers);
      res.end(body);
    };
    const chunks = [];
    try {
      for await (const chunk of req) chunks.push(chunk);
    } catch {
      return;
    }
    const body = Buffer.concat(chunks);
    const at = Date.now();
    const match = /^\/push\/([0-9a-f]+)$/.exec(req.url);
    const sub = match && subscriptions.get(match[1]);
    if (req.method !== 'POST' || !sub) {
      unknown.push({ method: req.method, path: req.url, at });
      answer(req.method === 'POST' ? 404 : 405);
      return;
    }
    let record;
    try {
      const { header, claims } = verifyVapid(req.headers.authorization, sub.endpoint, vapidPublicKey, at / 1000);
      checkHeaders(req.headers);
      const decrypted = decryptBody(body, sub.ecdh, sub.json.keys.auth);
      record = { headers: req.headers, at, bodyBytes: body.length, jwt: { header, claims }, ...decrypted };
    } catch (err) {
      const entry = { reason: err.message, endpoint: sub.endpoint, headers: req.headers, at };
      rejected.push(entry);
      sub.rejected.push(entry);
      sub.wake();
      answer(400, { 'content-type': 'text/plain' }, err.message);
      return;
    }
    const { status = 201, headers = {}, delayMs = 0 } = sub.nextAnswer();
    record.status = status;
    sub.attempts.push(record);
    if (status >= 200 && status < 300) sub.notifications.push(record);
    sub.wake();
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    answer(status, headers);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const bound = server.address().port;
      service.port = bound;
      service.origin = `http://${host}:${bound}`;
      /** A new browser-like subscription on this service. */
      service.subscribe = () => {
        const sub = new Subscription(service, randomBytes(12).toString('hex'));
        subscriptions.set(sub.id, sub);
        return sub;
      };
      service.close = () => {
        server.closeAllConnections();
        return new Promise((done) => server.close(() => done()));
      };
      resolve(service);
    });
  });
}
