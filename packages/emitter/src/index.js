/**
 * @switchboard/emitter: the API of `@socket.io/redis-emitter` (v5) spoken over Switchboard's
 * HTTP control API (`POST <url>/internal/v1/socketio/<op>`) instead of Redis pub/sub.
 *
 * A backend that published to socket.io servers through Redis changes only its constructor,
 * `new Emitter(redisClient)` → `new Emitter({ url, token })`; every `of/to/in/except/emit/
 * socketsJoin/...` chain keeps its meaning. What HTTP adds over a Redis PUBLISH is handled here,
 * once, so callers do not each reinvent it:
 *
 * - Order. Every call made from one root emitter (its `of()` children, their operators and the
 *   RemoteSockets they fetched) goes through one FIFO queue, one request at a time, so the
 *   gateway sees calls in the order they were made, as one Redis connection guaranteed.
 * - No unhandled rejections. Calls return a lazy thenable (`Outcome`): nothing that can reject
 *   exists until someone calls `then`. Every failure also goes to the `error` listeners, or
 *   once to `console.error` when there are none.
 * - Retries. A network error, a timeout, 429 (honouring Retry-After) or 5xx is retried with
 *   jittered exponential backoff before the next queued call starts, so retries keep order.
 *
 * It uses only global `fetch`, `AbortController` and timers: Node 18+, Deno, Bun and Workers.
 */

/** Event names socket.io keeps for itself (the same list as socket.io and the redis emitter). */
export const RESERVED_EVENTS = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 5;
const FIRST_BACKOFF_MS = 100;
const MAX_RETRY_AFTER_MS = 30_000;
const FETCH_PAGE_SIZE = 100;
/** Lets `of()` hand its queue to a child without making that a constructor option. */
const SHARED_LINK = Symbol('switchboard.emitter.link');
const NO_TARGET = Object.freeze({ rooms: [], except: [], users: [], volatile: false });

/** A failed call: `code` is the gateway's error code, or `network_error` / `timeout`. */
export class EmitterError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ status?: number | null, op?: string, cause?: unknown }} [details]
   */
  constructor(code, message, { status = null, op, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'EmitterError';
    this.code = code;
    this.status = status;
    this.op = op;
  }
}

/**
 * What a call returns: a thenable over a settlement that never rejects. A promise that can
 * reject is made only when someone calls `then` (or `await`s), and it is then theirs to handle.
 */
class Outcome {
  #settlement;

  constructor(settlement) {
    this.#settlement = settlement;
  }

  then(onFulfilled, onRejected) {
    return this.#settlement.then(unwrap).then(onFulfilled, onRejected);
  }

  catch(onRejected) {
    return this.then(undefined, onRejected);
  }

  finally(onFinally) {
    return this.then().finally(onFinally);
  }
}

function unwrap(settlement) {
  if (settlement.ok) return settlement.value;
  throw settlement.error;
}

/** The connection to one gateway: its queue, its error listeners and the HTTP requests. */
class Link {
  #base;
  #token;
  #fetch;
  #timeoutMs;
  #tail = Promise.resolve();
  #listeners = new Set();

  constructor({ url, token, fetch, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    if (typeof url !== 'string' && !(url instanceof URL)) {
      throw new TypeError("Emitter needs options.url, the gateway's base URL");
    }
    new URL(url); // throws a TypeError for a malformed URL, now rather than at the first call
    if (typeof token !== 'string' || token === '') {
      throw new TypeError('Emitter needs options.token, the gateway\'s INTERNAL_API_TOKEN');
    }
    if (fetch !== undefined && typeof fetch !== 'function') {
      throw new TypeError('options.fetch must be a function');
    }
    if (fetch === undefined && typeof globalThis.fetch !== 'function') {
      throw new TypeError('there is no global fetch here: pass options.fetch');
    }
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      throw new TypeError('options.timeoutMs must be a positive number');
    }
    this.#base = String(url).replace(/\/+$/, '');
    this.#token = token;
    // Called through globalThis: Workers refuse a `fetch` detached from its receiver.
    this.#fetch = fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = timeoutMs;
  }

