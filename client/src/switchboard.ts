/**
 * Switchboard client SDK: one dependency-free ES module for browsers and Node >= 20.
 *
 * The concept: a `SwitchboardClient` holds one long-lived *user socket* (`/v1/connect`) that
 * carries the user's durable event stream (backend pushes, direct messages, read receipts) and
 * non-durable hints (`room.activity`, a backend's broadcast). Each `Room` holds its own *room socket*
 * (`/v1/rooms/{id}/connect`), opened lazily when the room is first used. Both kinds of socket
 * share one `Connection` engine that
 *
 * - sends the token in the `Sec-WebSocket-Protocol` pair (`["bearer", jwt]`),
 * - reconnects with exponential backoff and jitter,
 * - resumes from the last `seq` it saw (`?since=`), follows paged replay (`synced {more:true}`
 *   answered by `sync {since}`) and drops duplicates (a `seq` at or below the last one seen),
 * - keeps a heartbeat (`{"event":"ping"}` / `{"event":"pong"}`) and treats a silent link as dead,
 * - refreshes the token in band (`auth`) before it expires,
 * - after a failed upgrade asks `GET /v1/me` why, and stops in state `auth_failed` instead of
 *   looping when the token is the problem,
 * - answers `token.expired` / close 4001 with one refresh-and-reconnect, and stops on 4003/4009.
 *
 * REST calls (rooms, history, members, direct messages) go through the same client with
 * `Authorization: Bearer <token>` and reject with a `SwitchboardError` carrying `status` and
 * `code` from the gateway's `{"error":{"code","message"}}` answers.
 *
 * The wire contract is docs/PROTOCOL.md; this file only depends on it, never on the server code.
 */

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** The states a connection goes through; `state` events announce every change. */
export type ConnectionState =
  /** Not started yet (a room whose socket has not been needed). */
  | 'idle'
  /** Getting a token / opening the socket / waiting for `ready`. */
  | 'connecting'
  /** `ready` received: frames flow. */
  | 'connected'
  /** The socket is down; a reconnect is scheduled (`info.retryInMs`). */
  | 'disconnected'
  /** The token was refused (`info.code`, e.g. `token_expired`): stopped, no reconnect. */
  | 'auth_failed'
  /** Stopped for good: `close()`, a forced disconnect or removal (4003), a deleted room (4004),
   *  too many sockets (4009), or a room the user may not join (`not_a_member`, `not_found`).
   *  `info` says why. */
  | 'closed';

export interface StateInfo {
  /** A close code (number) or an error code (string) explaining the change. */
  code?: number | string;
  reason?: string;
  /** HTTP status behind an `auth_failed`. */
  status?: number;
  /** For `disconnected`: when the next attempt starts. */
  retryInMs?: number;
  /** Consecutive failed attempts so far. */
  attempt?: number;
}

/** A storage for resume state (`localStorage` fits). Keys are prefixed with `storagePrefix`. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** What the SDK needs from a WebSocket: the browser's, Node 22's global, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** What the SDK needs from `fetch`. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; ok: boolean; text(): Promise<string> }>;

export interface BackoffOptions {
  /** First delay (ms). Default 500. */
  initialMs?: number;
  /** Largest delay (ms). Default 30,000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Share of the delay taken off at random (0..1). Default 0.5. */
  jitter?: number;
}

export interface ConnectOptions {
  /** The gateway's base URL: `https://…`, `http://…`, `wss://…` or `ws://…`. */
  url: string;
  /** Returns (a promise of) a JWT for the user. Called again when the token nears expiry. */
  getToken: () => string | Promise<string>;
  /** A WebSocket implementation; default `globalThis.WebSocket` (on Node 20 pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** A fetch implementation; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Where resume state (last seq per user and room, device id) is kept; default memory. */
  storage?: StorageLike;
  /** Key prefix in `storage`. Default `switchboard`. */
  storagePrefix?: string;
  /** A stable device id; default the one the gateway assigns on the first connect. */
  device?: string;
  /** Request (ack) timeout (ms). Default 10,000. */
  requestTimeoutMs?: number;
  /** Ping every this many ms. Default 25,000. */
  heartbeatIntervalMs?: number;
  /** A ping unanswered (no frame at all) this long means a dead link. Default 10,000. */
  heartbeatTimeoutMs?: number;
  /** Give up on an attempt that has not reached `ready` in this long (ms). Default 10,000. */
  connectTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Refresh the token this long before it expires (ms; at most half of its lifetime).
   *  Default 60,000. */
  refreshBeforeMs?: number;
  /** Throttle for `room.typing()` while the state is unchanged (ms). Default 2,500. */
  typingIntervalMs?: number;
  /** Messages a room replays over its socket the first time it opens (older ones: `history`).
   *  Default 50; 0 starts at the newest message. */
  initialRoomMessages?: number;
  /** Open the user socket now (default) or on first use (`false`). */
  autoConnect?: boolean;
}

/** A frame as the gateway sends it. */
export interface ServerFrame<T = any> {
  event: string;
  data: T;
  /** On durable stream events: the resume point moves to it. */
  seq?: number;
  id?: string | number;
  /** On a backend's broadcast to everyone online: no `seq`, never replayed, and it does not move
   *  the resume point (handlers get it like any event). */
  broadcast?: boolean;
}

export interface ReadyData {
  user_id: string;
  conn_id: string;
  device: string;
  seq: number;
  cursor?: number | null;
  expires_at: number;
  room_id?: string;
  read_seq?: number;
  unread?: number;
}

export interface SyncedData {
  seq: number;
  recovered: boolean;
  more: boolean;
  history?: string;
}

export type MessageType = 'text' | 'image' | 'video' | 'file' | 'system';

export interface RoomMessage {
  id: string;
  seq: number;
  room_id: string;
  sender_id: string | null;
  type: MessageType;
  body: string;
  url?: string;
  title?: string;
  data?: Record<string, unknown>;
  client_id?: string;
  created_at: number;
  /** Set once edited (unix ms). */
  edited_at?: number;
  /** Set once recalled or deleted (unix ms); the body is then empty. */
  deleted_at?: number;
}

export interface DirectMessage {
  id: string;
  sender_id: string;
  to: string[];
  type: MessageType;
  body: string;
  url?: string;
  title?: string;
  data?: Record<string, unknown>;
  client_id?: string;
  created_at: number;
  /** Received lists: when I read it (unix ms). */
  read_at?: number | null;
  /** Sent lists: one per receiver. */
  receipts?: { user_id: string; read_at: number | null; deleted: boolean }[];
  deleted?: boolean;
}

export interface LastMessage {
  id: string;
  seq: number;
  sender_id: string | null;
  type: MessageType;
  preview: string;
  created_at: number;
}

export interface RoomSummary {
  id: string;
  name: string;
  role?: 'owner' | 'member';
  last_seq: number;
  read_seq: number;
  unread: number;
  activity_at: number;
  last_message: LastMessage | null;
}

/** `room.activity`: a room the user is in but not connected to moved on. */
export interface RoomActivity {
  room_id: string;
  seq: number;
  unread: number;
  last_message: LastMessage | null;
  at: number;
}

export interface RoomInfo {
  id: string;
  name: string;
  created_by?: string | null;
  created_at?: number;
  last_seq: number;
  activity_at?: number;
  role?: 'owner' | 'member';
  read_seq?: number;
  members?: number;
}

/**
 * A member as the member list shows them. A `pending` member (added by another user, and not
 * yet active in the room themselves) shows only who they are: the activity fields are absent.
 */
export interface RoomMember {
  user_id: string;
  role: 'owner' | 'member';
  joined_at: number;
  pending: boolean;
  read_seq?: number;
  online?: boolean;
  devices?: number;
  last_seen?: number | null;
  in_room?: number;
}

/** What `room.send` / `dm.send` take: a string is a text body. */
export type MessageInput =
  | string
  | { type?: Exclude<MessageType, 'system'>; body?: string; url?: string; title?: string; data?: Record<string, unknown> };

export interface SendOptions {
  /** The idempotency key; generated when absent. Retries always reuse it. */
  clientId?: string;
  /** Reject if not stored within this long (ms); default: keep retrying until the room closes. */
  timeoutMs?: number;
}

export interface RequestOptions {
  timeoutMs?: number;
}

/**
 * A frame as JSON text. U+FFFD goes escaped (`\ufffd`): the gateway closes with 1007 on a raw
 * one, since that is how the runtime hands it a frame that was not valid UTF-8.
 */
function encodeFrame(frame: Record<string, unknown>): string {
  return JSON.stringify(frame).replace(/\uFFFD/g, '\\ufffd');
}

/** An error from the gateway (REST or an `error` frame) or from the SDK (`timeout`,
 *  `disconnected`, `network`, `closed`, `auth_failed`). */
export class SwitchboardError extends Error {
  readonly code: string;
  readonly status?: number;
  readonly data?: unknown;
  constructor(code: string, message: string, extra: { status?: number; data?: unknown } = {}) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.data !== undefined) this.data = extra.data;
  }
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

