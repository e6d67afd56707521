/**
 * @switchboard/emitter/hooks: the receiving end of the gateway's hook calls, for backends.
 *
 * Switchboard cannot run a socket.io server's handlers, so it POSTs the events it has no meaning
 * for (and, when configured, connections and disconnections) to the backend, signed with
 * `x-switchboard-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Every
 * backend must check that signature over the raw bytes, in constant time, within a tolerance,
 * and turn its handler's outcome into the answer the gateway expects. That is easy to get subtly
 * wrong (parsing before verifying, `===` on hex strings, forgetting the timestamp), so it lives
 * here once: `verifySignature` for any framework, and `HookRouter` for the whole exchange.
 *
 * It imports no `node:` module, so it runs on Node 19+ (Node 18 with
 * `--experimental-global-webcrypto`), Deno, Bun and Workers; `node()` only calls methods of the
 * request and response it is given. The HMAC is node:crypto's where the runtime hands it out
 * (`process.getBuiltinModule`, Node 20.16+): synchronous, a few microseconds; Web Crypto's
 * (`globalThis.crypto.subtle`, its key imported once per secret) elsewhere, which on Node costs
 * ~0.3 ms a call in thread-pool jobs (docs/BENCHMARKS.md, issue #21).
 */

const DEFAULT_TOLERANCE_SECONDS = 300;
const MAX_BODY_BYTES = 1024 * 1024;
const SIGNATURE_HEADER = 'x-switchboard-signature';
const JSON_HEADERS = Object.freeze({ 'content-type': 'application/json' });
const encoder = new TextEncoder();

/** A refusal a handler throws on purpose: the gateway passes `code` and `message` to the client. */
export class HookError extends Error {
  constructor(code, message, status = 400) {
    super(message);
    this.name = 'HookError';
    this.code = code;
    this.status = status;
  }
}

/**
 * Whether `header` is the gateway's signature of `rawBody` (exactly as received) with `secret`,
 * made within `toleranceSeconds` of `now` (unix ms). Malformed headers are `false`, not errors.
 */
export async function verifySignature(rawBody, header, secret, { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = Date.now() } = {}) {
  if (typeof secret !== 'string' || secret === '') throw new TypeError('verifySignature needs the secret');
  const body = bytesOf(rawBody);
  const signature = parseSignature(header);
  if (signature === null || Math.abs(now / 1000 - Number(signature.t)) > toleranceSeconds) return false;
  const expected = await hmacSha256(secret, concat([encoder.encode(`${signature.t}.`), body]));
  return constantTimeEqual(expected, signature.mac);
}

/** `{t, mac}` from `t=<digits>,v1=<64 hex>` (other keys ignored), or `null` when malformed. */
function parseSignature(header) {
  if (typeof header !== 'string') return null;
  const fields = new Map();
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return null;
    const key = part.slice(0, eq).trim();
    if (fields.has(key)) return null;
    fields.set(key, part.slice(eq + 1).trim());
  }
  const t = fields.get('t') ?? '';
  const v1 = fields.get('v1') ?? '';
  if (!/^\d{1,15}$/.test(t) || !/^[0-9a-f]{64}$/i.test(v1)) return null;
  return { t, mac: hexToBytes(v1) };
}

function bytesOf(rawBody) {
  if (typeof rawBody === 'string') return encoder.encode(rawBody);
  if (rawBody instanceof Uint8Array) return rawBody;
  if (rawBody instanceof ArrayBuffer) return new Uint8Array(rawBody);
  throw new TypeError('the raw body must be a string or bytes exactly as received, not parsed JSON');
}

function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((size, part) => size + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** node:crypto where the runtime hands it out without an import; `undefined` elsewhere. */
const nodeCrypto = globalThis.process?.getBuiltinModule?.('node:crypto');
/** The last Web Crypto key made, with its secret: a backend verifies with one secret (two while rotating). */
let webKey = { secret: null, key: null };

async function hmacSha256(secret, message) {
  if (nodeCrypto !== undefined) return new Uint8Array(nodeCrypto.createHmac('sha256', secret).update(message).digest());
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) {
    throw new Error('Web Crypto is not available: on Node 18 start node with --experimental-global-webcrypto');
  }
  if (webKey.secret !== secret) {
    const key = subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    webKey = { secret, key };
  }
  return new Uint8Array(await subtle.sign('HMAC', await webKey.key, message));
}

/** Compares every byte whatever the first difference, so timing tells nothing of the MAC. */
function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a[i] ^ b[i];
  return difference === 0;
}

function json(status, value, headers = {}) {
  return { status, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(value) };
}

function refusal(status, code, message, headers) {
  return json(status, { error: { code, message } }, headers);
}

