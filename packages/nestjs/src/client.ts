/**
 * The one client object Nest gets per namespace. Nest binds every `@SubscribeMessage` handler of
 * a gateway to the client it is given when a connection starts (`callback.bind(instance, client)`)
 * and keeps nothing else of it; the adapter gives it this Proxy once, at startup, and every
 * property read, write or call on it reaches the socket of the hook call being answered now
 * (context.ts). So `@ConnectedSocket() client`, `host.switchToWs().getClient()` and the client
 * a filter receives are all "the socket of this call", on any instance of the app.
 */
import { inspect } from 'node:util';
import { calls } from './context';
import type { SwitchboardSocket } from './socket';

function current(property: PropertyKey): SwitchboardSocket {
  const context = calls.getStore();
  if (context === undefined) {
    throw new Error(
      `@switchboard/nestjs: client.${String(property)} was used outside a hook call. The client object `
      + 'stands for the socket of the call being answered; keep socket ids (client.id), not clients, '
      + 'and reach sockets later through the server (server.to(id).emit(...)).',
    );
  }
  return context.socket as SwitchboardSocket;
}

/** Properties that are read from any object by runtimes and libraries, never meaning the socket. */
const INERT = new Set<PropertyKey>(['then', 'toJSON', 'constructor', Symbol.toPrimitive, Symbol.toStringTag, Symbol.iterator, inspect.custom]);

export function createClientProxy(namespace: string): SwitchboardSocket {
  const target = Object.create(null) as object;
  const handler: ProxyHandler<object> = {
    get(_target, property) {
      if (calls.getStore() === undefined) {
        if (INERT.has(property)) {
          return property === inspect.custom ? () => `SwitchboardClient(${namespace})` : undefined;
        }
      }
      const socket = current(property);
      const value = Reflect.get(socket, property, socket);
      return typeof value === 'function' ? value.bind(socket) : value;
    },
    set(_target, property, value) {
      return Reflect.set(current(property), property, value);
    },
    has(_target, property) {
      const context = calls.getStore();
      return context !== undefined && Reflect.has(context.socket, property);
    },
    ownKeys() {
      const context = calls.getStore();
      return context === undefined ? [] : Reflect.ownKeys(context.socket);
    },
    getOwnPropertyDescriptor(_target, property) {
      const context = calls.getStore();
      if (context === undefined) return undefined;
      const descriptor = Reflect.getOwnPropertyDescriptor(context.socket, property);
      // A proxy may only report configurable properties its (empty, extensible) target lacks.
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
    },
    defineProperty(_target, property, descriptor) {
      return Reflect.defineProperty(current(property), property, { ...descriptor, configurable: true });
    },
    deleteProperty(_target, property) {
      return Reflect.deleteProperty(current(property), property);
    },
    getPrototypeOf() {
      const context = calls.getStore();
      return context === undefined ? null : Reflect.getPrototypeOf(context.socket);
    },
  };
  return new Proxy(target, handler) as SwitchboardSocket;
}
