// The adapter in-process, with gateways declared in plain JavaScript (decorators applied by hand):
// its startup checks and the parts of Nest's handler contract the example does not exercise.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { GatewaySocket, HOOK_SECRET, INTERNAL_TOKEN, PACKAGE_DIR, startFakeGateway } from './helpers.mjs';

const require = createRequire(join(PACKAGE_DIR, 'package.json'));
require('reflect-metadata');
const { Module, ParseIntPipe, UnauthorizedException, UseInterceptors } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { WebSocketGateway, SubscribeMessage, MessageBody, ConnectedSocket, WebSocketServer, WsException, Ack } = require('@nestjs/websockets');
const { of, from } = require('rxjs');
const { map } = require('rxjs/operators');
const express = require('express');
const { SwitchboardAdapter } = require(join(PACKAGE_DIR, 'dist', 'index.js'));

/** Applies method decorators by hand, as TypeScript would. */
function method(target, name, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, name);
  for (const decorate of decorators) decorate(target.prototype, name, descriptor);
}

function moduleOf(...providers) {
  class TestModule {}
  Module({ providers })(TestModule);
  return TestModule;
}

const options = (gw) => ({ url: gw.url, token: INTERNAL_TOKEN, secret: HOOK_SECRET });

async function appWith(gw, providers, { before } = {}) {
  const app = await NestFactory.create(moduleOf(...providers), { logger: false });
  before?.(app);
  const adapter = new SwitchboardAdapter(app, options(gw));
  app.useWebSocketAdapter(adapter);
  await app.listen(0, '127.0.0.1');
  return { app, adapter, url: await app.getUrl() };
}

let gw;
before(async () => {
  gw = await startFakeGateway();
});
after(async () => {
  await gw?.close();
});

describe('startup', () => {
  test('the options are checked', async () => {
    const app = await NestFactory.create(moduleOf(), { logger: false });
    assert.throws(() => new SwitchboardAdapter(app, { token: 't', secret: 's' }), /options\.url/);
    assert.throws(() => new SwitchboardAdapter(app, { url: gw.url, secret: 's' }), /INTERNAL_API_TOKEN/);
    assert.throws(() => new SwitchboardAdapter(app, { url: gw.url, token: 't' }), /EVENT_HOOK_SECRET/);
    await app.close();
  });

  test('a JSON body parser mounted before the adapter fails loudly at startup', async () => {
    const app = await NestFactory.create(moduleOf(), { logger: false });
    app.use(express.json());
    assert.throws(() => new SwitchboardAdapter(app, options(gw)), /JSON body parser is already mounted/);
    await app.close();
  });

  test('an application context without HTTP is refused', async () => {
    const context = await NestFactory.createApplicationContext(moduleOf(), { logger: false });
    assert.throws(() => new SwitchboardAdapter(context, options(gw)), /needs an HTTP application/);
    await context.close();
  });

  test('an HTTP platform other than Express and Fastify is refused, naming both', () => {
    const app = { getHttpAdapter: () => ({ getType: () => 'koa', getInstance: () => ({}) }) };
    assert.throws(
      () => new SwitchboardAdapter(app, options(gw)),
      /supports Express \(@nestjs\/platform-express\) and Fastify \(@nestjs\/platform-fastify\); this app runs on koa/,
    );
  });

  test('a RegExp namespace is refused with a clear error', async () => {
    class Dynamic {
      hello() {
        return 1;
      }
    }
    method(Dynamic, 'hello', SubscribeMessage('hello'));
    WebSocketGateway({ namespace: /^\/dyn-\d+$/ })(Dynamic);
    const app = await NestFactory.create(moduleOf(Dynamic), { logger: false });
    app.useWebSocketAdapter(new SwitchboardAdapter(app, options(gw)));
    await assert.rejects(app.init(), /dynamic namespaces are not supported/);
    await app.close().catch(() => {});
  });
});