/** The parsed body plus camelCase conveniences, or `undefined` when it is not a JSON object. */
function parseCall(rawBody) {
  let body;
  try {
    body = JSON.parse(typeof rawBody === 'string' ? rawBody : new TextDecoder().decode(bytesOf(rawBody)));
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  return {
    ...body,
    kind: body.kind ?? 'event',
    socketId: body.socket_id,
    userId: body.user_id,
    args: Array.isArray(body.args) ? body.args : [],
    data: body.data ?? null,
    handshake: body.handshake,
    reason: body.reason,
  };
}

/** Runs `handler` and turns what it returns or throws into the gateway's answer. */
async function answer(handler, call) {
  try {
    const value = await handler(call);
    return value === undefined ? { status: 204, headers: {}, body: null } : json(200, value);
  } catch (error) {
    if (error instanceof HookError) return refusal(error.status, error.code, error.message);
    console.error(`@switchboard/emitter/hooks: the handler for ${call.kind} "${call.event}" threw:`, error);
    return refusal(500, 'handler_failed', `the handler for "${call.event}" failed`);
  }
}

const noAnswer = () => undefined;

/** Verifies, parses and dispatches the gateway's hook calls to handlers by kind and event. */
export class HookRouter {
  #secret;
  #toleranceSeconds;
  #events = new Map();
  #onConnection = noAnswer;
  #onDisconnect = noAnswer;

  constructor({ secret, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS } = {}) {
    if (typeof secret !== 'string' || secret === '') throw new TypeError('HookRouter needs the secret (EVENT_HOOK_SECRET)');
    if (!(Number.isFinite(toleranceSeconds) && toleranceSeconds >= 0)) {
      throw new TypeError('toleranceSeconds must be a number of seconds');
    }
    this.#secret = secret;
    this.#toleranceSeconds = toleranceSeconds;
  }

  /** Handles client event `event`; what the handler returns is the client's ack. */
  on(event, handler) {
    if (typeof event !== 'string' || event === '') throw new TypeError('an event name must be a non-empty string');
    if (event === 'connection' || event === 'disconnect') {
      throw new TypeError(`use on${event === 'connection' ? 'Connection' : 'Disconnect'}() for "${event}"`);
    }
    this.#events.set(event, checkHandler(handler));
    return this;
  }

  /** Handles a new socket; returning `{data}` sets its socket.data, a HookError refuses it. */
  onConnection(handler) {
    this.#onConnection = checkHandler(handler);
    return this;
  }

  onDisconnect(handler) {
    this.#onDisconnect = checkHandler(handler);
    return this;
  }

  /** The answer (`{status, headers, body}`, body a string or null) to one hook call. */
  async handle(rawBody, signatureHeader) {
    const options = { toleranceSeconds: this.#toleranceSeconds };
    if (!(await verifySignature(rawBody, signatureHeader, this.#secret, options))) {
      return refusal(401, 'bad_signature', `the ${SIGNATURE_HEADER} header is missing, malformed, stale or wrong`);
    }
    const call = parseCall(rawBody);
    if (call === undefined) return refusal(400, 'bad_request', 'the body is not a JSON object');
    switch (call.kind) {
      case 'event': {
        const handler = this.#events.get(call.event);
        if (handler === undefined) return refusal(404, 'unknown_event', `no handler for "${call.event}"`);
        return answer(handler, call);
      }
      case 'connection':
        return answer(this.#onConnection, call);
      case 'disconnect':
        return answer(this.#onDisconnect, call);
      default:
        return refusal(400, 'unknown_kind', `unknown call kind "${call.kind}"`);
    }
  }

  /** A node:http / Express `(req, res)` handler; reads the raw body itself (at most 1 MiB). */
  node() {
    return (req, res) => {
      this.#answerNode(req)
        .then((result) => writeAnswer(res, result))
        .catch((error) => console.error('@switchboard/emitter/hooks: could not write the answer:', error));
    };
  }

  async #answerNode(req) {
    try {
      if (req.method !== 'POST') return refusal(405, 'method_not_allowed', 'hook calls are POSTs', { allow: 'POST' });
      const header = req.headers[SIGNATURE_HEADER];
      return await this.handle(await rawBodyOf(req), Array.isArray(header) ? header[0] : header);
    } catch (error) {
      if (error instanceof HookError) return refusal(error.status, error.code, error.message);
      console.error('@switchboard/emitter/hooks: could not answer a hook call:', error);
      return refusal(500, 'internal_error', 'the hook call could not be answered');
    }
  }
}

function checkHandler(handler) {
  if (typeof handler !== 'function') throw new TypeError('a handler must be a function');
  return handler;
}

/**
 * The request's raw body: the one a body parser such as `express.raw()` left in `req.body`, or
 * read from the stream. A body already parsed into JSON cannot be verified and is refused.
 */
async function rawBodyOf(req) {
  const parsed = req.body;
  if (typeof parsed === 'string' || parsed instanceof Uint8Array) {
    if (byteLength(parsed) > MAX_BODY_BYTES) throw tooLarge();
    return parsed;
  }
  if (req.readableEnded) {
    throw new HookError('raw_body_required', 'the body was consumed by another parser: mount express.raw({ type: "application/json" }) for this route', 500);
  }
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) throw tooLarge();
  return readStream(req);
}

function byteLength(body) {
  return typeof body === 'string' ? encoder.encode(body).length : body.length;
}

function tooLarge() {
  return new HookError('too_large', `a hook call is at most ${MAX_BODY_BYTES} bytes`, 413);
}

/** Reads `req` to its end into bytes; past the limit it stops keeping chunks and drains the rest. */
function readStream(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    function onData(chunk) {
      const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
      size += bytes.length;
      chunks.push(bytes);
      if (size <= MAX_BODY_BYTES) return;
      stop();
      req.resume();
      reject(tooLarge());
    }
    function onEnd() {
      stop();
      resolve(concat(chunks));
    }
    function onError(error) {
      stop();
      reject(error);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function writeAnswer(res, { status, headers, body }) {
  res.writeHead(status, headers);
  res.end(body ?? undefined);
}