  /** Queues `job` behind every earlier call; its failure is reported, never thrown. */
  enqueue(job) {
    const settlement = this.#tail.then(() => job()).then(
      (value) => ({ ok: true, value }),
      (error) => {
        this.#report(error);
        return { ok: false, error };
      },
    );
    this.#tail = settlement;
    return new Outcome(settlement);
  }

  /** Resolves once the queue is empty, including calls queued while waiting. */
  async flush() {
    let tail;
    do {
      tail = this.#tail;
      await tail;
    } while (tail !== this.#tail);
  }

  listen(event, listener) {
    checkListener(event, listener);
    this.#listeners.add(listener);
  }

  unlisten(event, listener) {
    checkListener(event, listener);
    this.#listeners.delete(listener);
  }

  /** POSTs `payload` (JSON text) to `op`, retrying what may succeed later; throws EmitterError. */
  async request(op, payload) {
    for (let attempt = 1; ; attempt += 1) {
      const { value, error, retryAfterMs } = await this.#attempt(op, payload);
      if (error === undefined) return value;
      if (!isRetryable(error) || attempt === MAX_ATTEMPTS) throw error;
      await sleep(retryAfterMs ?? backoffMs(attempt));
    }
  }

  async #attempt(op, payload) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const response = await this.#fetch(`${this.#base}/internal/v1/socketio/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#token}`, 'content-type': 'application/json' },
        body: payload,
        signal: controller.signal,
      });
      const text = await response.text();
      return interpret(op, response, text);
    } catch (cause) {
      return { error: transportError(op, cause, controller.signal.aborted, this.#timeoutMs) };
    } finally {
      clearTimeout(timer);
    }
  }

  #report(error) {
    if (this.#listeners.size === 0) {
      console.error('@switchboard/emitter: a call failed (add an "error" listener to handle it):', error);
      return;
    }
    for (const listener of this.#listeners) callListener(listener, error);
  }
}

function checkListener(event, listener) {
  if (event !== 'error') throw new TypeError(`an Emitter only emits "error", not "${String(event)}"`);
  if (typeof listener !== 'function') throw new TypeError('an "error" listener must be a function');
}

/** Runs one error listener; what it throws (or rejects with) is logged, never propagated. */
function callListener(listener, error) {
  const logFailure = (failure) => console.error('@switchboard/emitter: an "error" listener threw:', failure);
  try {
    const result = listener(error);
    if (typeof result?.then === 'function') result.then(undefined, logFailure);
  } catch (failure) {
    logFailure(failure);
  }
}

/** Turns the gateway's answer into `{value}` or `{error, retryAfterMs}`. */
function interpret(op, response, text) {
  const { status } = response;
  const body = parseJson(text);
  if (status >= 200 && status < 300) {
    if (body !== undefined) return { value: body };
    return { error: new EmitterError('bad_response', `the gateway answered ${status} with a body that is not JSON`, { status, op }) };
  }
  const { code, message } = body?.error ?? {};
  const error = new EmitterError(
    typeof code === 'string' ? code : 'http_error',
    typeof message === 'string' ? message : `the gateway answered ${status}`,
    { status, op },
  );
  return { error, retryAfterMs: status === 429 ? parseRetryAfter(response.headers.get('retry-after')) : undefined };
}

function transportError(op, cause, aborted, timeoutMs) {
  if (aborted) return new EmitterError('timeout', `the gateway did not answer within ${timeoutMs} ms`, { op, cause });
  return new EmitterError('network_error', `could not reach the gateway: ${cause?.message ?? cause}`, { op, cause });
}

