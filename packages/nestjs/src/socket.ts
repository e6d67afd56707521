/**
 * The socket a handler's `client` stands for, built afresh from each hook call: nothing about a
 * socket is kept in the process between calls. What it knows comes from the call (`socket_id`,
 * `namespace`, `data`, `handshake`); what it does goes to the gateway through the emitter.
 */
import type { Emitter } from '@switchboard/emitter';
import type { CallContext } from './context';
import { track } from './context';
import { SettledOutcome, SwitchboardOperator } from './operator';

/** The client's first request, as socket.io's `socket.handshake`. */
export interface SwitchboardHandshake {
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, any>;
  /** The CONNECT packet's `auth` (`{ token }`), as the client sent it. */
  auth: Record<string, any>;
  address: string;
  /** When the handshake happened, unix milliseconds. */
  issued: number;
  /** `issued` as a date string, as socket.io gives it. */
  time: string;
  url: string;
  xdomain: boolean;
  secure: boolean;
  /** Extension: whether the gateway recovered the connection's state (connection calls). */
  recovered?: boolean;
}

/** The part of a hook call a socket is made of. */
export interface SocketSource {
  socket_id: string;
  user_id?: string;
  namespace: string;
  data?: unknown;
  handshake?: unknown;
}

type SelfCall = (operator: ReturnType<Emitter['to']>) => PromiseLike<unknown>;

export class SwitchboardSocket<SocketData = any> {
  /** The `socket.id` the client sees: `<userId>~<32 hex>`, the same on every namespace. */
  readonly id: string;
  /** Extension: the socket's verified user, the token's `sub` (never a value the client sent). */
  readonly userId: string;
  readonly nsp: { name: string };
  /** socket.data as the gateway keeps it; changes made by a handler are saved after it. */
  data: SocketData;
  readonly handshake: SwitchboardHandshake;
  /**
   * The socket's own room, and the rooms joined during this call. Hook calls do not carry the
   * rooms a socket is in; `fetchSockets()` does.
   */
  readonly rooms: Set<string>;
  connected = true;
  disconnected = false;
  /** Whether the gateway recovered this connection's state (socket.io 4.6+). */
  readonly recovered: boolean;

  readonly #emitter: Emitter;
  readonly #context: () => CallContext;

  /** @internal Made by the adapter for each hook call. */
  constructor(emitter: Emitter, source: SocketSource, context: () => CallContext) {
    this.#emitter = emitter;
    this.#context = context;
    this.id = source.socket_id;
    this.userId = source.user_id ?? '';
    this.nsp = { name: emitter.nsp };
    this.data = (isObject(source.data) ? source.data : source.data ?? {}) as SocketData;
    this.handshake = handshakeOf(source.handshake);
    this.rooms = new Set(this.id === '' ? [] : [this.id]);
    this.recovered = this.handshake.recovered === true;
  }

  /** Like socket.io's `socket.request`, from the handshake (no body, no socket). */
  get request(): { headers: SwitchboardHandshake['headers']; url: string; method: string } {
    return { headers: this.handshake.headers, url: this.handshake.url, method: 'GET' };
  }

  /** Like socket.io's `socket.conn`, as far as the gateway tells. */
  get conn(): { remoteAddress: string; readyState: string } {
    return { remoteAddress: this.handshake.address, readyState: this.connected ? 'open' : 'closed' };
  }

  /** Joins rooms at the gateway (`await client.join(room)` waits for it). */
  join(rooms: string | string[]): PromiseLike<unknown> {
    const list = roomList(rooms);
    for (const room of list) this.rooms.add(room);
    return this.#self((operator) => operator.socketsJoin(list), undefined);
  }

  leave(room: string | string[]): PromiseLike<unknown> {
    const list = roomList(room);
    for (const name of list) this.rooms.delete(name);
    return this.#self((operator) => operator.socketsLeave(list), undefined);
  }

