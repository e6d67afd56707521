/**
 * Types of @switchboard/emitter/hooks: verifying and answering the gateway's signed hook calls.
 * Hand-written to match src/hooks.js; see README.md for the behaviour.
 */

export interface VerifyOptions {
  /** How far `t` may be from `now`, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The current time in unix milliseconds. Default `Date.now()`. */
  now?: number;
}

/**
 * Whether `header` (`t=<unix s>,v1=<64 hex>`) is the gateway's HMAC-SHA256 of `"<t>." + rawBody`
 * with `secret`, with `t` within tolerance. `rawBody` must be the body exactly as received.
 */
export declare function verifySignature(
  rawBody: string | Uint8Array | ArrayBuffer,
  header: string | null | undefined,
  secret: string,
  options?: VerifyOptions,
): Promise<boolean>;

/** A refusal thrown by a handler: answered `status` with `{"error":{"code","message"}}`. */
export declare class HookError extends Error {
  constructor(code: string, message: string, status?: number);
  readonly name: 'HookError';
  readonly code: string;
  readonly status: number;
}

/** A hook call as a handler receives it: the gateway's body plus camelCase conveniences. */
export interface HookCall {
  kind: 'event' | 'connection' | 'disconnect';
  /** The client's event name, or `connection` / `disconnect`. */
  event: string;
  /** The client's arguments (before its ack callback); `[]` when none. */
  args: unknown[];
  namespace: string;
  socket_id: string;
  conn_id: string;
  user_id: string;
  /** Same as `socket_id`. */
  socketId: string;
  /** Same as `user_id`: the socket's verified user. */
  userId: string;
  /** The socket's socket.data, or null. */
  data: unknown;
  /** The client's handshake (connection calls only). */
  handshake?: Record<string, unknown>;
  /** Why the socket went away (disconnect calls only). */
  reason?: string;
  /** When the gateway sent the call, in unix milliseconds. */
  sent_at: number;
  [field: string]: unknown;
}

/**
 * A handler's return value is the answer: a value → 200 with its JSON (for an event, the
 * client's ack; for a connection, `{data}` sets socket.data); `undefined` → 204.
 */
export type HookHandler = (call: HookCall) => unknown;

/** What `handle` answers; `body` is JSON text, or null for 204. */
export interface HookAnswer {
  status: number;
  headers: Record<string, string>;
  body: string | null;
}

export interface HookRouterOptions {
  /** EVENT_HOOK_SECRET. */
  secret: string;
  /** Default 300. */
  toleranceSeconds?: number;
}

/** Verifies, parses and dispatches hook calls by kind and event name. */
export declare class HookRouter {
  constructor(options: HookRouterOptions);
  /** Handles the client event `event` (not `connection`/`disconnect`: use their own methods). */
  on(event: string, handler: HookHandler): this;
  onConnection(handler: HookHandler): this;
  onDisconnect(handler: HookHandler): this;
  /** The answer to one call: 401 bad signature, 404 unknown event, the handler's outcome otherwise. */
  handle(rawBody: string | Uint8Array | ArrayBuffer, signatureHeader: string | null | undefined): Promise<HookAnswer>;
  /**
   * A node:http / Express handler. Reads the body itself (at most 1 MiB, else 413), or takes the
   * bytes `express.raw()` left in `req.body`. Typed loosely so it fits any framework's types.
   */
  node(): (req: any, res: any) => void;
}