describe('handlers', () => {
  const seen = { connections: 0, afterInit: null, disconnects: [] };
  let running;

  class Unit {
    afterInit(server) {
      seen.afterInit = server.name;
    }

    handleConnection(client) {
      seen.connections += 1;
      client.data.connectedAt = 'now';
      client.join('welcome'); // sent once the connection is answered
      client.emit('hello', { id: client.id });
    }

    handleDisconnect(client, reason) {
      seen.disconnects.push({ id: client.id, reason, data: client.data });
    }

    first() {
      return of(null, 1, 2);
    }

    many(body) {
      return body;
    }

    none() {}

    boom() {
      throw new Error('a detail the client must not see');
    }

    objectError() {
      throw new WsException({ code: 'out_of_stock', message: 'gone' });
    }

    errorEmit(client) {
      client.emit('error', { code: 'custom_code', message: 'told you' });
    }

    whoAmI(client) {
      return {
        id: client.id,
        nsp: client.nsp.name,
        rooms: [...client.rooms],
        auth: client.handshake.auth,
        time: typeof client.handshake.time,
        data: client.data,
        connected: client.connected,
      };
    }

    async slow(client) {
      this.server.of('/elsewhere').to('r1').except('r2').emit('x', 1);
      client.broadcast.emit('y', 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { name: this.server.name };
    }

    promised() {
      return from(Promise.resolve('later'));
    }

    piped(n) {
      return { n, type: typeof n };
    }

    intercepted() {
      return 'inner';
    }

    manual(body, ack) {
      setTimeout(() => ack({ manual: body }), 20);
      return 'not the ack';
    }
  }
  method(Unit, 'piped', SubscribeMessage('piped'));
  MessageBody(new ParseIntPipe())(Unit.prototype, 'piped', 0);
  const wrap = { intercept: (_context, next) => next.handle().pipe(map((value) => ({ wrapped: value }))) };
  method(Unit, 'intercepted', SubscribeMessage('intercepted'), UseInterceptors(wrap));
  method(Unit, 'manual', SubscribeMessage('manual'));
  MessageBody()(Unit.prototype, 'manual', 0);
  Ack()(Unit.prototype, 'manual', 1);
  method(Unit, 'first', SubscribeMessage('first'));
  method(Unit, 'many', SubscribeMessage('many'));
  MessageBody()(Unit.prototype, 'many', 0);
  method(Unit, 'none', SubscribeMessage('none'));
  method(Unit, 'boom', SubscribeMessage('boom'));
  method(Unit, 'objectError', SubscribeMessage('object-error'));
  method(Unit, 'errorEmit', SubscribeMessage('error-emit'));
  ConnectedSocket()(Unit.prototype, 'errorEmit', 0);
  method(Unit, 'whoAmI', SubscribeMessage('who'));
  ConnectedSocket()(Unit.prototype, 'whoAmI', 0);
  method(Unit, 'slow', SubscribeMessage('slow'));
  ConnectedSocket()(Unit.prototype, 'slow', 0);
  method(Unit, 'promised', SubscribeMessage('promised'));
  WebSocketServer()(Unit.prototype, 'server');
  WebSocketGateway({ namespace: 'unit' })(Unit);

  class Strict {
    handleConnection(client) {
      if (client.handshake.auth.mode === 'ws') throw new WsException('go away');
      if (client.handshake.auth.mode === 'bug') throw new TypeError('internal detail');
      if (client.handshake.auth.mode === 'http') throw new UnauthorizedException('token expired');
    }

    ok() {
      return 'ok';
    }
  }
  method(Strict, 'ok', SubscribeMessage('ok'));
  WebSocketGateway({ namespace: '/strict' })(Strict);

  before(async () => {
    running = await appWith(gw, [Unit, Strict]);
  });
  after(async () => {
    await running?.app.close();
  });

  const socketOn = async (namespace = '/unit', token = 'tok') => {
    const socket = new GatewaySocket(gw, { userId: 'u1', namespace, token });
    const answer = await socket.connect(running);
    // handleConnection's join and emit on the socket itself follow the answer: let them land.
    if (answer.status === 200 && namespace === '/unit') {
      await gw.waitFor((calls) => calls.some((c) => c.body.event === 'hello' && c.body.rooms?.[0] === socket.id));
    }
    return { socket, answer };
  };

  test('priming runs neither handleConnection nor handleDisconnect; afterInit gets the server', () => {
    assert.equal(seen.connections, 0);
    assert.equal(seen.disconnects.length, 0);
    assert.equal(seen.afterInit, '/unit');
  });

  test('a connection call runs handleConnection; calls on the socket itself are sent after the answer', async () => {
    const { socket, answer } = await socketOn();
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { data: { connectedAt: 'now' } });
    assert.equal(seen.connections, 1);
    await gw.waitFor((calls) => calls.some((c) => c.op === 'join' && c.body.rooms?.[0] === socket.id)
      && calls.some((c) => c.op === 'emit' && c.body.event === 'hello' && c.body.rooms?.[0] === socket.id));
  });

  test('the first value that is not null is the ack (Observable)', async () => {
    const { socket } = await socketOn();
    assert.deepEqual(await socket.emit(running, 'first'), { status: 200, body: 1 });
    assert.deepEqual(await socket.emit(running, 'promised'), { status: 200, body: 'later' });
  });

  test('pipes, interceptors and @Ack() run as with socket.io', async () => {
    const { socket } = await socketOn();
    assert.deepEqual((await socket.emit(running, 'piped', '42')).body, { n: 42, type: 'number' });
    assert.deepEqual((await socket.emit(running, 'intercepted')).body, { wrapped: 'inner' });
    assert.deepEqual((await socket.emit(running, 'manual', 'x')).body, { manual: 'x' });
  });

  test('several arguments are the body as an array; one is itself; nothing returned is 204', async () => {
    const { socket } = await socketOn();
    assert.deepEqual((await socket.emit(running, 'many', 'a', 2)).body, ['a', 2]);
    assert.deepEqual((await socket.emit(running, 'many', { a: 1 })).body, { a: 1 });
    assert.equal((await socket.emit(running, 'none')).status, 204);
  });

  test('an unknown error goes through Nest\'s filter: the ack says "Internal server error", nothing more', async () => {
    const { socket } = await socketOn();
    const answer = await socket.emit(running, 'boom');
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.body, { error: { code: 'ws_exception', message: 'Internal server error' } });
  });

  test('a WsException with an object keeps its snake_case code', async () => {
    const { socket } = await socketOn();
    const answer = await socket.emit(running, 'object-error');
    assert.deepEqual(answer, { status: 400, body: { error: { code: 'out_of_stock', message: 'gone' } } });
  });

  test('client.emit("error") becomes the ack\'s error and is not sent (the gateway reserves the name)', async () => {
    const { socket } = await socketOn();
    const mark = gw.calls.length;
    const answer = await socket.emit(running, 'error-emit');
    assert.deepEqual(answer, { status: 400, body: { error: { code: 'custom_code', message: 'told you' } } });
    assert.equal(gw.since(mark).length, 0);
  });

  test('the client object is the socket of the call', async () => {
    const { socket } = await socketOn('/unit', 'abc');
    const answer = await socket.emit(running, 'who');
    assert.equal(answer.body.id, socket.id);
    assert.equal(answer.body.nsp, '/unit');
    assert.deepEqual(answer.body.rooms, [socket.id]);
    assert.deepEqual(answer.body.auth, { token: 'abc' });
    assert.equal(answer.body.time, 'string');
    assert.deepEqual(answer.body.data, { connectedAt: 'now' });
    assert.equal(answer.body.connected, true);
  });

  test('calls made by a handler are made before its ack; server.of() and client.broadcast target as socket.io does', async () => {
    const { socket } = await socketOn();
    const mark = gw.calls.length;
    const answer = await socket.emit(running, 'slow');
    assert.deepEqual(answer.body, { name: '/unit' });
    const calls = gw.since(mark);
    assert.deepEqual(calls.map((c) => [c.body.namespace, c.body.event, c.body.rooms, c.body.except]), [
      ['/elsewhere', 'x', ['r1'], ['r2']],
      ['/unit', 'y', undefined, [socket.id]],
    ]);
  });

  test('concurrent calls for different sockets each see their own client', async () => {
    const sockets = await Promise.all(Array.from({ length: 8 }, (_, i) => socketOn('/unit', `t${i}`)));
    const answers = await Promise.all(sockets.map(({ socket }) => socket.emit(running, 'who')));
    answers.forEach((answer, i) => {
      assert.equal(answer.body.id, sockets[i].socket.id);
      assert.deepEqual(answer.body.auth, { token: `t${i}` });
    });
  });

  test('a disconnect call runs handleDisconnect with the socket and the reason', async () => {
    const { socket } = await socketOn();
    const answer = await socket.disconnect(running, 'transport close');
    assert.equal(answer.status, 204);
    assert.deepEqual(seen.disconnects.at(-1), { id: socket.id, reason: 'transport close', data: { connectedAt: 'now' } });
  });

  test('handleConnection throwing a WsException or HttpException refuses with its message; any other error with a plain one', async () => {
    const ws = new GatewaySocket(gw, { userId: 'u2', namespace: '/strict' });
    ws.handshake.auth = { mode: 'ws' };
    assert.deepEqual(await ws.connect(running), { status: 403, body: { error: { code: 'ws_exception', message: 'go away' } } });
    const bug = new GatewaySocket(gw, { userId: 'u3', namespace: '/strict' });
    bug.handshake.auth = { mode: 'bug' };
    assert.deepEqual(await bug.connect(running), { status: 403, body: { error: { code: 'connection_refused', message: 'the server refused the connection' } } });
    const http = new GatewaySocket(gw, { userId: 'u5', namespace: '/strict' });
    http.handshake.auth = { mode: 'http' };
    assert.deepEqual(await http.connect(running), { status: 401, body: { error: { code: 'unauthorized', message: 'token expired' } } });
    const fine = new GatewaySocket(gw, { userId: 'u4', namespace: '/strict' });
    assert.equal((await fine.connect(running)).status, 200);
    assert.deepEqual(await fine.emit(running, 'ok'), { status: 200, body: 'ok' });
  });

  test('the server object refuses what cannot work at the edge, with a reason', () => {
    const server = running.app.get(Unit).server;
    assert.throws(() => server.use(() => {}), /connection/);
    assert.throws(() => server.serverSideEmit('x'), /serverSideEmit/);
    assert.equal(server.of('other').name, '/other');
  });
});
