/**
 * socket.io's broadcast operator and remote sockets over @switchboard/emitter, with one addition:
 * every gateway call made while a hook call is being answered is remembered (context.ts `track`)
 * so that the answer leaves only after those calls were made. A client then never gets its ack
 * before the `new-message` its handler emitted has reached the gateway, as on one socket.io server.
 */
import type { BroadcastOperator, EmitReach, Outcome, RemoteSocket, SocketCount } from '@switchboard/emitter';
import { track } from './context';

/** A thenable over `outcome` whose value is mapped by `map`; lazy like the emitter's Outcome. */
export class MappedOutcome<T, U> implements PromiseLike<U> {
  constructor(
    private readonly outcome: PromiseLike<T>,
    private readonly map: (value: T) => U,
  ) {}

  then<A = U, B = never>(
    onfulfilled?: ((value: U) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: any) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return Promise.resolve(this.outcome).then(this.map).then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: any) => B | PromiseLike<B>) | null): Promise<U | B> {
    return this.then(undefined, onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<U> {
    return this.then().finally(onfinally);
  }
}

/** An already settled outcome, for calls that are sent later (see SwitchboardSocket). */
export class SettledOutcome<T> implements PromiseLike<T> {
  constructor(private readonly value: T) {}

  then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: any) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return Promise.resolve(this.value).then(onfulfilled, onrejected);
  }
}

/**
 * Who a call reaches, as socket.io's `BroadcastOperator`: `to/in/except/volatile/compress` chain
 * (each returns a new operator), `emit`, `socketsJoin`, `socketsLeave`, `disconnectSockets`,
 * `fetchSockets`. Calls return the emitter's thenable Outcome (truthy, like socket.io's `true`).
 */
export class SwitchboardOperator {
  /** @internal */
  constructor(private readonly operator: BroadcastOperator) {}

  to(room: string | string[]): SwitchboardOperator {
    return new SwitchboardOperator(this.operator.to(room));
  }

  in(room: string | string[]): SwitchboardOperator {
    return new SwitchboardOperator(this.operator.in(room));
  }

  except(room: string | string[]): SwitchboardOperator {
    return new SwitchboardOperator(this.operator.except(room));
  }

  /** Extension: every socket of these users (the token's `sub`). */
  toUser(...userIds: Array<string | string[]>): SwitchboardOperator {
    return new SwitchboardOperator(this.operator.toUser(...userIds));
  }

  get volatile(): SwitchboardOperator {
    return new SwitchboardOperator(this.operator.volatile);
  }

  get local(): SwitchboardOperator {
    return this;
  }

  compress(_compress: boolean): SwitchboardOperator {
    return this;
  }

  /** Acks from clients to server events are not supported by the gateway. */
  timeout(_ms: number): never {
    throw new Error('timeout(): acknowledgements from clients to server events are not supported by the Switchboard gateway');
  }

  emit(event: string, ...args: unknown[]): Outcome<EmitReach> {
    return track(this.operator.emit(event, ...args));
  }

  socketsJoin(rooms: string | string[]): Outcome<SocketCount> {
    return track(this.operator.socketsJoin(rooms));
  }

  socketsLeave(rooms: string | string[]): Outcome<SocketCount> {
    return track(this.operator.socketsLeave(rooms));
  }

  disconnectSockets(close = false): Outcome<SocketCount> {
    return track(this.operator.disconnectSockets(close));
  }

  fetchSockets(): PromiseLike<SwitchboardRemoteSocket[]> {
    const outcome = track(this.operator.fetchSockets());
    return new MappedOutcome(outcome, (sockets) => sockets.map((socket) => new SwitchboardRemoteSocket(socket)));
  }

  /** Extension: replaces socket.data of the one socket targeted (`to(socketId)`). */
  setData(data: unknown): Outcome<SocketCount> {
    return track(this.operator.setData(data));
  }
}

/**
 * A socket as `fetchSockets()` saw it, as socket.io's `RemoteSocket`: `id`, `data`, `rooms`,
 * `handshake`, and `emit`, `join`, `leave`, `disconnect` acting on that socket at the gateway.
 */
export class SwitchboardRemoteSocket<SocketData = any> {
  readonly id: string;
  /** Extension: the socket's verified user (the token's `sub`). */
  readonly userId: string | null;
  readonly handshake: Record<string, any>;
  readonly rooms: Set<string>;
  readonly data: SocketData;
  readonly nsp: { name: string };

  /** @internal */
  constructor(private readonly remote: RemoteSocket) {
    this.id = remote.id;
    this.userId = remote.userId;
    this.handshake = remote.handshake;
    this.rooms = remote.rooms;
    this.data = (remote.data ?? {}) as SocketData;
    this.nsp = { name: remote.namespace };
  }

  emit(event: string, ...args: unknown[]): Outcome<EmitReach> {
    return track(this.remote.emit(event, ...args));
  }

  join(rooms: string | string[]): Outcome<SocketCount> {
    return track(this.remote.join(rooms));
  }

  leave(rooms: string | string[]): Outcome<SocketCount> {
    return track(this.remote.leave(rooms));
  }

  disconnect(close = false): Outcome<SocketCount> {
    return track(this.remote.disconnect(close));
  }

  /** Extension: replaces this socket's socket.data. */
  setData(data: SocketData): Outcome<SocketCount> {
    return track(this.remote.setData(data));
  }
}
