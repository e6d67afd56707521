// The adapter on @nestjs/platform-fastify, in-process: the same one-line setup as on Express, the
// hook route in its own Fastify context (raw bytes for the signature, the adapter's body limit,
// answers written by the adapter) beside the app's own JSON route, which keeps Fastify's parser.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { GatewaySocket, HOOK_SECRET, INTERNAL_TOKEN, PACKAGE_DIR, hook, sign, startFakeGateway } from './helpers.mjs';

const require = createRequire(join(PACKAGE_DIR, 'package.json'));
require('reflect-metadata');
const { Body, Controller, Module, Post } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { FastifyAdapter } = require('@nestjs/platform-fastify');
const { WebSocketGateway, SubscribeMessage, MessageBody, ConnectedSocket } = require('@nestjs/websockets');
const { SwitchboardAdapter } = require(join(PACKAGE_DIR, 'dist', 'index.js'));

/** Fastify's own limit for the app's routes; the hook route has the adapter's (HOOK_LIMIT). */
const FASTIFY_BODY_LIMIT = 1024;
const HOOK_LIMIT = 16 * 1024;

/** Applies a decorator to a method or one of its parameters by hand, as TypeScript would. */
function method(target, name, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, name);
  for (const decorate of decorators) decorate(target.prototype, name, descriptor);
}
const parameter = (target, name, index, decorator) => decorator(target.prototype, name, index);

class Chat {
  handleConnection(client) {
    client.data.user = client.handshake.auth.token;
    client.join('lobby'); // both sent once the connection is answered
    client.emit('welcome', { id: client.id });
  }

  ping(body, client) {
    return { pong: body, user: client.data.user };
  }

  quiet() {}
}
method(Chat, 'ping', SubscribeMessage('ping'));
parameter(Chat, 'ping', 0, MessageBody());
parameter(Chat, 'ping', 1, ConnectedSocket());
method(Chat, 'quiet', SubscribeMessage('quiet'));
WebSocketGateway({ namespace: 'chat' })(Chat);

class Orders {
  create(order) {
    return { received: order };
  }
}
method(Orders, 'create', Post());
parameter(Orders, 'create', 0, Body());
Controller('orders')(Orders);

class ChatModule {}
Module({ controllers: [Orders], providers: [Chat] })(ChatModule);

/** How many calls to the gateway the adapters have started (through their `fetch`). */
let gatewayCallsStarted = 0;
const countingFetch = (input, init) => {
  gatewayCallsStarted += 1;
  return fetch(input, init);
};

/** The Fastify app with the adapter, as main.ts would make it; `start` is listen() or init() + ready(). */
async function fastifyApp(gw, start) {
  const app = await NestFactory.create(ChatModule, new FastifyAdapter({ bodyLimit: FASTIFY_BODY_LIMIT }), { logger: false });
  const options = { url: gw.url, token: INTERNAL_TOKEN, secret: HOOK_SECRET, maxBodyBytes: HOOK_LIMIT, fetch: countingFetch };
  app.useWebSocketAdapter(new SwitchboardAdapter(app, options));
  await start(app);
  return app;
}

let gw;
let running;
/** gatewayCallsStarted each time the app finished writing an answer to a hook call. */
const startedWhenAnswered = [];

before(async () => {
  gw = await startFakeGateway();
  const app = await fastifyApp(gw, async (app) => {
    app.getHttpAdapter().getInstance().addHook('onRequest', (request, reply, done) => {
      if (request.url === '/switchboard/events') reply.raw.once('finish', () => startedWhenAnswered.push(gatewayCallsStarted));
      done();
    });
    await app.listen(0, '127.0.0.1');
  });
  running = { app, url: await app.getUrl() };
});
after(async () => {
  await running?.app.close();
  await gw?.close();
});

const connected = async (token = 'tok') => {
  const socket = new GatewaySocket(gw, { userId: 'u1', namespace: '/chat', token });
  const answer = await socket.connect(running);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  // handleConnection's join and emit follow the answer: let them land.
  await gw.waitFor((calls) => calls.some((c) => c.op === 'emit' && c.body.event === 'welcome' && c.body.rooms?.[0] === socket.id));
  return { socket, answer };
};

