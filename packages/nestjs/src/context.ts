/**
 * "The current call": every hook call the adapter answers runs inside an AsyncLocalStorage
 * context that holds the socket built from that call, so one client object per namespace (a
 * Proxy, see client.ts) can stand for whichever socket the running code is serving, across every
 * await of Nest's guards, pipes, interceptors, filters and the handler itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { WsMessageHandler } from '@nestjs/common';
import type { Observable } from 'rxjs';

/** What Nest bound for one gateway's connection callback, captured while priming. */
export interface Registration {
  /** `@SubscribeMessage` handlers by message name, bound by Nest to the namespace's client proxy. */
  handlers: Map<string, WsMessageHandler & { isAckHandledManually?: boolean }>;
  /** Nest's result transform (`pickResult` + `mergeAll`). */
  transform?: (data: unknown) => Observable<unknown>;
}

export type CallKind = 'priming' | 'connection' | 'event' | 'disconnect';

/** What a filter or handler emitted on the client that the answer must carry as an error. */
export interface ErrorEmit {
  event: string;
  payload: unknown;
}

/**
 * One hook call being answered. `Socket` is the call's socket (socket.ts's SwitchboardSocket;
 * a parameter so that this file, which the socket uses, does not import it back).
 */
export interface CallContext<Socket = object> {
  kind: CallKind;
  socket: Socket;
  /** Set while priming: where bindMessageHandlers / bindClientDisconnect store what Nest binds. */
  registration?: Registration;
  /** Outcomes of the gateway calls made during this call: awaited before the answer is sent. */
  pending: PromiseLike<unknown>[];
  /** Calls on this very socket made during a connection call: sent once the answer is out. */
  deferred: Array<() => void>;
  /** `client.disconnect()` was called during a connection call. */
  refused: boolean;
  /** `client.emit('exception' | 'error', …)` during the call (Nest's exception filters do this). */
  errorEmits: ErrorEmit[];
}

export const calls = new AsyncLocalStorage<CallContext>();

/** Remembers `outcome` so the call's answer waits for it; returns it unchanged. */
export function track<T extends PromiseLike<unknown>>(outcome: T): T {
  const context = calls.getStore();
  if (context !== undefined && context.kind !== 'priming') context.pending.push(outcome);
  return outcome;
}

/** Waits for every tracked outcome of `context`, including ones queued while waiting; never throws. */
export async function settle(context: CallContext): Promise<void> {
  let done = 0;
  while (done < context.pending.length) {
    const batch = context.pending.slice(done);
    done = context.pending.length;
    await Promise.all(batch.map((outcome) => Promise.resolve(outcome).then(noop, noop)));
  }
}

function noop(): void {}