  /** Every socket in `room` but this one, as socket.io's `socket.to(room)`. */
  to(room: string | string[]): SwitchboardOperator {
    return new SwitchboardOperator(this.#emitter.to(room).except(this.id));
  }

  in(room: string | string[]): SwitchboardOperator {
    return this.to(room);
  }

  /** Every socket of the namespace but this one and those in `room`. */
  except(room: string | string[]): SwitchboardOperator {
    return new SwitchboardOperator(this.#emitter.except([this.id, ...roomList(room)]));
  }

  /** Every socket of the namespace but this one. */
  get broadcast(): SwitchboardOperator {
    return new SwitchboardOperator(this.#emitter.except(this.id));
  }

  /** This socket, with an event that may be dropped if it cannot take it now. */
  get volatile(): SwitchboardOperator {
    return new SwitchboardOperator(this.#emitter.to(this.id).volatile);
  }

  compress(_compress: boolean): this {
    return this;
  }

  timeout(_ms: number): never {
    throw new Error('timeout(): acknowledgements from clients to server events are not supported by the Switchboard gateway');
  }

  /**
   * Sends an event to this socket. `exception` (what Nest's exception filters emit) is sent and
   * also becomes the error of the event's ack; `error` only becomes the ack's error, since the
   * gateway keeps the `error` event name for its own errors.
   */
  emit(event: string, ...args: unknown[]): boolean | PromiseLike<unknown> {
    if (event === 'exception' || event === 'error') this.#context().errorEmits.push({ event, payload: args[0] });
    if (event === 'error') return true;
    return this.#self((operator) => operator.emit(event, ...args), true);
  }

  send(..._args: unknown[]): never {
    throw new Error('send()/write() emit "message", which the Switchboard gateway reserves: emit an event of your own');
  }

  write(...args: unknown[]): never {
    return this.send(...args);
  }

  /**
   * Disconnects this socket (`close`: its whole connection). During a connection call (inside
   * handleConnection) it refuses the connection instead: the client gets `connect_error`.
   */
  disconnect(close = false): this {
    const context = this.#context();
    this.connected = false;
    this.disconnected = true;
    if (context.kind === 'connection') {
      context.refused = true;
      return this;
    }
    if (context.kind !== 'disconnect') track(this.#emitter.in(this.id).disconnectSockets(close));
    return this;
  }

  on(event: string, _listener: unknown): never {
    throw listenersUnsupported(event);
  }

  once(event: string, _listener: unknown): never {
    throw listenersUnsupported(event);
  }

  onAny(_listener: unknown): never {
    throw listenersUnsupported('*');
  }

  use(_middleware: unknown): never {
    throw new Error('socket.use(): per-socket middleware does not run with the Switchboard gateway: use a Nest guard or interceptor');
  }

  /**
   * A call on this socket itself. Inside a connection call the socket is not connected at the
   * gateway until the answer reaches it, so such calls are sent right after the answer (and the
   * returned thenable settles at once, as socket.io's in-memory `join` does).
   */
  #self(call: SelfCall, value: unknown): PromiseLike<unknown> {
    const operator = this.#emitter.to(this.id);
    const context = this.#context();
    if (context.kind === 'connection') {
      context.deferred.push(() => {
        call(operator);
      });
      return new SettledOutcome(value);
    }
    if (context.kind === 'priming') throw new Error('the client was used while the adapter was starting');
    return track(call(operator));
  }
}

function listenersUnsupported(event: string): Error {
  return new Error(
    `client.on('${event}'): per-socket listeners cannot outlive a hook call with the Switchboard adapter `
    + '(nothing per socket is kept in the process). Use @SubscribeMessage handlers and handleDisconnect.',
  );
}

function roomList(rooms: string | string[]): string[] {
  return Array.isArray(rooms) ? rooms : [rooms];
}

function isObject(value: unknown): value is Record<string, any> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function handshakeOf(raw: unknown): SwitchboardHandshake {
  const h: Record<string, any> = isObject(raw) ? raw : {};
  const issued = typeof h.issued === 'number' ? h.issued : 0;
  const handshake: SwitchboardHandshake = {
    headers: isObject(h.headers) ? h.headers : {},
    query: isObject(h.query) ? h.query : {},
    auth: isObject(h.auth) ? h.auth : {},
    address: typeof h.address === 'string' ? h.address : '',
    issued,
    time: typeof h.time === 'string' ? h.time : issued > 0 ? new Date(issued).toString() : '',
    url: typeof h.url === 'string' ? h.url : '',
    xdomain: h.xdomain === true,
    secure: h.secure === true,
  };
  if (typeof h.recovered === 'boolean') handshake.recovered = h.recovered;
  return handshake;
}
