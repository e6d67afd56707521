/**
 * Types of @switchboard/emitter: the API of `@socket.io/redis-emitter` (v5) over Switchboard's
 * HTTP control API. Hand-written to match src/index.js; see README.md for the behaviour.
 */

/** Maps event names to listener signatures, as in socket.io's typed events. */
export interface EventsMap {
  [event: string]: any;
}

/** Any event name with any arguments (used when no map is given). */
export interface DefaultEventsMap {
  [event: string]: (...args: any[]) => void;
}

export type EventNames<Map extends EventsMap> = keyof Map & string;
export type EventParams<Map extends EventsMap, Ev extends EventNames<Map>> = Parameters<Map[Ev]>;

/** Event names socket.io keeps for itself; `emit` throws for them. */
export declare const RESERVED_EVENTS: ReadonlySet<string>;

export interface EmitterOptions {
  /** The gateway's base URL, e.g. `https://gw.example`. */
  url: string | URL;
  /** The gateway's INTERNAL_API_TOKEN, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** A fetch to use instead of the global one. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** How long one attempt may take before it is aborted (and retried). Default 10000. */
  timeoutMs?: number;
  /** The namespace of the root emitter. Default `/`. */
  namespace?: string;
}

/** The gateway's answer to join, leave, disconnect and data. */
export interface SocketCount {
  /** Sockets that joined, left, were disconnected or were updated. */
  sockets: number;
}

/** The gateway's answer to emit. */
export interface EmitReach {
  /** Each target room and the seq the event took in its stream (`null` when volatile). */
  rooms: Record<string, number | null>;
  /** Sockets handed the event at once outside rooms (socket ids, users, everyone). */
  sockets: number;
}

/** A failed call. */
export declare class EmitterError extends Error {
  constructor(code: string, message: string, details?: { status?: number | null; op?: string; cause?: unknown });
  readonly name: 'EmitterError';
  /** The gateway's error code (`validation`, `unauthorized`, `rate_limited`, ...), `network_error`, `timeout`, `bad_response` or `http_error` (a non-2xx without an error body). */
  readonly code: string;
  /** The HTTP status of the last attempt, or null when no answer came. */
  readonly status: number | null;
  /** The control API operation: `emit`, `join`, `leave`, `disconnect`, `fetch` or `data`. */
  readonly op: string | undefined;
}

/**
 * What a call returns. It is queued when made, whether or not anyone awaits it. Not a Promise:
 * a thenable that makes a promise only when `then`/`catch`/`finally` (or `await`) is used, so an
 * ignored failure can never become an unhandled rejection.
 */
export interface Outcome<T> extends PromiseLike<T> {
  then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: EmitterError) => B | PromiseLike<B>) | null,
  ): Promise<A | B>;
  catch<B = never>(onrejected?: ((reason: EmitterError) => B | PromiseLike<B>) | null): Promise<T | B>;
  finally(onfinally?: (() => void) | null): Promise<T>;
}

/** The root of a chain: one namespace of one gateway. `of()` children share its queue and listeners. */
export declare class Emitter<EmitEvents extends EventsMap = DefaultEventsMap> {
  constructor(options: EmitterOptions);
  /** This emitter's namespace. */
  readonly nsp: string;
  /** An emitter for another namespace (a leading `/` is added when missing), on the same queue. */
  of(nsp: string): Emitter<EmitEvents>;
  /** Emits to every socket of the namespace. Returns an Outcome (truthy), not socket.io's `true`. */
  emit<Ev extends EventNames<EmitEvents>>(ev: Ev, ...args: EventParams<EmitEvents, Ev>): Outcome<EmitReach>;
  /** Targets rooms or socket ids. */
  to(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Same as `to`. */
  in(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Skips sockets with these ids or in these rooms. */
  except(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Extension: targets every socket of these users. */
  toUser(...userIds: Array<string | string[]>): BroadcastOperator<EmitEvents>;
  /** The event may be dropped for a socket that cannot take it now (not recovered on reconnect). */
  readonly volatile: BroadcastOperator<EmitEvents>;
  /** Accepted for compatibility; ignored. */
  compress(compress: boolean): BroadcastOperator<EmitEvents>;
  /** Makes the matching sockets join rooms. */
  socketsJoin(rooms: string | string[]): Outcome<SocketCount>;
  /** Makes the matching sockets leave rooms. */
  socketsLeave(rooms: string | string[]): Outcome<SocketCount>;
  /** Disconnects the matching sockets; `close` also closes their connection. */
  disconnectSockets(close?: boolean): Outcome<SocketCount>;
  /** The matching sockets, every page. */
  fetchSockets(): Outcome<RemoteSocket<EmitEvents>[]>;
  /** Always throws: there are no socket.io servers to receive it over HTTP. */
  serverSideEmit(...args: unknown[]): never;
  /** Listens to failures of every call made through this emitter's queue. */
  on(event: 'error', listener: (error: EmitterError) => unknown): this;
  off(event: 'error', listener: (error: EmitterError) => unknown): this;
  /** Resolves (never rejects) when every queued call has finished. */
  flush(): Promise<void>;
}

/** Who a call reaches. Immutable: every chain call returns a new operator. */
export declare class BroadcastOperator<EmitEvents extends EventsMap = DefaultEventsMap> {
  private constructor();
  to(room: string | string[]): BroadcastOperator<EmitEvents>;
  in(room: string | string[]): BroadcastOperator<EmitEvents>;
  except(room: string | string[]): BroadcastOperator<EmitEvents>;
  toUser(...userIds: Array<string | string[]>): BroadcastOperator<EmitEvents>;
  readonly volatile: BroadcastOperator<EmitEvents>;
  compress(compress: boolean): BroadcastOperator<EmitEvents>;
  emit<Ev extends EventNames<EmitEvents>>(ev: Ev, ...args: EventParams<EmitEvents, Ev>): Outcome<EmitReach>;
  socketsJoin(rooms: string | string[]): Outcome<SocketCount>;
  socketsLeave(rooms: string | string[]): Outcome<SocketCount>;
  disconnectSockets(close?: boolean): Outcome<SocketCount>;
  fetchSockets(): Outcome<RemoteSocket<EmitEvents>[]>;
  /** Extension: replaces socket.data of the one socket targeted (`to(socketId)`); throws otherwise. */
  setData(data: unknown): Outcome<SocketCount>;
}

/** A socket as fetchSockets() saw it; its methods act on it through the same queue. */
export declare class RemoteSocket<EmitEvents extends EventsMap = DefaultEventsMap, SocketData = any> {
  private constructor();
  readonly id: string;
  readonly userId: string | null;
  readonly namespace: string;
  readonly handshake: Record<string, unknown>;
  readonly rooms: Set<string>;
  readonly data: SocketData | null;
  emit<Ev extends EventNames<EmitEvents>>(ev: Ev, ...args: EventParams<EmitEvents, Ev>): Outcome<EmitReach>;
  join(rooms: string | string[]): Outcome<SocketCount>;
  leave(rooms: string | string[]): Outcome<SocketCount>;
  disconnect(close?: boolean): Outcome<SocketCount>;
  setData(data: SocketData): Outcome<SocketCount>;
}
