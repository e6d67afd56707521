/**
 * SwitchboardAdapter: Nest's WebSocketAdapter for the Switchboard gateway. The sockets live at
 * the edge; the app receives the gateway's signed hook calls (`connection`, `event`,
 * `disconnect`) on one HTTP route and answers each with Nest's own machinery, and acts on sockets
 * through @switchboard/emitter. Nothing per socket is kept in the process between calls, so any
 * number of app instances behind one EVENT_HOOK_URL behave as one.
 *
 * How Nest is driven (WebSocketsController, @nestjs/websockets 11):
 *  - per gateway it calls `create(port, options)` (the namespace in `options.namespace`), then
 *    `bindClientConnect(server, callback)`; `callback(client)` is what a socket.io server runs for
 *    each new socket: it feeds Nest's connection stream (→ handleConnection), binds every
 *    @SubscribeMessage handler to that client (`bindMessageHandlers(client, handlers, transform)`)
 *    and asks for its disconnect (`bindClientDisconnect(client, cb)`).
 *  - the adapter runs that callback once per gateway at startup ("priming") with a client Proxy
 *    (client.ts) and keeps the bound handlers; handleConnection/handleDisconnect are wrapped so
 *    priming does not run them. Nest's connection and disconnect streams drop a client equal to
 *    the previous one (`distinctUntilChanged`), and the Proxy is always the same object, so the
 *    adapter calls handleConnection / handleDisconnect itself for each connection call.
 *  - each hook call runs in an AsyncLocalStorage context holding the socket built from the call,
 *    which is what the Proxy reads.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { INestApplicationContext, WebSocketAdapter, WsMessageHandler } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { Emitter } from '@switchboard/emitter';
import type { EmitterOptions } from '@switchboard/emitter';
import { verifySignature } from '@switchboard/emitter/hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createClientProxy } from './client';
import { calls, settle, track } from './context';
import type { CallContext, CallKind, Registration } from './context';
import { errorOfPayload, refusalOf } from './errors';
import { BodyError, errorAnswer, rawBodyOf, writeAnswer } from './http';
import type { Answer } from './http';
import { mountHookRoute } from './mount';
import { normalizeNamespace, SwitchboardNamespace } from './server';
import { SwitchboardSocket } from './socket';

/** Where the gateway's hook calls land unless `path` says otherwise. */
export const DEFAULT_HOOK_PATH = '/switchboard/events';

/** Nest's metadata keys (@nestjs/websockets constants GATEWAY_METADATA and GATEWAY_OPTIONS). */
const GATEWAY_METADATA = 'websockets:is_gateway';
const GATEWAY_OPTIONS = 'websockets:gateway_options';

const SIGNATURE_HEADER = 'x-switchboard-signature';
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** How long a handler with `@Ack()` may take to call its ack before the call is answered empty. */
const MANUAL_ACK_WAIT_MS = 30_000;

export interface SwitchboardAdapterOptions {
  /** The gateway's base URL (SWITCHBOARD_URL). */
  url: string;
  /** The gateway's INTERNAL_API_TOKEN. */
  token: string;
  /** EVENT_HOOK_SECRET: verifies every hook call's signature. */
  secret: string;
  /** The route the hook calls land on (the path of EVENT_HOOK_URL). Default `/switchboard/events`. */
  path?: string;
  /** How far a call's timestamp may be from this clock, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The largest hook call accepted, in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Passed to the emitter: one attempt of a gateway call is aborted after this long. Default 10000. */
  timeoutMs?: number;
  /** Passed to the emitter: a fetch to use instead of the global one. */
  fetch?: EmitterOptions['fetch'];
}

/** @WebSocketGateway options, as far as the adapter reads them. */
export interface SwitchboardGatewayOptions {
  namespace?: string | RegExp | ((...args: any[]) => unknown);
  [option: string]: unknown;
}

/** The hook call body the gateway sends (docs/PROTOCOL.md, "Custom events: the backend hook"). */
interface HookCall {
  kind: 'event' | 'connection' | 'disconnect';
  event: string;
  args: unknown[];
  namespace: string;
  socket_id: string;
  conn_id?: string;
  user_id?: string;
  data?: unknown;
  handshake?: unknown;
  reason?: string;
  sent_at?: number;
}