const postJson = (path, body) => fetch(`${running.url}${path}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

describe('the hook route on Fastify', () => {
  test('a connection call runs handleConnection; its join and emit reach the gateway after the answer', async () => {
    const [mark, started] = [gw.calls.length, gatewayCallsStarted];
    const { socket, answer } = await connected('abc');
    assert.deepEqual(answer.body, { data: { user: 'abc' } });
    assert.equal(startedWhenAnswered.at(-1), started, 'no gateway call was started before the answer was written');
    assert.equal(gatewayCallsStarted, started + 2);
    assert.deepEqual(gw.since(mark).map((c) => [c.op, c.body.rooms]), [
      ['join', [socket.id]],
      ['emit', [socket.id]],
    ]);
    assert.deepEqual(gw.since(mark)[0].body.join, ['lobby']);
  });

  test('a signed event call reaches the @SubscribeMessage handler and gets its ack; nothing returned is 204', async () => {
    const { socket } = await connected('ack-me');
    assert.deepEqual(await socket.emit(running, 'ping', 'hi'), { status: 200, body: { pong: 'hi', user: 'ack-me' } });
    assert.deepEqual(await socket.emit(running, 'quiet'), { status: 204, body: null });
  });

  test('a bad or missing signature is 401 and runs nothing', async () => {
    const { socket } = await connected();
    const mark = gw.calls.length;
    const call = JSON.stringify({ kind: 'connection', event: 'connection', args: [], namespace: '/chat', socket_id: socket.id, handshake: { auth: { token: 'x' } } });
    const tampered = await hook(running, null, { rawBody: call.replace('"x"', '"y"'), signature: sign(call) });
    assert.equal(tampered.status, 401);
    assert.equal(tampered.body.error.code, 'bad_signature');
    assert.equal((await hook(running, null, { rawBody: call, signature: '' })).status, 401);
    assert.equal(gw.calls.length, mark, 'no gateway call was made');
  });

  test('the hook route takes calls up to the adapter\'s maxBodyBytes, not Fastify\'s bodyLimit; 413 beyond', async () => {
    const { socket } = await connected();
    const big = 'x'.repeat(4 * FASTIFY_BODY_LIMIT);
    assert.deepEqual((await socket.emit(running, 'ping', big)).body.pong, big);
    const tooBig = await socket.emit(running, 'ping', 'x'.repeat(HOOK_LIMIT));
    assert.deepEqual(tooBig, { status: 413, body: { error: { code: 'too_large', message: `a hook call is at most ${HOOK_LIMIT} bytes` } } });
  });

  test('the app\'s own JSON route keeps Fastify\'s parser and its bodyLimit', async () => {
    const created = await postJson('/orders', { item: 'book', qty: 2 });
    assert.equal(created.status, 201);
    assert.deepEqual(await created.json(), { received: { item: 'book', qty: 2 } });
    const tooBig = await postJson('/orders', { item: 'x'.repeat(2 * FASTIFY_BODY_LIMIT) });
    assert.equal(tooBig.status, 413);
  });
});

test('after app.init() and Fastify\'s ready(), without listen(), the hook route answers', async () => {
  const app = await fastifyApp(gw, async (app) => {
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
  });
  try {
    const payload = JSON.stringify({ kind: 'event', event: 'ping', args: ['injected'], namespace: '/chat', socket_id: 'u9~1', data: { user: 'u9' } });
    const response = await app.getHttpAdapter().getInstance().inject({
      method: 'POST',
      url: '/switchboard/events',
      headers: { 'content-type': 'application/json', 'x-switchboard-signature': sign(payload) },
      payload,
    });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { pong: 'injected', user: 'u9' });
  } finally {
    await app.close();
  }
});

test('an adapter made after the Fastify app has started is refused with what to do', async () => {
  class Empty {}
  Module({})(Empty);
  const app = await NestFactory.create(Empty, new FastifyAdapter(), { logger: false });
  try {
    await app.listen(0, '127.0.0.1');
    const options = { url: gw.url, token: INTERNAL_TOKEN, secret: HOOK_SECRET };
    assert.throws(() => new SwitchboardAdapter(app, options), /already started.*before app\.init\(\) \/ app\.listen\(\)/);
  } finally {
    await app.close();
  }
});
