// A test backend for the event hook (src/hook.rs, docs/PROTOCOL.md "Custom events: the backend
// hook"): a node:http server that verifies each call's `x-switchboard-signature` the way a real
// backend must (HMAC-SHA256 of "<t>.<raw body>", compared in constant time, `t` within 300 s of
// now), records every verified call and answers with whatever the test's handler says. A call
// with a missing or bad signature is answered 401 and recorded in `rejected`, never in `calls`.
//
// The gateway is started once for the whole suite (tests/run.mjs) with EVENT_HOOK_URL fixed, so
// the server must listen where that URL points: run.mjs picks a free port and a secret, puts
// them in the gateway's env (EVENT_HOOK_URL=http://127.0.0.1:<port>/hook, EVENT_HOOK_SECRET) and
// in the tests' env (SB_HOOK_PORT, SB_HOOK_SECRET); a test file starts the server with
// `hookServerFromEnv()` in its `before` and closes it in its `after`. Test files run one at a
// time (--test-concurrency=1), so each can own the port while it runs.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

export const SIGNATURE_HEADER = 'x-switchboard-signature';
/** How far `t` may stray from this machine's clock, in seconds. */
export const TOLERANCE_SECS = 300;
/** Larger request bodies are answered 413 unread (the gateway's frames are far smaller). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** The signature header the gateway sends for `rawBody` at unix second `t`. */
export function sign(secret, t, rawBody) {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex')}`;
}

/**
 * Whether `header` signs `rawBody` (a string or Buffer, exactly as received) with `secret`, at
 * a time within TOLERANCE_SECS of `nowSecs`. This is the check docs/PROTOCOL.md asks of a backend.
 */
export function verifySignature(rawBody, header, secret, nowSecs = Date.now() / 1000) {
  if (typeof header !== 'string') return false;
  const parts = Object.fromEntries(header.split(',').map((part) => part.trim().split('=', 2)));
  if (!/^\d+$/.test(parts.t ?? '') || !/^[0-9a-f]{64}$/.test(parts.v1 ?? '')) return false;
  if (Math.abs(nowSecs - Number(parts.t)) > TOLERANCE_SECS) return false;
  const expected = createHmac('sha256', secret).update(`${parts.t}.`).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(parts.v1, 'hex'), expected);
}

/**
 * Starts the backend. `handler(call)` (may be async) answers a verified call with
 * `{status = 200, body, headers = {}, delayMs = 0}`: `body` undefined sends an empty body, a
 * string or Buffer is sent as is (for answers that are not JSON, or too large), anything else as
 * JSON; `delayMs` waits before answering (to outlast EVENT_HOOK_TIMEOUT_MS). A handler that
 * throws answers 500. `call` is the parsed body (`user_id`, `conn_id`, `namespace`, `event`,
 * `args` — every argument, so a handler's first is `args[0]` — and `sent_at`) plus `t` (the
 * signature's timestamp), `path`, `headers` and `raw` (the body as received).
 *
 * Resolves to `{url, port, calls, rejected, setHandler(fn), close()}`: `calls` lists verified
 * calls in arrival order, `rejected` the `{path, headers, raw}` of calls refused with 401.
 * `port` 0 picks a free one.
 */
export function startHookServer({ secret, handler = () => ({ status: 200, body: null }), port = 0, host = '127.0.0.1' }) {
  if (typeof secret !== 'string' || secret.length === 0) throw new Error('startHookServer needs the secret');
  let current = handler;
  const calls = [];
  const rejected = [];
  const server = createServer(async (req, res) => {
    res.on('error', () => {}); // the gateway gave up (timeout): nothing to answer
    const send = (status, body, headers = {}) => {
      if (res.destroyed) return;
      const payload = body === undefined ? ''
        : typeof body === 'string' || Buffer.isBuffer(body) ? body
          : JSON.stringify(body);
      const type = typeof body === 'string' || Buffer.isBuffer(body) ? 'text/plain' : 'application/json';
      res.writeHead(status, { 'content-type': type, ...headers });
      res.end(payload);
    };
    if (req.method !== 'POST') {
      send(405, { error: { code: 'method_not_allowed', message: 'the hook takes POST' } });
      return;
    }
    const chunks = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          send(413, { error: { code: 'payload_too_large', message: 'the call is too large' } });
          return;
        }
        chunks.push(chunk);
      }
    } catch {
      return; // the connection went away
    }
    const raw = Buffer.concat(chunks);
    const header = req.headers[SIGNATURE_HEADER];
    if (!verifySignature(raw, header, secret)) {
      rejected.push({ path: req.url, headers: req.headers, raw: raw.toString('utf8') });
      send(401, { error: { code: 'bad_signature', message: 'the signature does not verify' } });
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      send(400, { error: { code: 'bad_json', message: 'the body is not JSON' } });
      return;
    }
    const t = Number(/t=(\d+)/.exec(header)[1]);
    const call = { ...parsed, t, path: req.url, headers: req.headers, raw: raw.toString('utf8') };
    calls.push(call);
    try {
      const answer = (await current(call)) ?? {};
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      send(answer.status ?? 200, answer.body, answer.headers);
    } catch (err) {
      send(500, { error: { code: 'handler_failed', message: String(err?.message ?? err) } });
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const { port: bound } = server.address();
      resolve({
        url: `http://${host}:${bound}/switchboard/events`,
        port: bound,
        calls,
        rejected,
        setHandler(fn) {
          current = fn;
        },
        close() {
          server.closeAllConnections();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}

/**
 * The backend the suite's gateway calls: listens on SB_HOOK_PORT and verifies with
 * SB_HOOK_SECRET (set by tests/run.mjs).
 */
export function hookServerFromEnv(handler) {
  const port = Number(process.env.SB_HOOK_PORT);
  const secret = process.env.SB_HOOK_SECRET;
  if (!port || !secret) throw new Error('SB_HOOK_PORT and SB_HOOK_SECRET are set by tests/run.mjs');
  return startHookServer({ secret, handler, port });
}