type Timer = ReturnType<typeof setTimeout>;
type Listener = (...args: any[]) => void;

/** A random id usable as a `client_id` (`c-` + 24 hex digits). */
export function createClientId(): string {
  const bytes = new Uint8Array(12);
  const c = (globalThis as any).crypto;
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The claims of a JWT, unverified (for `sub` and `exp`); `null` if it is not one. */
export function decodeToken(token: string): { sub?: string; exp?: number; [k: string]: unknown } | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const json = JSON.parse((globalThis as any).atob(b64));
    return json && typeof json === 'object' ? json : null;
  } catch {
    return null;
  }
}

class MemoryStorage implements StorageLike {
  private map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.has(key) ? (this.map.get(key) as string) : null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
}

/** A minimal event emitter: `on` returns an unsubscribe function. */
export class Emitter {
  private listeners = new Map<string, Set<Listener>>();

  on(event: string, fn: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  once(event: string, fn: Listener): () => void {
    const off = this.on(event, (...args: any[]) => {
      off();
      fn(...args);
    });
    return off;
  }

  off(event: string, fn: Listener): void {
    this.listeners.get(event)?.delete(fn);
  }

  protected emit(event: string, ...args: any[]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A listener's bug must not break the connection engine.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}

function toHttpBase(url: string): string {
  const u = url.replace(/\/+$/, '');
  if (u.startsWith('wss://')) return 'https://' + u.slice(6);
  if (u.startsWith('ws://')) return 'http://' + u.slice(5);
  return u;
}

function toWsBase(url: string): string {
  const u = toHttpBase(url);
  if (u.startsWith('https://')) return 'wss://' + u.slice(8);
  if (u.startsWith('http://')) return 'ws://' + u.slice(7);
  return u;
}

function messageBody(input: MessageInput): Record<string, unknown> {
  if (typeof input === 'string') return { type: 'text', body: input };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) if (v !== undefined) out[k] = v;
  if (!out.type) out.type = 'text';
  return out;
}

function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? '?' + parts.join('&') : '';
}

/** Caches the token from `getToken` and refreshes it when it nears expiry. */
class TokenSource {
  private token?: string;
  private expMs?: number;
  private inflight?: Promise<string>;
  constructor(private readonly getToken: () => string | Promise<string>, private readonly marginMs: number) {}

  /** The cached token unless it is within the refresh margin (or `force`). */
  get(force = false): Promise<string> {
    if (!force && this.token && (this.expMs === undefined || this.expMs - Date.now() > this.marginMs)) {
      return Promise.resolve(this.token);
    }
    if (this.inflight) return this.inflight;
    const p = Promise.resolve()
      .then(() => this.getToken())
      .then((token) => {
        if (typeof token !== 'string' || !token) throw new SwitchboardError('token_missing', 'getToken returned no token');
        this.token = token;
        const exp = decodeToken(token)?.exp;
        this.expMs = typeof exp === 'number' ? exp * 1000 : undefined;
        return token;
      })
      .finally(() => {
        if (this.inflight === p) this.inflight = undefined;
      });
    this.inflight = p;
    return p;
  }

  /** Forgets `stale` (or whatever is cached) so the next `get` calls `getToken`. */
  invalidate(stale?: string): void {
    if (!stale || this.token === stale) {
      this.token = undefined;
      this.expMs = undefined;
    }
  }
}

interface Pending {
  resolve: (data: any) => void;
  reject: (err: Error) => void;
  timer: Timer;
  event: string;
}

interface Queued {
  id: string;
  frame: string;
  pending: Pending;
}

const DEFAULTS = {
  requestTimeoutMs: 10_000,
  heartbeatIntervalMs: 25_000,
  heartbeatTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  refreshBeforeMs: 60_000,
  typingIntervalMs: 2_500,
  initialRoomMessages: 50,
};

/** Shared state of one client: options, token, REST. Rooms and the user socket use it. */
class Core {
  readonly httpBase: string;
  readonly wsBase: string;
  readonly tokens: TokenSource;
  readonly WS: WebSocketConstructor;
  readonly fetch: FetchLike;
  readonly storage: StorageLike;
  readonly prefix: string;
  readonly opts: ConnectOptions & typeof DEFAULTS;

  constructor(opts: ConnectOptions) {
    if (!opts || typeof opts.url !== 'string') throw new TypeError('connect: url is required');
    if (typeof opts.getToken !== 'function') throw new TypeError('connect: getToken is required');
    this.opts = { ...DEFAULTS, ...stripUndefined(opts) } as ConnectOptions & typeof DEFAULTS;
    this.httpBase = toHttpBase(opts.url);
    this.wsBase = toWsBase(opts.url);
    this.tokens = new TokenSource(opts.getToken, this.opts.refreshBeforeMs);
    const WS = opts.WebSocket ?? (globalThis as any).WebSocket;
    if (!WS) throw new TypeError('connect: no WebSocket implementation (pass the `WebSocket` option)');
    this.WS = WS;
    const f = opts.fetch ?? (globalThis as any).fetch;
    if (!f) throw new TypeError('connect: no fetch implementation (pass the `fetch` option)');
    this.fetch = opts.fetch ?? ((url, init) => (globalThis as any).fetch(url, init));
    this.storage = opts.storage ?? new MemoryStorage();
    this.prefix = opts.storagePrefix ?? 'switchboard';
  }

