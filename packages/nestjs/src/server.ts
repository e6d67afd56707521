/**
 * What `@WebSocketServer() server` holds: a socket.io Namespace-like object whose every call goes
 * to the gateway through @switchboard/emitter. Nothing is kept in the process: `fetchSockets()`
 * asks the gateway, rooms live at the edge.
 */
import type { Emitter, EmitReach, Outcome, SocketCount } from '@switchboard/emitter';
import { SwitchboardOperator, SwitchboardRemoteSocket } from './operator';

export class SwitchboardNamespace {
  private readonly namespaces: Map<string, SwitchboardNamespace>;

  /** @internal Made by SwitchboardAdapter.create. */
  constructor(
    /** The emitter for this namespace (calls share the adapter's one queue). */
    readonly emitter: Emitter,
    namespaces?: Map<string, SwitchboardNamespace>,
  ) {
    this.namespaces = namespaces ?? new Map();
    if (!this.namespaces.has(emitter.nsp)) this.namespaces.set(emitter.nsp, this);
  }

  /** The namespace's name, as socket.io's `Namespace#name` (`/`, `/chat`). */
  get name(): string {
    return this.emitter.nsp;
  }

  /** Another namespace of the same gateway, as socket.io's `server.of(name)`. */
  of(name: string): SwitchboardNamespace {
    const nsp = normalizeNamespace(name);
    let found = this.namespaces.get(nsp);
    if (found === undefined) {
      found = new SwitchboardNamespace(this.emitter.of(nsp), this.namespaces);
    }
    return found;
  }

  to(room: string | string[]): SwitchboardOperator {
    return this.all().to(room);
  }

  in(room: string | string[]): SwitchboardOperator {
    return this.all().in(room);
  }

  except(room: string | string[]): SwitchboardOperator {
    return this.all().except(room);
  }

  /** Extension: every socket of these users (the token's `sub`) in this namespace. */
  toUser(...userIds: Array<string | string[]>): SwitchboardOperator {
    return this.all().toUser(...userIds);
  }

  get volatile(): SwitchboardOperator {
    return this.all().volatile;
  }

  /** There is one server: the gateway. `local` is the namespace itself. */
  get local(): SwitchboardOperator {
    return this.all();
  }

  compress(compress: boolean): SwitchboardOperator {
    return this.all().compress(compress);
  }

  timeout(ms: number): never {
    return this.all().timeout(ms);
  }

  emit(event: string, ...args: unknown[]): Outcome<EmitReach> {
    return this.all().emit(event, ...args);
  }

  /** socket.io's `send`/`write` emit `message`, a name the gateway keeps for its own events. */
  send(..._args: unknown[]): never {
    throw new Error('send()/write() emit "message", which the Switchboard gateway reserves: emit an event of your own');
  }

  write(...args: unknown[]): never {
    return this.send(...args);
  }

  fetchSockets(): PromiseLike<SwitchboardRemoteSocket[]> {
    return this.all().fetchSockets();
  }

  socketsJoin(rooms: string | string[]): Outcome<SocketCount> {
    return this.all().socketsJoin(rooms);
  }

  socketsLeave(rooms: string | string[]): Outcome<SocketCount> {
    return this.all().socketsLeave(rooms);
  }

  disconnectSockets(close = false): Outcome<SocketCount> {
    return this.all().disconnectSockets(close);
  }

  /** Throws, as the emitter does: there are no socket.io servers to talk to. */
  serverSideEmit(...args: unknown[]): never {
    return this.emitter.serverSideEmit(...args);
  }

  /** Middleware cannot run at the edge: the gateway's `connection` hook call replaces it. */
  use(_middleware: unknown): never {
    throw new Error(
      'server.use(): socket.io middleware does not run with the Switchboard gateway. Each connection is a '
      + '`connection` hook call (EVENT_HOOK_CONNECTIONS=true) that runs handleConnection: verify the client '
      + 'there and call client.disconnect() or throw a WsException to refuse it.',
    );
  }

  private all(): SwitchboardOperator {
    // A BroadcastOperator over the whole namespace (`except([])` skips no one).
    return new SwitchboardOperator(this.emitter.except([]));
  }
}

export function normalizeNamespace(name: string): string {
  return name.startsWith('/') ? name : `/${name}`;
}