/** A gateway instance's hooks, as Nest's NestGateway interface has them. */
interface GatewayInstance {
  handleConnection?: (...args: unknown[]) => unknown;
  handleDisconnect?: (...args: unknown[]) => unknown;
}

type BoundHandler = WsMessageHandler & { isAckHandledManually?: boolean };

interface NamespaceState {
  name: string;
  server: SwitchboardNamespace;
  /** The one client object Nest gets for this namespace. */
  client: SwitchboardSocket;
  /** One per gateway bound to this namespace (bindClientConnect). */
  registrations: Registration[];
  /** The gateway instances on this namespace, for handleConnection / handleDisconnect. */
  gateways: GatewayInstance[];
}

export class SwitchboardAdapter
  implements WebSocketAdapter<SwitchboardNamespace, SwitchboardSocket, SwitchboardGatewayOptions>
{
  /** The emitter every server, client and remote socket of this adapter calls the gateway with. */
  readonly emitter: Emitter;
  /** The route the hook calls land on. */
  readonly path: string;

  private readonly logger = new Logger('SwitchboardAdapter');
  private readonly secret: string;
  private readonly toleranceSeconds: number;
  private readonly maxBodyBytes: number;
  private readonly namespaces = new Map<string, NamespaceState>();
  private readonly servers = new Map<string, SwitchboardNamespace>();
  private readonly byServer = new Map<SwitchboardNamespace, NamespaceState>();
  private gatewaysFound = false;
  private portWarned = false;

  constructor(
    private readonly app: INestApplicationContext,
    options: SwitchboardAdapterOptions,
  ) {
    const { url, token, secret } = options ?? ({} as SwitchboardAdapterOptions);
    if (typeof url !== 'string' || url === '') throw new TypeError('SwitchboardAdapter needs options.url: the gateway\'s base URL (SWITCHBOARD_URL)');
    if (typeof token !== 'string' || token === '') throw new TypeError('SwitchboardAdapter needs options.token: the gateway\'s INTERNAL_API_TOKEN');
    if (typeof secret !== 'string' || secret === '') throw new TypeError('SwitchboardAdapter needs options.secret: the gateway\'s EVENT_HOOK_SECRET');
    this.secret = secret;
    this.path = options.path ?? DEFAULT_HOOK_PATH;
    if (!this.path.startsWith('/')) throw new TypeError(`SwitchboardAdapter: options.path must start with "/" (got "${this.path}")`);
    this.toleranceSeconds = options.toleranceSeconds ?? 300;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.emitter = new Emitter({ url, token, timeoutMs: options.timeoutMs, fetch: options.fetch });
    this.emitter.on('error', (error) => {
      this.logger.warn(`a gateway call failed: ${error.op ?? 'call'} ${error.code}: ${error.message}`);
    });
    this.mount();
  }

  // ---------------------------------------------------------------- WebSocketAdapter

  /** The server object of a gateway's namespace (what `@WebSocketServer()` receives). */
  create(port: number, options?: SwitchboardGatewayOptions): SwitchboardNamespace {
    const namespace = options?.namespace;
    if (namespace !== undefined && namespace !== null && typeof namespace !== 'string') {
      const kind = namespace instanceof RegExp ? `a RegExp (${String(namespace)})` : 'a function';
      throw new Error(
        `SwitchboardAdapter: a gateway's namespace is ${kind}; dynamic namespaces are not supported. `
        + 'Give @WebSocketGateway({ namespace }) a string.',
      );
    }
    if (port && !this.portWarned) {
      this.portWarned = true;
      this.logger.warn(`@WebSocketGateway(${port}): the port is ignored; the gateway serves every namespace`);
    }
    this.findGateways();
    return this.stateOf(typeof namespace === 'string' && namespace !== '' ? normalizeNamespace(namespace) : '/').server;
  }

  /** Primes the gateway: runs Nest's connection callback once so it binds its handlers. */
  bindClientConnect(server: SwitchboardNamespace, callback: (...args: unknown[]) => unknown): void {
    const state = this.byServer.get(server) ?? this.stateOf(server.name);
    const registration: Registration = { handlers: new Map() };
    state.registrations.push(registration);
    const context = this.newContext('priming', state, { socket_id: '', namespace: state.name });
    context.registration = registration;
    calls.run(context, () => callback(state.client));
  }

  /** Nothing to keep: a disconnect call runs handleDisconnect itself. */
  bindClientDisconnect(_client: SwitchboardSocket, _callback: (...args: unknown[]) => unknown): void {}

  /** Keeps the handlers Nest bound while priming, by message. */
  bindMessageHandlers(
    _client: SwitchboardSocket,
    handlers: BoundHandler[],
    transform: (data: unknown) => Observable<unknown>,
  ): void {
    const registration = calls.getStore()?.registration;
    if (registration === undefined) return;
    for (const handler of handlers) {
      const message = String(handler.message);
      if (!registration.handlers.has(message)) registration.handlers.set(message, handler);
    }
    registration.transform = transform;
  }

  /** Waits for every queued gateway call (Nest calls it per server at shutdown). */
  close(_server?: SwitchboardNamespace): Promise<void> {
    return this.emitter.flush();
  }

  dispose(): Promise<void> {
    return this.emitter.flush();
  }

  // ---------------------------------------------------------------- the hook endpoint

  /** The hook route on the app's HTTP server (mount.ts), every call answered by `serve`. */
  private mount(): void {
    mountHookRoute(this.app, this.path, (req, res) => {
      this.serve(req, res).catch((error) => {
        this.logger.error(`could not answer a hook call: ${describe(error)}`);
        if (!res.headersSent) writeAnswer(res, errorAnswer(500, 'internal_error', 'the hook call could not be answered'));
      });
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw: Uint8Array;
    try {
      raw = await rawBodyOf(req, this.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      if (error.status === 500) this.logger.error(error.message);
      writeAnswer(res, errorAnswer(error.status, error.code, error.message));
      return;
    }
    const header = req.headers[SIGNATURE_HEADER];
    const signature = Array.isArray(header) ? header[0] : header;
    if (!(await verifySignature(raw, signature, this.secret, { toleranceSeconds: this.toleranceSeconds }))) {
      writeAnswer(res, errorAnswer(401, 'bad_signature', `the ${SIGNATURE_HEADER} header is missing, malformed, stale or wrong`));
      return;
    }
    const call = parseCall(raw);
    if (typeof call === 'string') {
      writeAnswer(res, errorAnswer(400, 'bad_request', call));
      return;
    }
    writeAnswer(res, await this.answer(call));
  }

  /** The answer to one verified hook call. */
  private async answer(call: HookCall): Promise<Answer> {
    switch (call.kind) {
      case 'connection':
        return this.onConnection(call);
      case 'event':
        return this.onEvent(call);
      case 'disconnect':
        return this.onDisconnect(call);
      default:
        return errorAnswer(400, 'unknown_kind', `unknown call kind "${String((call as HookCall).kind)}"`);
    }
  }

  /** handleConnection of each gateway on the namespace; a throw or client.disconnect() refuses. */
  private async onConnection(call: HookCall): Promise<Answer> {
    const state = this.namespaces.get(call.namespace);
    if (state === undefined || (state.gateways.length === 0 && state.registrations.length === 0)) {
      return errorAnswer(404, 'invalid_namespace', `no gateway serves the namespace ${call.namespace}`);
    }
    const context = this.newContext('connection', state, call);
    try {
      await calls.run(context, async () => {
        for (const gateway of state.gateways) {
          if (typeof gateway.handleConnection !== 'function') continue;
          await gateway.handleConnection(state.client);
          if (context.refused) break;
        }
      });
    } catch (error) {
      await settle(context);
      const refusal = refusalOf(error);
      if (!refusal.deliberate) this.logger.error(`handleConnection threw on ${call.namespace}: ${describe(error)}`);
      return errorAnswer(refusal.status, refusal.code, refusal.message);
    }
    await settle(context);
    if (context.refused) {
      return errorAnswer(403, 'disconnected', 'the server disconnected the socket while connecting it');
    }
    const deferred = context.deferred;
    return {
      status: 200,
      body: { data: context.socket.data ?? {} },
      after: deferred.length === 0 ? undefined : () => deferred.forEach((send) => send()),
    };
  }

  /** The @SubscribeMessage handler for the event, run through Nest (guards, pipes, interceptors, filters). */
  private async onEvent(call: HookCall): Promise<Answer> {
    const state = this.namespaces.get(call.namespace);
    const registration = state?.registrations.find((candidate) => candidate.handlers.has(call.event));
    const handler = registration?.handlers.get(call.event);
    if (state === undefined || registration === undefined || handler === undefined || registration.transform === undefined) {
      return errorAnswer(404, 'unknown_event', `no @SubscribeMessage('${call.event}') handler on ${call.namespace}`);
    }
    const context = this.newContext('event', state, call);
    const before = safeJson(context.socket.data);
    let value: unknown;
    try {
      value = await calls.run(context, () => this.runHandler(registration, handler, call.args, context));
    } catch (error) {
      await settle(context);
      this.logger.error(`the handler of "${call.event}" on ${call.namespace} failed: ${describe(error)}`);
      return errorAnswer(500, 'handler_failed', `the handler of "${call.event}" failed`);
    }
    let answer: Answer;
    if (context.errorEmits.length > 0) {
      const { code, message } = errorOfPayload(context.errorEmits[0].payload);
      answer = errorAnswer(400, code, message);
    } else if (isWsResponse(value)) {
      calls.run(context, () => context.socket.emit(value.event, value.data));
      answer = { status: 204 };
    } else if (value === undefined || value === null) {
      answer = { status: 204 };
    } else {
      answer = { status: 200, body: value };
    }
    if (safeJson(context.socket.data) !== before) {
      calls.run(context, () => track(this.emitter.of(state.name).to(context.socket.id).setData(context.socket.data)));
    }
    await settle(context);
    return answer;
  }

  /** handleDisconnect of each gateway on the namespace; its answer is ignored by the gateway. */
  private async onDisconnect(call: HookCall): Promise<Answer> {
    const state = this.namespaces.get(call.namespace);
    if (state === undefined) return { status: 204 };
    const context = this.newContext('disconnect', state, call);
    try {
      await calls.run(context, async () => {
        for (const gateway of state.gateways) {
          if (typeof gateway.handleDisconnect === 'function') await gateway.handleDisconnect(state.client, call.reason);
        }
      });
    } catch (error) {
      this.logger.error(`handleDisconnect threw on ${call.namespace}: ${describe(error)}`);
    }
    await settle(context);
    return { status: 204 };
  }

  /**
   * Runs a bound handler as Nest's IoAdapter does (`transform(callback(data, ack))`) and resolves
   * to the ack: the first value that is not null/undefined, or what `@Ack()` was called with.
   */
  private runHandler(registration: Registration, handler: BoundHandler, args: unknown[], context: CallContext<SwitchboardSocket>): Promise<unknown> {
    // As IoAdapter.mapPayload: one argument is the data, several are an array, none is undefined.
    const data = args.length <= 1 ? args[0] : args;
    const manual = handler.isAckHandledManually === true;
    return new Promise((resolve, reject) => {
      let settled = false;
      let completed = false;
      let acked: { value: unknown } | undefined;
      let timer: NodeJS.Timeout | undefined;
      let subscription: { unsubscribe(): void } | undefined;
      const finish = (value: unknown) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        subscription?.unsubscribe();
        resolve(value);
      };
      const ack = (...values: unknown[]) => {
        if (acked === undefined) acked = { value: values[0] };
        if (manual || completed) finish(acked.value);
      };
      try {
        const result = registration.transform!(handler.callback(data, ack));
        subscription = result.subscribe({
          next: (value) => {
            if (value === undefined || value === null) return;
            if (!manual) finish(value);
            // With @Ack() the return value is not the ack, but a WsResponse is still sent (IoAdapter).
            else if (isWsResponse(value)) context.socket.emit(value.event, value.data);
          },
          error: (error) => {
            if (!settled) {
              settled = true;
              reject(error);
            }
          },
          complete: () => {
            completed = true;
            if (!manual || acked !== undefined || context.errorEmits.length > 0) {
              finish(acked?.value);
              return;
            }
            timer = setTimeout(() => finish(undefined), MANUAL_ACK_WAIT_MS);
            timer.unref?.();
          },
        });
        if (settled) subscription.unsubscribe();
      } catch (error) {
        if (!settled) {
          settled = true;
          reject(error);
        }
      }
    });
  }

  // ---------------------------------------------------------------- gateways and namespaces

  private stateOf(name: string): NamespaceState {
    let state = this.namespaces.get(name);
    if (state === undefined) {
      const server = this.servers.get(name) ?? new SwitchboardNamespace(this.emitter.of(name), this.servers);
      state = { name, server, client: createClientProxy(name), registrations: [], gateways: [] };
      this.namespaces.set(name, state);
      this.byServer.set(server, state);
    }
    return state;
  }

  private newContext(kind: CallKind, state: NamespaceState, call: Pick<HookCall, 'socket_id' | 'namespace'> & Partial<HookCall>): CallContext<SwitchboardSocket> {
    const context: CallContext<SwitchboardSocket> = {
      kind,
      socket: undefined as unknown as SwitchboardSocket,
      pending: [],
      deferred: [],
      refused: false,
      errorEmits: [],
    };
    context.socket = new SwitchboardSocket(this.emitter.of(state.name), call, () => context);
    return context;
  }

  /**
   * Finds every gateway instance (Nest's gateway metadata on its class) and wraps its
   * handleConnection / handleDisconnect so that priming does not run them. Nest has made every
   * instance by the time it calls `create`, and reads these methods only after `create` returns.
   */
  private findGateways(): void {
    if (this.gatewaysFound) return;
    this.gatewaysFound = true;
    for (const wrapper of this.providers()) {
      const instance = wrapper?.instance as GatewayInstance | undefined;
      const type = wrapper?.metatype ?? (instance as any)?.constructor;
      if (instance === undefined || instance === null || typeof type !== 'function') continue;
      if (!Reflect.getMetadata(GATEWAY_METADATA, type)) continue;
      const options: SwitchboardGatewayOptions = Reflect.getMetadata(GATEWAY_OPTIONS, type) ?? {};
      if (options.namespace !== undefined && typeof options.namespace !== 'string') continue; // create() refuses it
      const state = this.stateOf(options.namespace ? normalizeNamespace(options.namespace) : '/');
      if (state.gateways.includes(instance)) continue;
      state.gateways.push(instance);
      quietWhilePriming(instance, 'handleConnection');
      quietWhilePriming(instance, 'handleDisconnect');
    }
  }

  private *providers(): Generator<{ instance?: unknown; metatype?: unknown }> {
    let modules: Map<string, any> | undefined;
    try {
      modules = this.app.get(ModulesContainer, { strict: false });
    } catch {
      // A second copy of @nestjs/core (a linked package): ask the app's own container.
      modules = (this.app as any).container?.getModules?.();
    }
    if (modules === undefined) {
      throw new Error('SwitchboardAdapter: could not read the application\'s modules to find its gateways');
    }
    for (const module of modules.values()) {
      for (const wrapper of module.providers.values()) yield wrapper;
    }
  }
}

/** Replaces `instance[method]` by a wrapper that does nothing while priming. */
function quietWhilePriming(instance: GatewayInstance, method: 'handleConnection' | 'handleDisconnect'): void {
  const original = instance[method];
  if (typeof original !== 'function') return;
  Object.defineProperty(instance, method, {
    configurable: true,
    enumerable: false,
    writable: true,
    value: function switchboardHook(this: unknown, ...args: unknown[]) {
      if (calls.getStore()?.kind === 'priming') return undefined;
      return original.apply(this, args);
    },
  });
}

function parseCall(raw: Uint8Array): HookCall | string {
  let body: any;
  try {
    body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'the body is not a JSON object';
  const kind = body.kind ?? 'event';
  if (kind !== 'event' && kind !== 'connection' && kind !== 'disconnect') return `unknown call kind "${String(kind)}"`;
  if (typeof body.socket_id !== 'string' || body.socket_id === '') return 'socket_id is missing';
  if (kind === 'event' && (typeof body.event !== 'string' || body.event === '')) return 'event is missing';
  return {
    ...body,
    kind,
    event: typeof body.event === 'string' ? body.event : kind,
    args: Array.isArray(body.args) ? body.args : [],
    namespace: typeof body.namespace === 'string' && body.namespace !== '' ? normalizeNamespace(body.namespace) : '/',
  };
}

function isWsResponse(value: unknown): value is { event: string; data: unknown } {
  return value !== null && typeof value === 'object' && typeof (value as any).event === 'string' && (value as any).event !== '';
}

function safeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value ?? null);
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
