// Tests of @switchboard/emitter against a fake gateway: a node:http server on 127.0.0.1 that
// records every request (op, headers, JSON body) and answers what the test's `respond` says.
// They check what the gateway receives (selectors, bodies, order, one request at a time) and the
// habits around failures (retries, the error listener, no unhandled rejections).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

import { Emitter, EmitterError, RemoteSocket, BroadcastOperator } from '../src/index.js';

const TOKEN = 'test-token';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ok = () => ({ status: 200, body: { sockets: 1 } });

/**
 * Starts the fake gateway. `respond(record, requests)` (may be async) returns
 * `{status = 200, body, headers, delayMs}` or `'hang'` (never answer).
 */
async function startGateway(respond = ok) {
  const gateway = { requests: [], inFlight: 0, maxInFlight: 0, respond };
  const server = createServer(async (req, res) => {
    gateway.inFlight += 1;
    gateway.maxInFlight = Math.max(gateway.maxInFlight, gateway.inFlight);
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const record = { op: req.url.split('/').pop(), path: req.url, headers: req.headers, body: JSON.parse(raw) };
    gateway.requests.push(record);
    const reply = await gateway.respond(record, gateway.requests);
    if (reply === 'hang') {
      gateway.inFlight -= 1;
      return;
    }
    if (reply.delayMs) await sleep(reply.delayMs);
    gateway.inFlight -= 1;
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
    res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  gateway.url = `http://127.0.0.1:${server.address().port}`;
  gateway.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return gateway;
}

async function withGateway(respond, fn) {
  const gateway = await startGateway(respond);
  try {
    await fn(gateway, new Emitter({ url: gateway.url, token: TOKEN }));
  } finally {
    await gateway.close();
  }
}

/** Replaces console.error while `fn` runs; resolves to the calls it received. */
async function capturingConsoleError(fn) {
  const calls = [];
  const original = console.error;
  console.error = (...args) => calls.push(args);
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return calls;
}

test('every op sends the right selector and body, with the bearer token', () => withGateway(ok, async (gw, io) => {
  io.emit('hello', 1, 'two');
  io.of('chat').to('room-1').except('a~1').emit('new-message', { text: 'hi' });
  io.of('/chat').in(['room-1', 'room-2']).to('room-1').socketsJoin('room-3');
  io.in('room-1').socketsLeave(['room-1']);
  io.of('/chat').in('a~2').disconnectSockets(true);
  io.disconnectSockets();
  io.volatile.emit('maintenance', { at: '02:00' });
  io.toUser('alice').toUser(['bob']).compress(true).emit('order-update', { id: 7 });
  io.of('/chat').to('a~3').setData({ role: 'admin' });
  await io.flush();

  assert.deepEqual(gw.requests.map((r) => [r.op, r.body]), [
    ['emit', { namespace: '/', event: 'hello', args: [1, 'two'], volatile: false }],
    ['emit', { namespace: '/chat', rooms: ['room-1'], except: ['a~1'], event: 'new-message', args: [{ text: 'hi' }], volatile: false }],
    ['join', { namespace: '/chat', rooms: ['room-1', 'room-2'], join: ['room-3'] }],
    ['leave', { namespace: '/', rooms: ['room-1'], leave: ['room-1'] }],
    ['disconnect', { namespace: '/chat', rooms: ['a~2'], close: true }],
    ['disconnect', { namespace: '/', close: false }],
    ['emit', { namespace: '/', event: 'maintenance', args: [{ at: '02:00' }], volatile: true }],
    ['emit', { namespace: '/', users: ['alice', 'bob'], event: 'order-update', args: [{ id: 7 }], volatile: false }],
    ['data', { namespace: '/chat', socket_id: 'a~3', data: { role: 'admin' } }],
  ]);
  for (const request of gw.requests) {
    assert.equal(request.path, `/internal/v1/socketio/${request.op}`);
    assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(request.headers['content-type'], 'application/json');
  }
}));

test('operators are immutable and awaiting gives the gateway answer', () => withGateway(
  () => ({ status: 200, body: { sockets: 3 } }),
  async (gw, io) => {
    const room = io.to('room-1');
    const wider = room.to('room-2').volatile;
    assert.ok(wider instanceof BroadcastOperator);
    assert.notEqual(wider, room);
    assert.deepEqual(await room.emit('a'), { sockets: 3 });
    await wider.emit('b');
    assert.deepEqual(gw.requests[0].body.rooms, ['room-1']);
    assert.equal(gw.requests[0].body.volatile, false);
    assert.deepEqual(gw.requests[1].body.rooms, ['room-1', 'room-2']);
    assert.equal(io.of('chat').nsp, '/chat');
  },
));

test('an emit is sent when made, awaited or not, and returns a thenable that is not a Promise', () => withGateway(ok, async (gw, io) => {
  const outcome = io.emit('fire-and-forget');
  assert.ok(outcome);
  assert.equal(typeof outcome.then, 'function');
  assert.ok(!(outcome instanceof Promise));
  await io.flush();
  assert.equal(gw.requests.length, 1);
}));

test('50 un-awaited emits arrive in order, one request at a time, despite random delays', () => withGateway(
  () => ({ status: 200, body: { sockets: 1 }, delayMs: Math.floor(Math.random() * 15) }),
  async (gw, io) => {
    for (let i = 0; i < 50; i += 1) {
      const target = i % 3 === 0 ? io.of('/chat') : io.to(`room-${i}`);
      target.emit('seq', i);
    }
    await io.of('/other').flush();
    assert.deepEqual(gw.requests.map((r) => r.body.args[0]), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(gw.maxInFlight, 1);
  },
));

test('a 500 is retried before the next call runs, so order holds', () => withGateway(
  (record, requests) => {
    const first = requests.filter((r) => r.body.event === 'b').length === 1;
    return record.body.event === 'b' && first ? { status: 500, body: { error: { code: 'internal', message: 'boom' } } } : ok();
  },
  async (gw, io) => {
    io.emit('a');
    const b = io.emit('b');
    io.emit('c');
    assert.deepEqual(await b, { sockets: 1 });
    await io.flush();
    assert.deepEqual(gw.requests.map((r) => r.body.event), ['a', 'b', 'b', 'c']);
  },
));

test('a 429 waits for Retry-After seconds before retrying', () => withGateway(
  (record, requests) => (requests.length === 1
    ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down' } } }
    : ok()),
  async (gw, io) => {
    const started = Date.now();
    assert.deepEqual(await io.emit('x'), { sockets: 1 });
    assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms`);
    assert.equal(gw.requests.length, 2);
  },
));

test('a 400 is not retried: the awaited call rejects with the code and the listener hears it', () => withGateway(
  () => ({ status: 400, body: { error: { code: 'validation', message: 'event name too long' } } }),
  async (gw, io) => {
    const heard = [];
    const listener = (error) => heard.push(error);
    io.of('/chat').on('error', listener);
    await assert.rejects(io.emit('x'), (error) => {
      assert.ok(error instanceof EmitterError);
      assert.equal(error.code, 'validation');
      assert.equal(error.status, 400);
      assert.equal(error.op, 'emit');
      assert.equal(error.message, 'event name too long');
      return true;
    });
    assert.equal(gw.requests.length, 1);
    assert.equal(heard.length, 1);
    assert.equal(heard[0].code, 'validation');

    io.off('error', listener);
    const logged = await capturingConsoleError(async () => {
      await io.emit('y').then(() => assert.fail('should reject'), () => {});
    });
    assert.equal(heard.length, 1);
    assert.equal(logged.length, 1);
  },
));

test('an un-awaited failure with no listener is logged once and is no unhandled rejection', () => withGateway(
  () => ({ status: 403, body: { error: { code: 'forbidden', message: 'no' } } }),
  async (gw, io) => {
    const unhandled = [];
    const onUnhandled = (reason) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const logged = await capturingConsoleError(async () => {
        io.to('room-1').emit('x');
        io.socketsJoin('r');
        await io.flush();
        await sleep(20);
      });
      assert.equal(logged.length, 2);
      assert.equal(logged[0][1].code, 'forbidden');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
  },
));

test('a throwing error listener is logged, not propagated', () => withGateway(
  () => ({ status: 400, body: { error: { code: 'validation', message: 'bad' } } }),
  async (gw, io) => {
    io.on('error', () => {
      throw new Error('listener bug');
    });
    const logged = await capturingConsoleError(async () => {
      io.emit('x');
      await io.flush();
    });
    assert.equal(logged.length, 1);
    assert.equal(logged[0][1].message, 'listener bug');
  },
));

test('what socket.io refuses throws synchronously and sends nothing', () => withGateway(ok, async (gw, io) => {
  for (const name of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']) {
    assert.throws(() => io.emit(name), { message: `"${name}" is a reserved event name` });
    assert.throws(() => io.to('r').emit(name), { message: `"${name}" is a reserved event name` });
  }
  assert.throws(() => io.emit('x', 1, () => {}), { message: 'Callbacks are not supported when broadcasting' });
  assert.throws(() => io.serverSideEmit('ping'), /not supported over HTTP/);
  assert.throws(() => io.emit('x', Buffer.from('hi')), /binary/);
  assert.throws(() => io.emit('x', { nested: [new Uint8Array(2)] }), /binary/);
  assert.throws(() => io.emit('x', new ArrayBuffer(4)), /binary/);
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => io.emit('x', cyclic), TypeError);
  assert.throws(() => io.emit(42), TypeError);
  assert.throws(() => io.to('room-1').setData({}), /exactly one socket id/);
  assert.throws(() => io.to(['a~1', 'a~2']).setData({}), /exactly one socket id/);
  assert.throws(() => io.toUser(), /at least one user id/);
  assert.throws(() => io.to(''), TypeError);
  assert.throws(() => io.on('message', () => {}), TypeError);
  assert.throws(() => new Emitter({ token: TOKEN }), /options\.url/);
  assert.throws(() => new Emitter({ url: gw.url }), /options\.token/);
  await io.flush();
  assert.equal(gw.requests.length, 0);
}));

test('fetchSockets is queued in order, pages through next_cursor and returns RemoteSockets that act on their id', () => withGateway(
  (record) => {
    if (record.op !== 'fetch') return ok();
    if (record.body.cursor === null) {
      return {
        status: 200,
        body: {
          sockets: [
            { id: 'a~1', user_id: 'alice', namespace: '/chat', rooms: ['room-1', 'a~1'], data: { n: 1 }, handshake: { query: {} } },
            { id: 'b~1', user_id: 'bob', namespace: '/chat', rooms: ['room-1'], data: null, handshake: {} },
          ],
          next_cursor: 'page-2',
        },
      };
    }
    return { status: 200, body: { sockets: [{ id: 'c~1', user_id: 'carol', namespace: '/chat', rooms: [], data: null, handshake: {} }], next_cursor: null } };
  },
  async (gw, io) => {
    io.emit('before');
    const fetching = io.of('/chat').in('room-1').fetchSockets();
    io.emit('after');
    const sockets = await fetching;
    await io.flush();
    assert.deepEqual(gw.requests.map((r) => r.op), ['emit', 'fetch', 'fetch', 'emit']);
    assert.deepEqual(gw.requests.slice(1, 3).map((r) => r.body), [
      { namespace: '/chat', rooms: ['room-1'], limit: 100, cursor: null },
      { namespace: '/chat', rooms: ['room-1'], limit: 100, cursor: 'page-2' },
    ]);
    assert.deepEqual(sockets.map((s) => s.id), ['a~1', 'b~1', 'c~1']);
    const [alice] = sockets;
    assert.ok(alice instanceof RemoteSocket);
    assert.equal(alice.userId, 'alice');
    assert.equal(alice.namespace, '/chat');
    assert.deepEqual(alice.rooms, new Set(['room-1', 'a~1']));
    assert.deepEqual(alice.data, { n: 1 });
    assert.deepEqual(alice.handshake, { query: {} });

    gw.requests.length = 0;
    alice.emit('private', 'hi');
    alice.join('room-9');
    alice.leave('room-1');
    alice.setData({ n: 2 });
    await alice.disconnect(true);
    assert.deepEqual(gw.requests.map((r) => [r.op, r.body]), [
      ['emit', { namespace: '/chat', rooms: ['a~1'], event: 'private', args: ['hi'], volatile: false }],
      ['join', { namespace: '/chat', rooms: ['a~1'], join: ['room-9'] }],
      ['leave', { namespace: '/chat', rooms: ['a~1'], leave: ['room-1'] }],
      ['data', { namespace: '/chat', socket_id: 'a~1', data: { n: 2 } }],
      ['disconnect', { namespace: '/chat', rooms: ['a~1'], close: true }],
    ]);
  },
));

test('an attempt that outlasts timeoutMs is aborted and retried', async () => {
  const gw = await startGateway((record, requests) => (requests.length === 1 ? 'hang' : ok()));
  try {
    const io = new Emitter({ url: gw.url, token: TOKEN, timeoutMs: 150 });
    io.on('error', () => assert.fail('the retry succeeded; nothing to report'));
    assert.deepEqual(await io.emit('slow'), { sockets: 1 });
    assert.equal(gw.requests.length, 2);
  } finally {
    await gw.close();
  }
});

test('a network error is retried up to 5 attempts, then rejects with network_error', async () => {
  let attempts = 0;
  const io = new Emitter({
    url: 'http://gateway.invalid/',
    token: TOKEN,
    fetch: async (url, init) => {
      attempts += 1;
      assert.equal(url, 'http://gateway.invalid/internal/v1/socketio/emit');
      assert.equal(init.headers.authorization, `Bearer ${TOKEN}`);
      throw new TypeError('fetch failed');
    },
  });
  const heard = [];
  io.on('error', (error) => heard.push(error.code));
  await assert.rejects(io.emit('x'), { name: 'EmitterError', code: 'network_error', status: null });
  assert.equal(attempts, 5);
  assert.deepEqual(heard, ['network_error']);
});
