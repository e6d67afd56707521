/**
 * The hook route on the app's HTTP server, for each Nest HTTP platform. The hook call's signature
 * covers its exact bytes, so the route must get the request stream before any body parser reads
 * it; and the same handler (node's IncomingMessage and ServerResponse: http.ts reads the body
 * with its size limit and writes the answer) serves every platform. Only the mounting differs:
 *  - Express: the route is added before `app.init()` mounts Nest's body parsers, so it answers
 *    before any of them runs.
 *  - Fastify parses a body itself, before the route's handler, with the content-type parsers of
 *    the route's plugin context. The route lives in an encapsulated context of its own whose one
 *    parser takes any body and leaves it unread (as @fastify/multipart does), so the app's own
 *    routes keep their parsers and the handler reads `request.raw`, on which it also answers
 *    after taking the reply over (`reply.hijack()`). As no Fastify parser reads the body, the
 *    route's limit is the adapter's `maxBodyBytes` (413 from http.ts, as on Express), not
 *    Fastify's `bodyLimit`. Fastify loads the context when it gets ready (`app.listen()`, or
 *    `ready()` after `app.init()`), whatever the order of Nest's own parsers: the context drops
 *    the ones it inherits.
 * Fastify is reached through the few methods used here (structural types): it is the app's
 * dependency, not this package's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type HookHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** What the route needs of a Nest HTTP application (INestApplication). */
interface HttpApplication {
  getHttpAdapter(): { getType?(): string; getInstance(): unknown };
  appOptions?: { rawBody?: boolean };
}

interface ExpressApp {
  post(path: string, handler: HookHandler): unknown;
}

type ParserDone = (error: Error | null, body?: unknown) => void;

interface FastifyContext {
  removeAllContentTypeParsers(): void;
  addContentTypeParser(type: '*', parser: (request: unknown, payload: unknown, done: ParserDone) => void): void;
  post(path: string, handler: (request: { raw: IncomingMessage }, reply: { raw: ServerResponse; hijack(): unknown }) => void): unknown;
}

interface FastifyApp {
  register(plugin: (context: FastifyContext, options: unknown, done: (error?: Error) => void) => void): unknown;
}

/** Mounts `handler` as the POST route `path` of the app's HTTP server; throws on any other platform. */
export function mountHookRoute(app: unknown, path: string, handler: HookHandler): void {
  const http = app as Partial<HttpApplication> | undefined;
  if (typeof http?.getHttpAdapter !== 'function') {
    throw new Error(
      'SwitchboardAdapter needs an HTTP application (NestFactory.create), not an application context: '
      + 'the gateway\'s hook calls arrive over HTTP',
    );
  }
  const httpAdapter = http.getHttpAdapter();
  const type = typeof httpAdapter?.getType === 'function' ? httpAdapter.getType() : undefined;
  if (type === 'express') {
    mountOnExpress(httpAdapter.getInstance() as ExpressApp, path, handler, http.appOptions?.rawBody === true);
  } else if (type === 'fastify') {
    mountOnFastify(httpAdapter.getInstance() as FastifyApp, path, handler);
  } else {
    throw new Error(
      'SwitchboardAdapter supports Express (@nestjs/platform-express) and Fastify (@nestjs/platform-fastify); '
      + `this app runs on ${type ?? 'an unknown HTTP adapter'}.`,
    );
  }
}

function mountOnExpress(express: ExpressApp, path: string, handler: HookHandler, rawBodyKept: boolean): void {
  if (jsonParserMounted(express) && !rawBodyKept) {
    throw new Error(
      'SwitchboardAdapter: a JSON body parser is already mounted on the Express app, so the hook calls\' '
      + 'raw bodies (which their signatures cover) would be gone. Construct the adapter before calling '
      + 'app.use(express.json()) / app.init(), or create the app with { rawBody: true }.',
    );
  }
  express.post(path, handler);
}

function mountOnFastify(fastify: FastifyApp, path: string, handler: HookHandler): void {
  try {
    fastify.register((context, _options, done) => {
      context.removeAllContentTypeParsers();
      context.addContentTypeParser('*', leaveUnread);
      context.post(path, (request, reply) => {
        reply.hijack();
        handler(request.raw, reply.raw);
      });
      done();
    });
  } catch (error) {
    throw new Error(
      'SwitchboardAdapter: the Fastify instance has already started, so the hook route cannot be added. '
      + 'Construct the adapter before app.init() / app.listen().',
      { cause: error },
    );
  }
}

/** A Fastify content-type parser that accepts any body and leaves its stream to the handler. */
function leaveUnread(_request: unknown, _payload: unknown, done: ParserDone): void {
  done(null);
}

/** Whether Express already has a JSON body parser (its layers are named after the parser). */
function jsonParserMounted(app: any): boolean {
  let stack: unknown;
  try {
    // Express 4 keeps its router in `_router`; Express 5 in `router` (Express 4's `router` getter throws).
    stack = (app?._router ?? app?.router)?.stack;
  } catch {
    return false;
  }
  return Array.isArray(stack) && stack.some((layer: any) => layer?.name === 'jsonParser' || layer?.handle?.name === 'jsonParser');
}