  /** One REST call with the bearer token; a 401 `token_expired` is retried once with a fresh one. */
  async api<T = any>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    let tok = token ?? (await this.tokens.get());
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { authorization: `Bearer ${tok}` };
      const init: { method: string; headers: Record<string, string>; body?: string } = { method, headers };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let res;
      try {
        res = await this.fetch(this.httpBase + path, init);
      } catch (err) {
        throw new SwitchboardError('network', `${method} ${path}: ${(err as Error)?.message ?? err}`, { status: 0 });
      }
      const text = await res.text();
      let json: any;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (res.ok) return json as T;
      const e = json?.error;
      const error = new SwitchboardError(
        typeof e?.code === 'string' ? e.code : `http_${res.status}`,
        typeof e?.message === 'string' ? e.message : text || `HTTP ${res.status}`,
        { status: res.status, data: json },
      );
      if (res.status === 401 && error.code === 'token_expired' && attempt === 0 && token === undefined) {
        this.tokens.invalidate(tok);
        tok = await this.tokens.get(true);
        continue;
      }
      throw error;
    }
  }

  key(userId: string, ...rest: string[]): string {
    return [this.prefix, userId, ...rest].join(':');
  }

  load(key: string | null): string | null {
    if (!key) return null;
    try {
      return this.storage.getItem(key);
    } catch {
      return null;
    }
  }

  save(key: string | null, value: string): void {
    if (!key) return;
    try {
      this.storage.setItem(key, value);
    } catch {
      // storage full or unavailable: memory state still works
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: any = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The connection engine (user socket and room sockets)
// ---------------------------------------------------------------------------------------------

/**
 * One logical socket that survives reconnects: token carrier, backoff, resume, replay paging,
 * dedupe, heartbeat, in-band token refresh, request/ack with timeouts and auth failure handling.
 * `SwitchboardClient` (the user socket) and `Room` (a room socket) extend it.
 */
export abstract class Connection extends Emitter {
  /** The current state; `on('state', (state, info) => …)` announces changes. */
  state: ConnectionState = 'idle';
  /** Why the current state was entered. */
  stateInfo: StateInfo = {};
  /** The newest `seq` delivered to listeners (the resume point). */
  lastSeq: number | null = null;
  /** The last `ready` frame's data. */
  readyData: ReadyData | null = null;
  /** Counters, handy in tests and dashboards. */
  readonly stats = { sockets: 0, readies: 0, duplicatesDropped: 0, replayBatches: 0, refreshes: 0 };

  protected readonly core: Core;
  private ws: WebSocketLike | null = null;
  private generation = 0;
  private opened = false;
  private ready = false;
  private started = false;
  private stopped = false;
  private attempt = 0;
  private reconnectTimer: Timer | null = null;
  private connectTimer: Timer | null = null;
  private heartbeatTimer: Timer | null = null;
  private refreshTimer: Timer | null = null;
  private lastFrameAt = 0;
  private pending = new Map<string, Pending>();
  private queue: Queued[] = [];
  private nextId = 1;
  private readonly idPrefix = Math.random().toString(36).slice(2, 7) + '-';
  private expiredChain = 0;
  private socketToken = '';
  private expiresAt = 0;
  private sinceUsed: number | null = null;
  private firstReady: { promise: Promise<ReadyData>; resolve: (d: ReadyData) => void; reject: (e: Error) => void };
  private onlineHandler: (() => void) | null = null;
  /** The user id, from the token's `sub` until `ready` confirms it. */
  protected uid: string | null = null;
  protected device: string | null = null;

  constructor(core: Core) {
    super();
    this.core = core;
    this.device = core.opts.device ?? null;
    this.firstReady = Connection.deferred();
  }

  private static deferred(): { promise: Promise<ReadyData>; resolve: (d: ReadyData) => void; reject: (e: Error) => void } {
    let resolve!: (d: ReadyData) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<ReadyData>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    return { promise, resolve, reject };
  }

  /** The route this socket connects to. */
  protected abstract path(): string;
  /** The storage key of this socket's resume seq, once the user is known. */
  protected abstract seqKey(): string | null;
  /** A frame that passed dedupe (stream events, room events, hints). */
  protected abstract handleFrame(frame: ServerFrame): void;
  /** Where to resume when nothing is stored: `null` = from now. */
  protected async initialSince(_token: string): Promise<number | null> {
    return null;
  }
  /** After a refused upgrade: why (the token, or something else permanent), or null. */
  protected async diagnose(token: string): Promise<SwitchboardError | null> {
    try {
      await this.core.api('GET', '/v1/me', undefined, token);
      return null;
    } catch (err) {
      if (err instanceof SwitchboardError && err.status === 401) return err;
      return null;
    }
  }
  protected onReady(_data: ReadyData): void {}
  protected onDisconnected(): void {}

  /** The user id (from `ready`, or the token's `sub` before that). */
  get userId(): string | null {
    return this.uid;
  }

  /** Starts the socket (idempotent); resolves with the first `ready`. */
  open(): Promise<ReadyData> {
    this.start();
    return this.firstReady.promise;
  }

  protected start(): void {
    if (this.started) return;
    this.started = true;
    this.listenOnline();
    void this.openSocket();
  }

  private listenOnline(): void {
    const g = globalThis as any;
    if (!this.onlineHandler && typeof g.addEventListener === 'function') {
      // Back online: retry now instead of waiting out the backoff (an attempt made while
      // offline may still be pending: start over).
      this.onlineHandler = () => {
        if (this.stopped) return;
        if (this.state === 'disconnected') this.connectNow();
        else if (this.state === 'connecting') this.reconnect();
      };
      g.addEventListener('online', this.onlineHandler);
    }
  }

  /** Drops the current socket (if any) and connects again now; also restarts after
   *  `auth_failed` or `closed`. */
  reconnect(): void {
    if (this.stopped) {
      this.stopped = false;
      this.expiredChain = 0;
      this.attempt = 0;
      this.firstReady = Connection.deferred();
      this.listenOnline();
    }
    if (!this.started) {
      this.start();
      return;
    }
    this.dropSocket();
    this.connectNow();
  }

  /** Stops for good: closes the socket, rejects pending requests; state `closed`. */
  close(): void {
    this.stop('closed', { code: 1000, reason: 'closed by the client' });
  }

  /** Sends a request frame and resolves with the `ack` data, or rejects with a
   *  `SwitchboardError` carrying the `error` frame's `code` (or `timeout`, `disconnected`). */
  request<T = any>(event: string, data?: unknown, opts: RequestOptions = {}): Promise<T> {
    this.start();
    if (this.stopped) {
      return Promise.reject(new SwitchboardError(this.state === 'auth_failed' ? 'auth_failed' : 'closed', `${event}: connection is ${this.state}`));
    }
    const timeoutMs = opts.timeoutMs ?? this.core.opts.requestTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const id = this.idPrefix + this.nextId++;
      const frame: Record<string, unknown> = { event, id };
      if (data !== undefined) frame.data = data;
      const pending: Pending = {
        resolve,
        reject,
        event,
        timer: setTimeout(() => {
          this.pending.delete(id);
          this.queue = this.queue.filter((q) => q.id !== id);
          reject(new SwitchboardError('timeout', `${event}: no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      const text = encodeFrame(frame);
      if (this.ready && this.ws) {
        this.pending.set(id, pending);
        this.rawSend(text);
      } else {
        this.queue.push({ id, frame: text, pending });
      }
    });
  }

  /** Sends a frame without waiting for anything (dropped when not connected). */
  protected sendFrame(event: string, data?: unknown): boolean {
    if (!this.ready || !this.ws) return false;
    const frame: Record<string, unknown> = { event };
    if (data !== undefined) frame.data = data;
    return this.rawSend(encodeFrame(frame));
  }

  protected get isReady(): boolean {
    return this.ready;
  }

  private rawSend(text: string): boolean {
    try {
      this.ws?.send(text);
      return true;
    } catch {
      return false;
    }
  }

  private setState(state: ConnectionState, info: StateInfo = {}): void {
    if (this.state === state && state !== 'disconnected') {
      this.stateInfo = info;
      return;
    }
    this.state = state;
    this.stateInfo = info;
    this.emit('state', state, info);
  }

  private stop(state: 'closed' | 'auth_failed', info: StateInfo): void {
    this.stopped = true;
    this.clearTimer('reconnectTimer');
    this.clearTimer('refreshTimer');
    this.dropSocket();
    for (const q of this.queue) {
      clearTimeout(q.pending.timer);
      q.pending.reject(new SwitchboardError(state, `${q.pending.event}: connection ${state}`));
    }
    this.queue = [];
    if (this.onlineHandler) {
      (globalThis as any).removeEventListener?.('online', this.onlineHandler);
      this.onlineHandler = null;
    }
    this.setState(state, info);
    const err = new SwitchboardError(String(info.code ?? state), info.reason ?? state, info.status !== undefined ? { status: info.status } : {});
    this.firstReady.reject(err);
    this.onStopped(err);
  }

  protected onStopped(_err: SwitchboardError): void {}

  private clearTimer(name: 'reconnectTimer' | 'connectTimer' | 'heartbeatTimer' | 'refreshTimer'): void {
    const t = this[name];
    if (t !== null) clearTimeout(t);
    this[name] = null;
  }

  private connectNow(): void {
    if (this.stopped) return;
    this.clearTimer('reconnectTimer');
    void this.openSocket();
  }

  private async openSocket(): Promise<void> {
    if (this.stopped || this.ws) return;
    const gen = ++this.generation;
    this.setState('connecting', { attempt: this.attempt });
    let token: string;
    let since: number | null;
    try {
      token = await this.core.tokens.get();
      if (gen !== this.generation || this.stopped) return;
      if (!this.uid) {
        const sub = decodeToken(token)?.sub;
        if (typeof sub === 'string') this.uid = sub;
      }
      if (this.lastSeq === null) {
        const stored = Number(this.core.load(this.seqKey()));
        if (this.core.load(this.seqKey()) !== null && Number.isInteger(stored) && stored >= 0) this.lastSeq = stored;
      }
      if (!this.device && this.uid) this.device = this.core.load(this.core.key(this.uid, 'device'));
      since = this.lastSeq ?? (await this.initialSince(token));
      if (gen !== this.generation || this.stopped) return;
    } catch (err) {
      if (gen !== this.generation || this.stopped) return;
      if (err instanceof SwitchboardError && err.status === 401) {
        this.stop('auth_failed', { code: err.code, status: 401, reason: err.message });
        return;
      }
      if (err instanceof SwitchboardError && (err.code === 'not_a_member' || err.code === 'not_found')) {
        this.stop('closed', { code: err.code, status: err.status, reason: err.message });
        return;
      }
      this.scheduleReconnect({ code: err instanceof SwitchboardError ? err.code : 'token', reason: String((err as Error)?.message ?? err) });
      return;
    }
    this.sinceUsed = since;
    const url = this.core.wsBase + this.path() + query({ since: since ?? undefined, device: this.device ?? undefined });
    let ws: WebSocketLike;
    try {
      ws = new this.core.WS(url, ['bearer', token]);
    } catch (err) {
      this.scheduleReconnect({ code: 'socket', reason: String((err as Error)?.message ?? err) });
      return;
    }
    this.stats.sockets++;
    this.ws = ws;
    this.socketToken = token;
    this.opened = false;
    this.ready = false;
    this.lastFrameAt = Date.now();
    this.connectTimer = setTimeout(() => {
      if (gen !== this.generation) return;
      this.onClosed(gen, 1006, 'connect timeout', token, this.opened);
    }, this.core.opts.connectTimeoutMs);
    ws.onopen = () => {
      if (gen !== this.generation) return;
      this.opened = true;
      this.lastFrameAt = Date.now();
      this.scheduleHeartbeat(gen);
    };
    ws.onmessage = (ev: any) => {
      if (gen !== this.generation) return;
      this.lastFrameAt = Date.now();
      const raw = typeof ev?.data === 'string' ? ev.data : String(ev?.data ?? '');
      this.onRaw(raw);
    };
    ws.onerror = () => {
      // a close event follows
    };
    ws.onclose = (ev: any) => {
      if (gen !== this.generation) return;
      this.onClosed(gen, Number(ev?.code ?? 1006), String(ev?.reason ?? ''), token, this.opened);
    };
  }

  /** Forgets the current socket: its later events are ignored; it is closed if still open. */
  private dropSocket(): void {
    const ws = this.ws;
    this.generation++;
    this.ws = null;
    this.opened = false;
    const wasReady = this.ready;
    this.ready = false;
    this.clearTimer('connectTimer');
    this.clearTimer('heartbeatTimer');
    this.clearTimer('refreshTimer');
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      // Keep an error handler: Node's `ws` throws on an 'error' event nobody listens to.
      ws.onerror = () => undefined;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new SwitchboardError('disconnected', `${p.event}: the socket closed before the answer`));
    }
    if (wasReady) this.onDisconnected();
  }

  private async onClosed(gen: number, code: number, reason: string, token: string, wasOpen: boolean): Promise<void> {
    if (gen !== this.generation) return;
    const expired = code === 4001;
    this.dropSocket();
    if (this.stopped) return;
    if (code === 4003 || code === 4004 || code === 4009) {
      this.stop('closed', { code, reason });
      return;
    }
    if (expired) {
      // One refresh-and-reconnect; a second expiry in a row means the token source is stale.
      if (this.expiredChain >= 1) {
        this.stop('auth_failed', { code: 'token_expired', status: 401, reason: 'the refreshed token was expired too' });
        return;
      }
      this.expiredChain++;
      this.core.tokens.invalidate(token);
      this.setState('disconnected', { code, reason: reason || 'token expired', retryInMs: 0 });
      this.connectNow();
      return;
    }
    if (!wasOpen) {
      // A refused upgrade looks like 1006 to a browser: ask the REST side why.
      const failed = await this.diagnose(token);
      if (gen + 1 !== this.generation || this.stopped) return;
      if (failed && failed.status === 401) {
        // Once: maybe only the cached token is stale. A getToken that gives it again is final.
        this.core.tokens.invalidate(token);
        let fresh: string | null = null;
        try {
          fresh = await this.core.tokens.get(true);
        } catch {
          fresh = null;
        }
        if (gen + 1 !== this.generation || this.stopped) return;
        const again = fresh && fresh !== token ? await this.diagnose(fresh) : failed;
        if (gen + 1 !== this.generation || this.stopped) return;
        if (again && again.status === 401) {
          this.stop('auth_failed', { code: again.code, status: 401, reason: again.message });
          return;
        }
      } else if (failed) {
        this.stop('closed', { code: failed.code, status: failed.status, reason: failed.message });
        return;
      }
    }
    this.scheduleReconnect({ code, reason });
  }

  private scheduleReconnect(info: StateInfo): void {
    if (this.stopped) return;
    const b = this.core.opts.backoff ?? {};
    const initial = b.initialMs ?? 500;
    const max = b.maxMs ?? 30_000;
    const factor = b.factor ?? 2;
    const jitter = Math.min(1, Math.max(0, b.jitter ?? 0.5));
    const base = Math.min(max, initial * Math.pow(factor, this.attempt));
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.attempt++;
    this.setState('disconnected', { ...info, retryInMs: delay, attempt: this.attempt });
    this.clearTimer('reconnectTimer');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.openSocket();
    }, delay);
  }

  private scheduleHeartbeat(gen: number): void {
    const interval = this.core.opts.heartbeatIntervalMs;
    const timeout = this.core.opts.heartbeatTimeoutMs;
    this.clearTimer('heartbeatTimer');
    this.heartbeatTimer = setTimeout(() => {
      if (gen !== this.generation) return;
      const sentAt = Date.now();
      this.rawSend('{"event":"ping"}');
      this.heartbeatTimer = setTimeout(() => {
        if (gen !== this.generation) return;
        if (this.lastFrameAt < sentAt) {
          this.onClosed(gen, 1006, 'heartbeat timeout', '', true);
        } else {
          this.scheduleHeartbeat(gen);
        }
      }, timeout);
    }, Math.max(0, interval - timeout));
  }

  private onRaw(raw: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object' || typeof frame.event !== 'string') return;
    switch (frame.event) {
      case 'pong':
        return;
      case 'ack':
      case 'error': {
        const id = frame.id === undefined ? undefined : String(frame.id);
        const p = id === undefined ? undefined : this.pending.get(id);
        if (p && id !== undefined) {
          this.pending.delete(id);
          clearTimeout(p.timer);
          if (frame.event === 'ack') p.resolve(frame.data ?? {});
          else p.reject(new SwitchboardError(String(frame.data?.code ?? 'error'), String(frame.data?.message ?? 'error'), { data: frame.data }));
          return;
        }
        if (frame.event === 'error') {
          this.emit('error', new SwitchboardError(String(frame.data?.code ?? 'error'), String(frame.data?.message ?? 'error'), { data: frame.data }));
        }
        return;
      }
      case 'ready':
        this.handleReady(frame.data as ReadyData);
        return;
      case 'synced':
        this.handleSynced(frame.data as SyncedData);
        return;
      case 'token.expired':
        // Close 4001 follows; act now rather than wait for the close handshake to finish.
        this.emit('token.expired', frame.data, frame);
        void this.onClosed(this.generation, 4001, 'token expired', this.socketToken, true);
        return;
    }
    if (typeof frame.seq === 'number') {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) {
        this.stats.duplicatesDropped++;
        return;
      }
      this.lastSeq = frame.seq;
      this.core.save(this.seqKey(), String(frame.seq));
      this.onSeq(frame.seq);
    }
    this.handleFrame(frame);
  }

  /** A new seq was delivered (the user socket acks its cursor). */
  protected onSeq(_seq: number): void {}

  private handleReady(data: ReadyData): void {
    this.clearTimer('connectTimer');
    this.readyData = data;
    this.ready = true;
    this.attempt = 0;
    this.stats.readies++;
    if (data.user_id) this.uid = data.user_id;
    if (data.device && data.device !== this.device) {
      this.device = data.device;
      if (this.uid) this.core.save(this.core.key(this.uid, 'device'), data.device);
    }
    if (typeof data.expires_at === 'number' && data.expires_at * 1000 > Date.now()) this.expiredChain = 0;
    this.expiresAt = data.expires_at;
    this.scheduleRefresh();
    if (this.sinceUsed === null && this.lastSeq === null && typeof data.seq === 'number') {
      this.lastSeq = data.seq;
      this.core.save(this.seqKey(), String(data.seq));
    }
    this.setState('connected', {});
    this.onReady(data);
    this.emit('ready', data);
    this.firstReady.resolve(data);
    // Requests made while down go out now (after `ready`, before the replay ends: fine).
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      this.pending.set(q.id, q.pending);
      this.rawSend(q.frame);
    }
  }

  private handleSynced(data: SyncedData): void {
    this.stats.replayBatches++;
    if (data.more) {
      this.pageOn(Math.max(this.lastSeq ?? 0, data.seq));
      return;
    }
    if (this.lastSeq === null && typeof data.seq === 'number') {
      // A first replay that had nothing to send still tells where the stream is.
      this.lastSeq = data.seq;
      this.core.save(this.seqKey(), String(data.seq));
    } else if (!data.recovered && typeof data.seq === 'number' && this.lastSeq !== null && this.lastSeq > data.seq) {
      // The stream does not know our seq (it is ahead): restart from its newest.
      this.lastSeq = data.seq;
      this.core.save(this.seqKey(), String(data.seq));
    }
    this.emit('synced', data);
  }

  /**
   * Asks for the next replay batch. The gateway paces replays per user (it answers once the
   * user's replay budget allows, within the request timeout); one it refuses with
   * `replay_limited` is asked again a second later, on the same connection.
   */
  private pageOn(since: number): void {
    const conn = this.ws;
    this.request('sync', { since }, { timeoutMs: this.core.opts.requestTimeoutMs + 10_000 }).catch((err) => {
      if (err instanceof SwitchboardError && err.code === 'replay_limited') {
        setTimeout(() => { if (this.ws === conn && this.ready) this.pageOn(since); }, 1_000);
        return;
      }
      this.emit('error', err);
    });
  }

  private scheduleRefresh(): void {
    this.clearTimer('refreshTimer');
    const lifetime = this.expiresAt * 1000 - Date.now();
    if (!(lifetime > 0)) return;
    const lead = Math.min(this.core.opts.refreshBeforeMs, lifetime / 2);
    const gen = this.generation;
    this.refreshTimer = setTimeout(() => {
      if (gen !== this.generation) return;
      this.refresh().catch((err) => {
        this.emit('error', err instanceof SwitchboardError ? err : new SwitchboardError('token_refresh', String((err as Error)?.message ?? err)));
        // Try again while there is time; if the token does expire, 4001 brings a reconnect.
        const left = this.expiresAt * 1000 - Date.now();
        if (gen === this.generation && left > 2000) {
          this.clearTimer('refreshTimer');
          this.refreshTimer = setTimeout(() => {
            if (gen === this.generation) this.scheduleRefresh();
          }, Math.min(5000, left / 2));
        }
      });
    }, Math.max(0, lifetime - lead));
  }

  /** Refreshes the socket's token in band (`auth`); called before expiry automatically. */
  async refresh(): Promise<void> {
    const before = this.expiresAt;
    const token = await this.core.tokens.get();
    const ack = await this.request<{ expires_at: number }>('auth', { token });
    this.stats.refreshes++;
    if (typeof ack?.expires_at === 'number' && ack.expires_at > before) {
      this.expiresAt = ack.expires_at;
      this.scheduleRefresh();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------------------

interface OutboxEntry {
  clientId: string;
  data: Record<string, unknown>;
  resolve: (m: RoomMessage) => void;
  reject: (e: Error) => void;
  inflight: boolean;
  timer: Timer | null;
}

const ROOM_SOCKET_EVENTS = new Set([
  'message', 'message.updated', 'message.deleted', 'typing', 'read', 'presence', 'presence.changed', 'user.joined', 'user.left',
  'member.added', 'member.updated', 'member.removed', 'room.updated', 'ready', 'synced',
]);

/** `message.updated` / `message.deleted` on a room socket: a change of message `seq`, itself
 *  an entry of the room's stream with its own seq. */
export interface RoomMessageChange {
  id: string;
  seq: number;
  room_id: string;
  body?: string;
  edited_at?: number;
  deleted_at?: number;
}

/**
 * A room: its socket (opened lazily by `open`, `send`, `typing`, `read` or subscribing to a
 * socket event), its messages in seq order without duplicates, presence, and REST helpers.
 *
 * Events: `message` (message, frame), `typing` ({user_id, active}), `read` ({user_id, seq}),
 * `presence` (Map user → sockets), `user.joined` / `user.left` ({user_id}), `presence.changed`
 * ({joined, left, count}: a large room's batched joins and leaves), `ready`, `synced`, `state`,
 * `error`.
 */
export class Room extends Connection {
  readonly id: string;
  /** Users with sockets in the room → how many sockets (in a large room, only those seen
   *  joining since this socket opened: `presence` then carries the count, not the list). */
  readonly online = new Map<string, number>();
  /** How many users have sockets in the room. */
  onlineCount = 0;
  private readonly client: SwitchboardClient;
  private outbox = new Map<string, OutboxEntry>();
  private typingState: boolean | null = null;
  private typingAt = 0;
  private readSent = 0;
  private readAsked = 0;

  constructor(client: SwitchboardClient, core: Core, id: string) {
    super(core);
    this.client = client;
    this.id = id;
  }

  override on(event: 'state', fn: (state: ConnectionState, info: StateInfo) => void): () => void;
  override on(event: 'message', fn: (message: RoomMessage, frame: ServerFrame<RoomMessage>) => void): () => void;
  override on(event: 'message.updated' | 'message.deleted', fn: (change: RoomMessageChange, frame: ServerFrame<RoomMessageChange>) => void): () => void;
  override on(event: 'typing', fn: (data: { user_id: string; active: boolean }) => void): () => void;
  override on(event: 'read', fn: (data: { user_id: string; seq: number }) => void): () => void;
  override on(event: 'presence', fn: (online: Map<string, number>) => void): () => void;
  override on(event: 'user.joined' | 'user.left', fn: (data: { user_id: string }) => void): () => void;
  override on(event: 'presence.changed', fn: (data: { joined: string[]; left: string[]; count: number }) => void): () => void;
  override on(event: 'ready', fn: (data: ReadyData) => void): () => void;
  override on(event: 'synced', fn: (data: SyncedData) => void): () => void;
  override on(event: 'error', fn: (error: SwitchboardError) => void): () => void;
  override on(event: string, fn: Listener): () => void;
  override on(event: string, fn: Listener): () => void {
    const off = super.on(event, fn);
    if (ROOM_SOCKET_EVENTS.has(event)) this.start();
    return off;
  }

  protected path(): string {
    return `/v1/rooms/${encodeURIComponent(this.id)}/connect`;
  }

  protected seqKey(): string | null {
    return this.uid ? this.core.key(this.uid, 'room', this.id, 'seq') : null;
  }

  protected override async initialSince(token: string): Promise<number | null> {
    const n = this.core.opts.initialRoomMessages;
    if (!(n > 0)) return null;
    const info = await this.core.api<RoomInfo>('GET', `/v1/rooms/${encodeURIComponent(this.id)}`, undefined, token);
    return Math.max(0, (info.last_seq ?? 0) - n);
  }

  protected override async diagnose(token: string): Promise<SwitchboardError | null> {
    try {
      await this.core.api('GET', `/v1/rooms/${encodeURIComponent(this.id)}`, undefined, token);
      return null;
    } catch (err) {
      if (err instanceof SwitchboardError && (err.status === 401 || err.status === 403 || err.status === 404)) return err;
      return null;
    }
  }

  protected override onReady(data: ReadyData): void {
    this.client._roomReady(this.id, data);
    for (const entry of this.outbox.values()) this.trySend(entry);
  }

  protected override onDisconnected(): void {
    this.onlineCount = 0;
    if (this.online.size) {
      this.online.clear();
      this.emit('presence', this.online);
    }
  }

  protected override onStopped(err: SwitchboardError): void {
    for (const entry of this.outbox.values()) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.reject(err);
    }
    this.outbox.clear();
  }

  protected handleFrame(frame: ServerFrame): void {
    const data = frame.data ?? {};
    switch (frame.event) {
      case 'message': {
        const msg = data as RoomMessage;
        if (msg.client_id && msg.sender_id === this.uid) {
          const entry = this.outbox.get(msg.client_id);
          if (entry) this.settle(entry, msg);
        }
        this.client._roomMessage(this.id, msg);
        break;
      }
      case 'message.updated':
      case 'message.deleted':
        this.client._roomMessageChanged(this.id, data as RoomMessageChange);
        break;
      case 'presence':
        this.online.clear();
        for (const [user, n] of Object.entries((data.users ?? {}) as Record<string, number>)) this.online.set(user, n);
        this.onlineCount = typeof data.count === 'number' ? data.count : this.online.size;
        this.emit('presence', this.online);
        break;
      case 'presence.changed':
        for (const user of (data.joined ?? []) as string[]) if (!this.online.has(user)) this.online.set(user, 1);
        for (const user of (data.left ?? []) as string[]) this.online.delete(user);
        this.onlineCount = typeof data.count === 'number' ? data.count : this.online.size;
        this.emit('presence', this.online);
        break;
      case 'user.joined':
        if (!this.online.has(data.user_id)) this.online.set(data.user_id, 1);
        this.onlineCount += 1;
        this.emit('presence', this.online);
        break;
      case 'user.left':
        this.online.delete(data.user_id);
        this.onlineCount = Math.max(0, this.onlineCount - 1);
        this.emit('presence', this.online);
        break;
    }
    this.emit(frame.event, data, frame);
    this.emit('event', frame);
  }

  /** Sends a message; resolves with the stored message once the gateway acked it. Retries
   *  across reconnects with the same `client_id`, so a retry never duplicates. */
  send(input: MessageInput, opts: SendOptions = {}): Promise<RoomMessage> {
    this.start();
    const clientId = opts.clientId ?? createClientId();
    const existing = this.outbox.get(clientId);
    if (existing) return new Promise((resolve, reject) => {
      const prev = { resolve: existing.resolve, reject: existing.reject };
      existing.resolve = (m) => { prev.resolve(m); resolve(m); };
      existing.reject = (e) => { prev.reject(e); reject(e); };
    });
    return new Promise<RoomMessage>((resolve, reject) => {
      const entry: OutboxEntry = { clientId, data: { ...messageBody(input), client_id: clientId }, resolve, reject, inflight: false, timer: null };
      if (opts.timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          if (this.outbox.get(clientId) !== entry) return;
          this.outbox.delete(clientId);
          reject(new SwitchboardError('timeout', `send: not stored within ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      this.outbox.set(clientId, entry);
      this.trySend(entry);
    });
  }

  /** Messages not acked yet (e.g. while offline): their client ids and data. */
  get pendingSends(): { clientId: string; data: Record<string, unknown> }[] {
    return [...this.outbox.values()].map((e) => ({ clientId: e.clientId, data: e.data }));
  }

  private settle(entry: OutboxEntry, msg: RoomMessage): void {
    if (this.outbox.get(entry.clientId) !== entry) return;
    this.outbox.delete(entry.clientId);
    if (entry.timer) clearTimeout(entry.timer);
    entry.resolve(msg);
  }

  private trySend(entry: OutboxEntry): void {
    if (!this.isReady || entry.inflight || this.outbox.get(entry.clientId) !== entry) return;
    entry.inflight = true;
    this.request<{ message: RoomMessage; duplicate: boolean }>('send', entry.data).then(
      (ack) => {
        entry.inflight = false;
        this.settle(entry, ack.message);
      },
      (err: SwitchboardError) => {
        entry.inflight = false;
        if (this.outbox.get(entry.clientId) !== entry) return;
        if (err.code === 'disconnected') return; // resent on the next `ready`
        if (err.code === 'timeout' || err.code === 'internal' || err.code === 'delivery_incomplete') {
          setTimeout(() => this.trySend(entry), 1000);
          return;
        }
        if (err.code === 'rate_limited') {
          // Over the user's send rate: nothing was stored; the window is 10 s.
          setTimeout(() => this.trySend(entry), 10_000);
          return;
        }
        this.outbox.delete(entry.clientId);
        if (entry.timer) clearTimeout(entry.timer);
        entry.reject(err);
      },
    );
  }

  /** Tells the others this user is (not) typing; throttled while the state is unchanged. */
  typing(active = true): void {
    this.start();
    const now = Date.now();
    if (this.typingState === active && now - this.typingAt < this.core.opts.typingIntervalMs) return;
    if (this.sendFrame('typing', { active })) {
      this.typingState = active;
      this.typingAt = now;
    }
  }

  /** Moves this member's read cursor to `seq` (default: the newest message seen). */
  async read(seq?: number): Promise<{ read_seq: number; unread: number }> {
    this.start();
    const target = seq ?? this.lastSeq ?? 0;
    if (seq === undefined && target <= Math.max(this.readSent, this.readAsked)) {
      return { read_seq: this.readSent, unread: this.client.roomSummary(this.id)?.unread ?? 0 };
    }
    this.readAsked = Math.max(this.readAsked, target);
    let ack: { read_seq: number; unread: number };
    try {
      ack = await this.request<{ read_seq: number; unread: number }>('read', { seq: target });
    } catch (err) {
      if (this.readAsked === target) this.readAsked = this.readSent;
      throw err;
    }
    this.readSent = Math.max(this.readSent, ack.read_seq ?? target);
    this.client._roomRead(this.id, ack);
    return ack;
  }

  /** History from REST, newest first: `{messages, next_before_seq}`. */
  history(opts: { beforeSeq?: number; limit?: number } = {}): Promise<{ messages: RoomMessage[]; next_before_seq: number | null }> {
    return this.core.api('GET', `/v1/rooms/${encodeURIComponent(this.id)}/messages${query({ before_seq: opts.beforeSeq, limit: opts.limit })}`);
  }

  /** Members (REST), with read cursors and presence. */
  members(opts: { limit?: number; after?: string } = {}): Promise<{ members: RoomMember[]; next_after: string | null }> {
    return this.core.api('GET', `/v1/rooms/${encodeURIComponent(this.id)}/members${query({ limit: opts.limit, after: opts.after })}`);
  }

  /** Adds members (owners only). */
  addMembers(users: string[]): Promise<{ room_id: string; added: string[] }> {
    return this.core.api('POST', `/v1/rooms/${encodeURIComponent(this.id)}/members`, { users });
  }

  /** Removes a member (owners), or `leave()` for oneself. */
  removeMember(user: string): Promise<unknown> {
    return this.core.api('DELETE', `/v1/rooms/${encodeURIComponent(this.id)}/members/${encodeURIComponent(user)}`);
  }

  leave(): Promise<unknown> {
    return this.removeMember(this.uid ?? this.client.userId ?? '');
  }

  /** Edits one of my messages (`edit`): resolves with `{message, changed}`; every room socket
   *  gets `message.updated`. */
  editMessage(id: string, body: string): Promise<{ message: RoomMessage; changed: boolean }> {
    this.start();
    return this.request('edit', { id, body });
  }

  /** Recalls one of my messages within the recall window, or (owners, admins) deletes any:
   *  resolves with `{message, changed}`; every room socket gets `message.deleted`. */
  deleteMessage(id: string): Promise<{ message: RoomMessage; changed: boolean }> {
    this.start();
    return this.request('delete', { id });
  }

  /** Renames the room (owners). */
  rename(name: string): Promise<RoomInfo> {
    return this.core.api('PATCH', `/v1/rooms/${encodeURIComponent(this.id)}`, { name });
  }

  /** Deletes the room for everyone (owners); its sockets close with 4004. */
  delete(): Promise<{ room_id: string; deleted: boolean }> {
    return this.core.api('DELETE', `/v1/rooms/${encodeURIComponent(this.id)}`);
  }

  /** My notification level for this room (`GET …/notifications`): `all`, `mentions` (the
   *  default: only messages whose `data.mentions` lists me) or `none`. */
  notificationLevel(): Promise<{ room_id: string; level: NotificationLevel }> {
    return this.core.api('GET', `/v1/rooms/${encodeURIComponent(this.id)}/notifications`);
  }

  /** Sets my notification level for this room (`PUT …/notifications`). */
  setNotificationLevel(level: NotificationLevel): Promise<{ room_id: string; level: NotificationLevel }> {
    return this.core.api('PUT', `/v1/rooms/${encodeURIComponent(this.id)}/notifications`, { level });
  }

  /** The room with my role and read cursor (REST). */
  info(): Promise<RoomInfo> {
    return this.core.api('GET', `/v1/rooms/${encodeURIComponent(this.id)}`);
  }

  /** Closes the room socket; `client.room(id)` later gives a new Room. */
  override close(): void {
    super.close();
    this.client._roomClosed(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Web Push (notifications while no device of the user is connected)
// ---------------------------------------------------------------------------------------------

/** What `registerPush` needs of a browser `PushSubscription`. */
export interface PushSubscriptionLike {
  readonly endpoint: string;
  /** The key the subscription was made with (`null` or absent: unknown). */
  readonly options?: { readonly applicationServerKey?: ArrayBuffer | null } | null;
  toJSON(): { endpoint?: string; expirationTime?: number | null; keys?: Record<string, string> };
  unsubscribe(): Promise<boolean>;
}

/** What `registerPush` needs of a `ServiceWorkerRegistration` (its `pushManager`). */
export interface PushRegistrationTarget {
  readonly pushManager: {
    getSubscription(): Promise<PushSubscriptionLike | null>;
    subscribe(options: { userVisibleOnly: boolean; applicationServerKey: Uint8Array<ArrayBuffer> }): Promise<PushSubscriptionLike>;
  };
}

/** A push subscription as the gateway lists it. */
export interface PushSubscriptionInfo {
  /** Stable per endpoint (hex). */
  id: string;
  endpoint: string;
  /** The device id given when it was registered, if any. */
  device: string | null;
  created_at: number;
}

export interface RegisterPushOptions {
  /** The gateway's VAPID public key (base64url); default `GET /v1/push/public-key`. */
  applicationServerKey?: string;
  /** The device id stored with the subscription; default this client's (from `ready`). */
  device?: string;
  /** Ask for notification permission when it has not been decided yet (default `true`).
   *  Call `registerPush` from a user gesture (a click): browsers ignore prompts without one. */
  requestPermission?: boolean;
}

/** A registered push subscription: the gateway's record plus the browser's subscription. */
export interface PushHandle extends PushSubscriptionInfo {
  /** The browser's subscription. */
  readonly subscription: PushSubscriptionLike;
  /** Deletes the gateway's record (one already gone is fine) and unsubscribes the browser. */
  unregister(): Promise<void>;
}

/** A room's notification level for this user: `mentions` is the default. */
export type NotificationLevel = 'all' | 'mentions' | 'none';

function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  let b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4) b64 += '=';
  const raw: string = (globalThis as any).atob(b64);
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  for (let i = 0; i < b.length; i++) if (x[i] !== b[i]) return false;
  return true;
}

/** Notification permission: `denied` (or a dismissed prompt) rejects `push_permission_denied`. */
async function ensureNotificationPermission(ask: boolean): Promise<void> {
  const N = (globalThis as any).Notification;
  // No Notification API here (a worker, some WebViews): the push service decides.
  if (!N || typeof N.permission !== 'string') return;
  let permission: string = N.permission;
  if (permission === 'default' && ask && typeof N.requestPermission === 'function') {
    permission = await new Promise<string>((resolve) => {
      // The old callback form and the promise form, whichever this browser has.
      const p = N.requestPermission(resolve);
      if (p && typeof p.then === 'function') p.then(resolve, () => resolve('denied'));
    });
  }
  if (permission === 'denied') {
    throw new SwitchboardError('push_permission_denied', 'notifications are blocked for this site');
  }
  if (permission !== 'granted' && ask) {
    throw new SwitchboardError('push_permission_denied', 'notification permission was not granted');
  }
}

// ---------------------------------------------------------------------------------------------
// The client (user socket, room list, direct messages)
// ---------------------------------------------------------------------------------------------

/** Direct messages over REST; live ones arrive on the user socket as `message` events. */
export interface DirectMessages {
  /** Sends; resolves with the stored message. Retries network failures and 5xx with the same
   *  `client_id` (never a duplicate). */
  send(to: string | string[], input: MessageInput, opts?: { clientId?: string }): Promise<DirectMessage>;
  received(opts?: { unread?: boolean; limit?: number; cursor?: string }): Promise<{ messages: DirectMessage[]; next_cursor: string | null }>;
  sent(opts?: { limit?: number; cursor?: string }): Promise<{ messages: DirectMessage[]; next_cursor: string | null }>;
  /** Reads one received message (marks it read). */
  get(id: string): Promise<DirectMessage>;
  /** Marks up to 100 received messages read. */
  read(ids: string[]): Promise<{ read: string[]; not_found: string[] }>;
  /** Deletes received messages for me. */
  delete(ids: string[]): Promise<unknown>;
  /** Recalls a message I sent, for everyone, within the recall window. */
  recall(id: string): Promise<unknown>;
  unreadCount(): Promise<number>;
}

/**
 * The user's client: the user socket plus REST. Events:
 * `state` (state, info), `ready`, `synced`, `event` (every server event frame), `<name>` (data,
 * frame) for each event name (`message`, `message.read`, `room.activity`, backend pushes such
 * as `permission.changed`…), `rooms` (the room list, whenever it changes), `error`.
 */
export class SwitchboardClient extends Connection {
  private readonly rooms_ = new Map<string, Room>();
  private readonly summaries = new Map<string, RoomSummary>();
  private roomsLoaded = false;
  private roomsFetch: Promise<RoomSummary[]> | null = null;
  private readonly unknownActivity = new Map<string, RoomActivity>();
  private ackTimer: Timer | null = null;
  private ackedSeq = 0;
  readonly dm: DirectMessages;

  constructor(opts: ConnectOptions) {
    const core = new Core(opts);
    super(core);
    const api = core.api.bind(core);
    this.dm = {
      send: async (to, input, o = {}) => {
        const body = { ...messageBody(input), to: Array.isArray(to) ? to : [to], client_id: o.clientId ?? createClientId() };
        for (let attempt = 0; ; attempt++) {
          try {
            const res = await api<{ message: DirectMessage; duplicate: boolean }>('POST', '/v1/messages', body);
            return res.message;
          } catch (err) {
            const e = err as SwitchboardError;
            const retryable = e.code === 'network' || (e.status !== undefined && e.status >= 500);
            if (!retryable || attempt >= 3) throw err;
            await new Promise((r) => setTimeout(r, 300 * 2 ** attempt));
          }
        }
      },
      received: (o = {}) => api('GET', `/v1/messages/received${query({ unread: o.unread ? 'true' : undefined, limit: o.limit, cursor: o.cursor })}`),
      sent: (o = {}) => api('GET', `/v1/messages/sent${query({ limit: o.limit, cursor: o.cursor })}`),
      get: (id) => api('GET', `/v1/messages/received/${encodeURIComponent(id)}`),
      read: (ids) => api('POST', '/v1/messages/received/read', { ids }),
      delete: (ids) => api('POST', '/v1/messages/received/delete', { ids }),
      recall: (id) => api('DELETE', `/v1/messages/sent/${encodeURIComponent(id)}?everyone=true`),
      unreadCount: async () => (await api<{ unread: number }>('GET', '/v1/messages/unread-count')).unread,
    };
  }

  override on(event: 'state', fn: (state: ConnectionState, info: StateInfo) => void): () => void;
  override on(event: 'rooms', fn: (rooms: RoomSummary[]) => void): () => void;
  override on(event: 'message', fn: (message: DirectMessage, frame: ServerFrame<DirectMessage>) => void): () => void;
  override on(event: 'message.read', fn: (data: { reader_id: string; message_ids: string[]; read_at: number }, frame: ServerFrame) => void): () => void;
  override on(event: 'room.activity', fn: (activity: RoomActivity, frame: ServerFrame<RoomActivity>) => void): () => void;
  override on(event: 'event', fn: (frame: ServerFrame) => void): () => void;
  override on(event: 'ready', fn: (data: ReadyData) => void): () => void;
  override on(event: 'synced', fn: (data: SyncedData) => void): () => void;
  override on(event: 'error', fn: (error: SwitchboardError) => void): () => void;
  /** Any other event name: a backend push (`permission.changed`…) with its data and frame. */
  override on(event: string, fn: (data: any, frame: ServerFrame) => void): () => void;
  override on(event: string, fn: Listener): () => void {
    return super.on(event, fn);
  }

  protected path(): string {
    return '/v1/connect';
  }

  protected seqKey(): string | null {
    return this.uid ? this.core.key(this.uid, 'seq') : null;
  }

  protected handleFrame(frame: ServerFrame): void {
    if (frame.event === 'room.activity') this.applyActivity(frame.data);
    else if (frame.event === 'room.added' || frame.event === 'room.updated' || frame.event === 'room.removed') {
      this.applyMembership(frame.event, frame.data ?? {});
    }
    this.emit(frame.event, frame.data, frame);
    this.emit('event', frame);
  }

  /** Records the delivered seq as this device's cursor on the gateway (debounced). */
  protected override onSeq(_seq: number): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      const seq = this.lastSeq ?? 0;
      if (seq > this.ackedSeq && this.sendFrame('ack', { seq })) this.ackedSeq = seq;
    }, 1000);
  }

  protected override onReady(): void {
    // A reconnect may have missed `room.activity` hints (they are not stored): refresh the list.
    if (this.roomsLoaded && this.stats.readies > 1) this.rooms().catch(() => undefined);
  }

  protected override onStopped(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
  }

  /** Starts the user socket if `autoConnect: false` was given; resolves at the first `ready`. */
  connect(): Promise<ReadyData> {
    return this.open();
  }

  /** Closes the user socket and every room socket. */
  override close(): void {
    for (const room of [...this.rooms_.values()]) room.close();
    super.close();
  }

  /** Any REST call with this client's token: resolves with the JSON answer. */
  api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    return this.core.api<T>(method, path, body);
  }

  /** `GET /v1/me`: `{user_id, roles, expires_at}`. */
  me(): Promise<{ user_id: string; roles: string[]; expires_at: number }> {
    return this.core.api('GET', '/v1/me');
  }

  /** `GET /v1/presence?users=…`. */
  async presence(users: string[]): Promise<{ user_id: string; online: boolean; devices: number; last_seen: number | null }[]> {
    return (await this.core.api('GET', `/v1/presence${query({ users: users.join(',') })}`)).users;
  }

  /** The room handle for `id` (one per id; the socket opens on first use). */
  room(id: string): Room {
    let room = this.rooms_.get(id);
    if (!room) {
      room = new Room(this, this.core, id);
      if (this.uid) (room as any).uid = this.uid;
      this.rooms_.set(id, room);
    }
    return room;
  }

  /** Creates a room (the caller is its owner); the room list refreshes. */
  async createRoom(opts: { name: string; id?: string; members?: string[] }): Promise<RoomInfo> {
    const room = await this.core.api<RoomInfo>('POST', '/v1/rooms', stripUndefined(opts));
    await this.rooms().catch(() => undefined);
    return room;
  }

  /** My rooms (REST, every page), most recently active first, with unread counts; from then on
   *  the list is kept live from `room.activity` and open rooms, and `rooms` events announce it. */
  rooms(): Promise<RoomSummary[]> {
    if (this.roomsFetch) return this.roomsFetch;
    this.start();
    const p = (async () => {
      const all: RoomSummary[] = [];
      let cursor: string | null | undefined;
      for (let page = 0; page < 20; page++) {
        const res = await this.core.api<{ rooms: RoomSummary[]; next_cursor: string | null }>('GET', `/v1/rooms${query({ limit: 100, cursor: cursor ?? undefined })}`);
        all.push(...res.rooms);
        cursor = res.next_cursor;
        if (!cursor) break;
      }
      const previous = new Map(this.summaries);
      this.summaries.clear();
      for (const r of all) {
        const prev = previous.get(r.id);
        // An open room's socket is never behind REST (D1 is copied a few ms after the ack).
        if (prev && (prev.last_seq > r.last_seq || (prev.last_seq === r.last_seq && this.isLive(r.id)))) {
          this.summaries.set(r.id, { ...prev, name: r.name, role: r.role });
        } else this.summaries.set(r.id, { ...r });
      }
      this.roomsLoaded = true;
      for (const [id, hint] of this.unknownActivity) {
        if (!this.summaries.has(id)) continue;
        this.unknownActivity.delete(id);
        this.applyActivity(hint, false);
      }
      return this.emitRooms();
    })().finally(() => {
      if (this.roomsFetch === p) this.roomsFetch = null;
    });
    this.roomsFetch = p;
    return p;
  }

  /** The room list as last known (no request). */
  get roomList(): RoomSummary[] {
    return this.sorted();
  }

  roomSummary(id: string): RoomSummary | undefined {
    return this.summaries.get(id);
  }

  private sorted(): RoomSummary[] {
    return [...this.summaries.values()].sort((a, b) => (b.activity_at ?? 0) - (a.activity_at ?? 0) || a.id.localeCompare(b.id));
  }

  private emitRooms(): RoomSummary[] {
    const list = this.sorted();
    this.emit('rooms', list);
    return list;
  }

  private applyActivity(a: RoomActivity, emit = true): void {
    if (!this.roomsLoaded) return;
    const s = this.summaries.get(a.room_id);
    if (!s) {
      // A room we were added to: fetch the list again. REST reads D1, which may be a few ms
      // behind this hint, so the hint is applied on top of the answer.
      const known = this.unknownActivity.get(a.room_id);
      if (!known || known.seq < a.seq) this.unknownActivity.set(a.room_id, a);
      // After any fetch already under way (it may have started before the room existed for us).
      const inflight = this.roomsFetch ?? Promise.resolve([]);
      inflight.catch(() => undefined).then(() => this.rooms()).catch(() => undefined);
      return;
    }
    // A hint about what the open room's socket already delivered (and maybe read) is stale.
    if (a.seq < s.last_seq || (a.seq === s.last_seq && this.isLive(a.room_id))) return;
    s.last_seq = a.seq;
    s.unread = a.unread;
    if (a.last_message) s.last_message = a.last_message;
    s.activity_at = a.at ?? a.last_message?.created_at ?? s.activity_at;
    if (emit) this.emitRooms();
  }

  /** Whether this client has the room's socket up (its counts are then the fresh ones). */
  private isLive(id: string): boolean {
    return this.rooms_.get(id)?.state === 'connected';
  }

  private applyMembership(event: string, data: any): void {
    if (!this.roomsLoaded) return;
    if (event === 'room.added') {
      const r = data.room ?? {};
      if (typeof r.id !== 'string') return;
      if (!this.summaries.has(r.id)) {
        this.summaries.set(r.id, {
          id: r.id,
          name: r.name ?? r.id,
          role: r.role,
          last_seq: r.last_seq ?? 0,
          read_seq: 0,
          unread: 0,
          activity_at: r.activity_at ?? r.created_at ?? Date.now(),
          last_message: null,
        });
        this.emitRooms();
      }
      // The stream event has no unread count or last message: REST has them.
      this.rooms().catch(() => undefined);
    } else if (event === 'room.removed') {
      if (this.summaries.delete(data.room_id)) this.emitRooms();
    } else if (event === 'room.updated') {
      const s = this.summaries.get(data.room_id);
      if (!s) return;
      if (typeof data.name === 'string') s.name = data.name;
      if (data.role === 'owner' || data.role === 'member') s.role = data.role;
      this.emitRooms();
    }
  }

  /** This client's device id: the `device` option, else the one `ready` confirmed (or stored). */
  get deviceId(): string | null {
    return this.device ?? this.readyData?.device ?? null;
  }

  /** `GET /v1/push/public-key`: the gateway's VAPID public key (base64url). Rejects with
   *  `push_disabled` (404) when the gateway has no VAPID keys. */
  async pushPublicKey(): Promise<string> {
    const res = await this.core.api<{ public_key: string }>('GET', '/v1/push/public-key');
    if (typeof res?.public_key !== 'string' || !res.public_key) {
      throw new SwitchboardError('push_disabled', 'the gateway gave no VAPID public key');
    }
    return res.public_key;
  }

  /**
   * Subscribes this browser to Web Push for the signed-in user: the gateway notifies it when
   * none of the user's devices took an event in time (docs/PROTOCOL.md, "Notifications").
   * `registration` is a `ServiceWorkerRegistration` whose worker shows the notifications.
   *
   * Reuses the browser's subscription when it was made with the gateway's key (else replaces
   * it, and forgets the replaced one at the gateway), then registers it (`POST /v1/push-subscriptions`, idempotent per endpoint). Rejects
   * with a `SwitchboardError`: `push_unsupported` (no Push API), `push_permission_denied`
   * (notifications blocked or the prompt dismissed), `push_subscribe_failed` (the browser's
   * push service refused or is unreachable), or the gateway's code (`push_disabled`,
   * `endpoint_not_allowed`, `validation`, `network`…, with `status`).
   */
  async registerPush(registration: PushRegistrationTarget, options: RegisterPushOptions = {}): Promise<PushHandle> {
    const pm = registration?.pushManager;
    if (!pm || typeof pm.subscribe !== 'function' || typeof pm.getSubscription !== 'function') {
      throw new SwitchboardError('push_unsupported', 'this browser has no Push API (pushManager) on the registration');
    }
    const keyText = options.applicationServerKey ?? (await this.pushPublicKey());
    const key = base64UrlToBytes(keyText);
    await ensureNotificationPermission(options.requestPermission !== false);

    let subscription = await pm.getSubscription().catch(() => null);
    let created = false;
    let replaced: string | null = null;
    if (subscription && !sameBytes(subscription.options?.applicationServerKey, key)) {
      // Made with another key (a rotated one, or unknown): the browser refuses a second
      // subscription with a different key, so this one goes.
      replaced = subscription.endpoint;
      await subscription.unsubscribe().catch(() => false);
      subscription = null;
    }
    if (!subscription) {
      try {
        subscription = await pm.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      } catch (err) {
        const e = err as { name?: string; message?: string };
        if (e?.name === 'NotAllowedError') {
          throw new SwitchboardError('push_permission_denied', `push subscription refused: ${e.message ?? e.name}`);
        }
        throw new SwitchboardError('push_subscribe_failed', `the browser's push service did not subscribe: ${e?.name ?? 'Error'}: ${e?.message ?? err}`);
      }
      created = true;
    }

    const json = subscription.toJSON();
    const device = options.device ?? this.deviceId;
    const body: Record<string, unknown> = { ...json, endpoint: json.endpoint ?? subscription.endpoint };
    if (device) body.device = device;
    let info: PushSubscriptionInfo;
    try {
      info = await this.core.api<PushSubscriptionInfo>('POST', '/v1/push-subscriptions', body);
    } catch (err) {
      // A subscription made just now for nothing would only collect pushes nobody sends.
      if (created) await subscription.unsubscribe().catch(() => false);
      throw err;
    }
    if (replaced && replaced !== info.endpoint) {
      // The gateway's record of the replaced subscription would only collect failed pushes.
      await this.pushSubscriptions()
        .then((list) => Promise.all(list.filter((s) => s.endpoint === replaced).map((s) => this.removePushSubscription(s.id, { missingOk: true }))))
        .catch(() => undefined);
    }
    const sub = subscription;
    return {
      id: info.id,
      endpoint: info.endpoint ?? sub.endpoint,
      device: info.device ?? null,
      created_at: info.created_at,
      subscription: sub,
      unregister: async () => {
        await this.removePushSubscription(info.id, { missingOk: true });
        await sub.unsubscribe().catch(() => false);
      },
    };
  }

  /** `GET /v1/push-subscriptions`: this user's push subscriptions (every browser). */
  async pushSubscriptions(): Promise<PushSubscriptionInfo[]> {
    return (await this.core.api<{ subscriptions: PushSubscriptionInfo[] }>('GET', '/v1/push-subscriptions')).subscriptions ?? [];
  }

  /** `DELETE /v1/push-subscriptions/{id}`; resolves `false` instead of rejecting with
   *  `not_found` when `missingOk`. The browser's own subscription is left as it is. */
  async removePushSubscription(id: string, opts: { missingOk?: boolean } = {}): Promise<boolean> {
    try {
      await this.core.api('DELETE', `/v1/push-subscriptions/${encodeURIComponent(id)}`);
      return true;
    } catch (err) {
      if (opts.missingOk && err instanceof SwitchboardError && err.status === 404 && err.code === 'not_found') return false;
      throw err;
    }
  }

  /** `GET /v1/unread`: unread direct messages and rooms in one call. */
  unread(): Promise<{ direct: number; rooms: { room_id: string; unread: number }[]; total: number }> {
    return this.core.api('GET', '/v1/unread');
  }

  /** @internal */
  _roomReady(id: string, data: ReadyData): void {
    const s = this.summaries.get(id);
    if (!s) return;
    if (data.seq >= s.last_seq) {
      s.last_seq = data.seq;
      if (typeof data.unread === 'number') s.unread = data.unread;
      if (typeof data.read_seq === 'number') s.read_seq = data.read_seq;
      this.emitRooms();
    }
  }

  /** @internal */
  _roomMessage(id: string, m: RoomMessage): void {
    const s = this.summaries.get(id);
    if (!s) return;
    if (m.seq > s.last_seq) {
      s.last_seq = m.seq;
      if (m.sender_id !== this.uid && m.seq > s.read_seq) s.unread++;
    }
    if (!s.last_message || m.seq >= s.last_message.seq) {
      s.last_message = { id: m.id, seq: m.seq, sender_id: m.sender_id, type: m.type, preview: (m.body ?? '').slice(0, 100), created_at: m.created_at };
      s.activity_at = Math.max(s.activity_at ?? 0, m.created_at);
    }
    this.emitRooms();
  }

  /** @internal */
  _roomMessageChanged(id: string, change: RoomMessageChange): void {
    const s = this.summaries.get(id);
    if (!s?.last_message || s.last_message.id !== change.id) return;
    s.last_message = { ...s.last_message, preview: change.deleted_at ? '' : String(change.body ?? '').slice(0, 100) };
    this.emitRooms();
  }

  /** @internal */
  _roomRead(id: string, ack: { read_seq: number; unread: number }): void {
    const s = this.summaries.get(id);
    if (!s) return;
    s.read_seq = Math.max(s.read_seq, ack.read_seq);
    s.unread = ack.unread;
    this.emitRooms();
  }

  /** @internal */
  _roomClosed(room: Room): void {
    if (this.rooms_.get(room.id) === room) this.rooms_.delete(room.id);
  }
}

/** Creates a client and (unless `autoConnect: false`) opens its user socket. */
export function connect(opts: ConnectOptions): SwitchboardClient {
  const client = new SwitchboardClient(opts);
  if (opts.autoConnect !== false) client.connect().catch(() => undefined);
  return client;
}