/** JSON of `text`; `null` for an empty body; `undefined` when it is not JSON. */
function parseJson(text) {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRetryable(error) {
  return error.code === 'network_error' || error.code === 'timeout' || error.status === 429 || error.status >= 500;
}

/** Retry-After in whole seconds, capped; `undefined` when absent or not seconds. */
function parseRetryAfter(header) {
  if (!/^\d+$/.test(header?.trim() ?? '')) return undefined;
  return Math.min(Number(header) * 1000, MAX_RETRY_AFTER_MS);
}

/** 100 ms, 200 ms, 400 ms, ... with jitter between half and all of it. */
function backoffMs(attempt) {
  const full = FIRST_BACKOFF_MS * 2 ** (attempt - 1);
  return full / 2 + Math.random() * (full / 2);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function normalizeNamespace(nsp) {
  if (typeof nsp !== 'string') throw new TypeError('a namespace must be a string');
  return nsp.startsWith('/') ? nsp : `/${nsp}`;
}

/** `value` (one name or a list of names) as a list, refusing anything but non-empty strings. */
function names(value, what) {
  const list = Array.isArray(value) ? value : [value];
  for (const name of list) {
    if (typeof name !== 'string' || name === '') throw new TypeError(`a ${what} must be a non-empty string`);
  }
  return list;
}

function union(a, b) {
  return [...new Set([...a, ...b])];
}

/** What socket.io refuses synchronously when emitting. */
function checkEmit(ev, args) {
  if (typeof ev !== 'string') throw new TypeError('an event name must be a string');
  if (RESERVED_EVENTS.has(ev)) throw new Error(`"${ev}" is a reserved event name`);
  if (typeof args[args.length - 1] === 'function') throw new Error('Callbacks are not supported when broadcasting');
}

function isBinary(value) {
  return value instanceof ArrayBuffer
    || ArrayBuffer.isView(value)
    || (typeof Blob === 'function' && value instanceof Blob);
}

/**
 * The JSON text of a request body, made at call time: later changes to the arguments do not
 * change what is sent, and what cannot be sent (binary, cycles, BigInt) throws now.
 */
function serialize(body) {
  return JSON.stringify(body, function refuseBinary(key, value) {
    // `this[key]` is the value before toJSON: a Buffer would otherwise pass as {type, data}.
    if (isBinary(this[key])) {
      throw new TypeError('binary arguments are not supported over HTTP: send base64 or plain arrays');
    }
    return value;
  });
}

function send(link, op, body) {
  const payload = serialize(body);
  return link.enqueue(() => link.request(op, payload));
}

/** The gateway's selector: only the non-empty lists, always the namespace. */
function selector(nsp, { rooms, except, users }) {
  const out = { namespace: nsp };
  if (rooms.length > 0) out.rooms = rooms;
  if (users.length > 0) out.users = users;
  if (except.length > 0) out.except = except;
  return out;
}

function isSocketPage(page) {
  return Array.isArray(page?.sockets)
    && page.sockets.every((socket) => typeof socket?.id === 'string')
    && (page.next_cursor == null || typeof page.next_cursor === 'string');
}

/** Every page of `fetch` for `sel`, as RemoteSockets; runs as one queued job. */
async function fetchAll(link, sel) {
  const sockets = [];
  let cursor = null;
  do {
    const page = await link.request('fetch', serialize({ ...sel, limit: FETCH_PAGE_SIZE, cursor }));
    if (!isSocketPage(page)) {
      throw new EmitterError('bad_response', 'the gateway answered fetch without a sockets list', { status: 200, op: 'fetch' });
    }
    for (const socket of page.sockets) sockets.push(new RemoteSocket(link, socket, sel.namespace));
    cursor = page.next_cursor ?? null;
  } while (cursor !== null);
  return sockets;
}

/**
 * Who a call reaches: rooms and socket ids (`to`/`in`), `except`, users (`toUser`), in one
 * namespace, plus the volatile flag. Immutable: every chain call returns a new operator.
 */
export class BroadcastOperator {
  #link;
  #nsp;
  #target;

  /** @internal Made by Emitter and RemoteSocket, not by applications. */
  constructor(link, nsp, target = NO_TARGET) {
    this.#link = link;
    this.#nsp = nsp;
    this.#target = Object.freeze(target);
  }

  to(room) {
    return this.#with({ rooms: union(this.#target.rooms, names(room, 'room')) });
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    return this.#with({ except: union(this.#target.except, names(room, 'room')) });
  }

  /** Every socket of these users (Switchboard's own notion of a user: the token's `sub`). */
  toUser(...userIds) {
    const ids = userIds.flat();
    // An empty list would silently widen the call to the whole namespace.
    if (ids.length === 0) throw new TypeError('toUser() needs at least one user id');
    return this.#with({ users: union(this.#target.users, names(ids, 'user id')) });
  }

  get volatile() {
    return this.#with({ volatile: true });
  }

  /** Accepted for compatibility and ignored: HTTP compression is the transport's business. */
  compress(_compress) {
    return this;
  }

  emit(ev, ...args) {
    checkEmit(ev, args);
    return send(this.#link, 'emit', { ...this.#selector(), event: ev, args, volatile: this.#target.volatile });
  }

  socketsJoin(rooms) {
    return send(this.#link, 'join', { ...this.#selector(), join: names(rooms, 'room') });
  }

  socketsLeave(rooms) {
    return send(this.#link, 'leave', { ...this.#selector(), leave: names(rooms, 'room') });
  }

  disconnectSockets(close = false) {
    return send(this.#link, 'disconnect', { ...this.#selector(), close: Boolean(close) });
  }

  fetchSockets() {
    const sel = this.#selector();
    return this.#link.enqueue(() => fetchAll(this.#link, sel));
  }

  /** Replaces `socket.data` of the one socket this operator targets (`to(socketId)`). */
  setData(data) {
    return send(this.#link, 'data', { namespace: this.#nsp, socket_id: this.#soleSocketId(), data });
  }

  #with(change) {
    return new BroadcastOperator(this.#link, this.#nsp, { ...this.#target, ...change });
  }

  #selector() {
    return selector(this.#nsp, this.#target);
  }

  #soleSocketId() {
    const { rooms, except, users } = this.#target;
    if (rooms.length !== 1 || !rooms[0].includes('~') || except.length > 0 || users.length > 0) {
      throw new Error('setData() needs exactly one socket id as its only target: io.to(socketId).setData(data)');
    }
    return rooms[0];
  }
}

/** A socket as `fetchSockets()` saw it; its methods act on that socket through the same queue. */
export class RemoteSocket {
  #link;

  /** @internal Made by fetchSockets(). */
  constructor(link, socket, nsp) {
    this.#link = link;
    this.id = socket.id;
    this.userId = socket.user_id ?? null;
    this.namespace = socket.namespace ?? nsp;
    this.handshake = socket.handshake ?? {};
    this.rooms = new Set(socket.rooms ?? []);
    this.data = socket.data ?? null;
  }

  emit(ev, ...args) {
    return this.#operator().emit(ev, ...args);
  }

  join(rooms) {
    return this.#operator().socketsJoin(rooms);
  }

  leave(rooms) {
    return this.#operator().socketsLeave(rooms);
  }

  disconnect(close = false) {
    return this.#operator().disconnectSockets(close);
  }

  setData(data) {
    return send(this.#link, 'data', { namespace: this.namespace, socket_id: this.id, data });
  }

  #operator() {
    return new BroadcastOperator(this.#link, this.namespace).to(this.id);
  }
}

/** The root of a chain: a namespace of one gateway. `of()` children share its queue. */
export class Emitter {
  #link;
  #nsp;

  /** @param {{url: string | URL, token: string, fetch?: Function, timeoutMs?: number, namespace?: string}} options */
  constructor(options) {
    this.#link = options?.[SHARED_LINK] ?? new Link(options);
    this.#nsp = normalizeNamespace(options?.namespace ?? '/');
  }

  get nsp() {
    return this.#nsp;
  }

  of(nsp) {
    return new Emitter({ [SHARED_LINK]: this.#link, namespace: nsp });
  }

  emit(ev, ...args) {
    return this.#all().emit(ev, ...args);
  }

  to(room) {
    return this.#all().to(room);
  }

  in(room) {
    return this.#all().in(room);
  }

  except(room) {
    return this.#all().except(room);
  }

  toUser(...userIds) {
    return this.#all().toUser(...userIds);
  }

  get volatile() {
    return this.#all().volatile;
  }

  compress(compress) {
    return this.#all().compress(compress);
  }

  socketsJoin(rooms) {
    return this.#all().socketsJoin(rooms);
  }

  socketsLeave(rooms) {
    return this.#all().socketsLeave(rooms);
  }

  disconnectSockets(close = false) {
    return this.#all().disconnectSockets(close);
  }

  fetchSockets() {
    return this.#all().fetchSockets();
  }

  serverSideEmit() {
    throw new Error('serverSideEmit() is not supported over HTTP: Switchboard runs no socket.io servers to receive it');
  }

  on(event, listener) {
    this.#link.listen(event, listener);
    return this;
  }

  off(event, listener) {
    this.#link.unlisten(event, listener);
    return this;
  }

  flush() {
    return this.#link.flush();
  }

  #all() {
    return new BroadcastOperator(this.#link, this.#nsp);
  }
}
