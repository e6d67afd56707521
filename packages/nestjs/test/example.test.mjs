// The example app (examples/nest-chat, built with tsc, @nestjs/* 11 from npm) started for real as
// two child processes, driven by signed hook calls as the gateway makes them, against a fake
// gateway that records the internal API calls the adapter makes. No gateway process runs.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewaySocket, hook, jwt, sign, startExample, startFakeGateway } from './helpers.mjs';

let gw;
let appA;
let appB;

before(async () => {
  gw = await startFakeGateway();
  [appA, appB] = await Promise.all([startExample(gw.url, 'app A'), startExample(gw.url, 'app B')]);
});

after(async () => {
  await Promise.all([appA?.stop(), appB?.stop()]);
  await gw?.close();
});

async function connected(userId, namespace = '/chat', claims = {}) {
  const socket = new GatewaySocket(gw, { userId, namespace, token: jwt({ sub: userId, ...claims }) });
  const answer = await socket.connect(appA);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return socket;
}

describe('connection calls (handleConnection)', () => {
  test('a valid token in auth.token connects and sets socket.data.userId', async () => {
    const socket = new GatewaySocket(gw, { userId: 'alice', namespace: '/chat', token: jwt({ sub: 'alice' }) });
    const answer = await socket.connect(appA);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.data.userId, 'alice');
    assert.deepEqual(answer.body.data.roles, []);
  });

  test('"Bearer <jwt>" in auth.token and the authorization header both work', async () => {
    const bearer = new GatewaySocket(gw, { userId: 'bea', namespace: '/chat', token: `Bearer ${jwt({ sub: 'bea' })}` });
    assert.equal((await bearer.connect(appA)).body.data.userId, 'bea');
    const header = new GatewaySocket(gw, { userId: 'hal', namespace: '/chat' });
    header.handshake.headers.authorization = `Bearer ${jwt({ sub: 'hal' })}`;
    assert.equal((await header.connect(appB)).body.data.userId, 'hal');
  });

  test('an invalid or missing token is refused (client.disconnect() in handleConnection)', async () => {
    const forged = new GatewaySocket(gw, { userId: 'mallory', namespace: '/chat', token: jwt({ sub: 'mallory' }, 'another-secret-another-secret-xx') });
    const refused = await forged.connect(appA);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'disconnected');
    const none = new GatewaySocket(gw, { userId: 'nobody', namespace: '/chat' });
    const missing = await none.connect(appA);
    assert.equal(missing.status, 403);
    assert.equal(missing.body.error.code, 'disconnected');
  });

  test('a namespace no gateway serves is refused', async () => {
    const socket = new GatewaySocket(gw, { userId: 'alice', namespace: '/nowhere', token: jwt({ sub: 'alice' }) });
    const answer = await socket.connect(appA);
    assert.equal(answer.status, 404);
    assert.equal(answer.body.error.code, 'invalid_namespace');
  });
});

describe('the hook endpoint', () => {
  test('a bad, stale or missing signature is 401 and runs nothing', async () => {
    const socket = await connected('sig');
    const mark = gw.calls.length;
    const call = JSON.stringify({ kind: 'event', event: 'send-message', args: [{ roomId: 'r', content: 'x' }], namespace: '/chat', socket_id: socket.id, user_id: 'sig', data: { userId: 'sig' } });
    const wrongSecret = await hook(appA, null, { rawBody: call, signature: sign(call, { secret: 'not-the-secret-not-the-secret-xx' }) });
    assert.equal(wrongSecret.status, 401);
    assert.equal(wrongSecret.body.error.code, 'bad_signature');
    const stale = await hook(appA, null, { rawBody: call, signature: sign(call, { t: Math.floor(Date.now() / 1000) - 600 }) });
    assert.equal(stale.status, 401);
    const tampered = await hook(appA, null, { rawBody: call.replace('"x"', '"y"'), signature: sign(call) });
    assert.equal(tampered.status, 401);
    const missing = await hook(appA, null, { rawBody: call, signature: '' });
    assert.equal(missing.status, 401);
    assert.equal(gw.calls.length, mark, 'no gateway call was made');
  });

  test('the app\'s own JSON routes still get Nest\'s body parser (the hook route reads the raw body first)', async () => {
    const response = await fetch(`${appA.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'zoe' }),
    });
    assert.equal(response.status, 200);
    assert.match((await response.json()).token, /^ey/);
  });

  test('an unknown event is 404 unknown_event', async () => {
    const socket = await connected('unk');
    const answer = await socket.emit(appA, 'no-such-event', {});
    assert.equal(answer.status, 404);
    assert.equal(answer.body.error.code, 'unknown_event');
  });
});

describe('chat events (@SubscribeMessage through Nest)', () => {
  test('join-room: a join for the socket, then user-joined to the room except the socket, in that order', async () => {
    const socket = await connected('alice');
    const mark = gw.calls.length;
    const answer = await socket.emit(appA, 'join-room', { roomId: 'general' });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { success: true });
    const calls = gw.since(mark);
    assert.deepEqual(calls.map((c) => c.op), ['join', 'emit']);
    assert.deepEqual(calls[0].body, { namespace: '/chat', rooms: [socket.id], join: ['general'] });
    assert.equal(calls[1].body.event, 'user-joined');
    assert.deepEqual(calls[1].body.rooms, ['general']);
    assert.deepEqual(calls[1].body.except, [socket.id]);
    assert.deepEqual(calls[1].body.args, [{ userId: 'alice', roomId: 'general' }]);
    assert.equal(calls[1].body.namespace, '/chat');
  });

  test('send-message: the ack is the message with senderId from socket.data, and new-message goes to the room', async () => {
    const socket = await connected('bob');
    const mark = gw.calls.length;
    const answer = await socket.emit(appA, 'send-message', { roomId: 'general', content: 'hello' });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.senderId, 'bob');
    assert.equal(answer.body.content, 'hello');
    assert.equal(answer.body.roomId, 'general');
    assert.match(answer.body.id, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(answer.body.createdAt)));
    const calls = gw.since(mark);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].op, 'emit');
    assert.equal(calls[0].body.event, 'new-message');
    assert.deepEqual(calls[0].body.rooms, ['general']);
    assert.equal(calls[0].body.except, undefined);
    assert.deepEqual(calls[0].body.args, [answer.body]);
  });

  test('leave-room: a leave for the socket, then user-left to the others', async () => {
    const socket = await connected('lena');
    await socket.emit(appA, 'join-room', { roomId: 'lobby' });
    const mark = gw.calls.length;
    const answer = await socket.emit(appB, 'leave-room', { roomId: 'lobby' });
    assert.equal(answer.status, 200);
    const calls = gw.since(mark);
    assert.deepEqual(calls.map((c) => c.op), ['leave', 'emit']);
    assert.deepEqual(calls[0].body.leave, ['lobby']);
    assert.equal(calls[1].body.event, 'user-left');
    assert.deepEqual(calls[1].body.except, [socket.id]);
  });

  test('a WsException in a handler becomes the ack\'s error (400 ws_exception) and the filter\'s `exception` emit reaches the socket', async () => {
    const socket = await connected('eve');
    const mark = gw.calls.length;
    const answer = await socket.emit(appA, 'send-message', { roomId: 'general', content: '' });
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.body, { error: { code: 'ws_exception', message: 'content must be 1 to 4000 characters' } });
    const calls = gw.since(mark);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].body.event, 'exception');
    assert.deepEqual(calls[0].body.rooms, [socket.id]);
    assert.equal(calls[0].body.args[0].status, 'error');
    assert.equal(calls[0].body.args[0].message, 'content must be 1 to 4000 characters');
  });

  test('the guard refuses a non-admin (400 ws_exception) and lets an admin through', async () => {
    const user = await connected('ursula');
    const refused = await user.emit(appA, 'announce', { text: 'hi all' });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'ws_exception');
    assert.equal(refused.body.error.message, 'this needs the role admin');
    const admin = await connected('ada', '/chat', { roles: ['admin'] });
    const mark = gw.calls.length;
    const allowed = await admin.emit(appB, 'announce', { text: 'hi all' });
    assert.equal(allowed.status, 200);
    assert.deepEqual(allowed.body, { sent: true });
    const [emit] = gw.since(mark);
    assert.equal(emit.body.event, 'announcement');
    assert.equal(emit.body.rooms, undefined, 'to the whole namespace');
    assert.deepEqual(emit.body.args, [{ text: 'hi all', from: 'ada' }]);
  });

  test('a WsResponse is sent to the socket as its event and the ack is empty (204)', async () => {
    const socket = await connected('pat');
    const mark = gw.calls.length;
    const answer = await socket.emit(appA, 'ping', { n: 1 });
    assert.equal(answer.status, 204);
    const [emit] = gw.since(mark);
    assert.equal(emit.op, 'emit');
    assert.equal(emit.body.event, 'pong');
    assert.deepEqual(emit.body.rooms, [socket.id]);
    assert.deepEqual(emit.body.args[0].echo, { n: 1 });
  });
});

describe('stateless across instances', () => {
  test('two app instances answer the same socket\'s calls consistently', async () => {
    const socket = new GatewaySocket(gw, { userId: 'sam', namespace: '/chat', token: jwt({ sub: 'sam' }) });
    assert.equal((await socket.connect(appA)).status, 200);

    // socket.data set by handleConnection on A is what B's handler sees (the gateway carries it).
    const sent = await socket.emit(appB, 'send-message', { roomId: 'general', content: 'from B' });
    assert.equal(sent.body.senderId, 'sam');

    // A handler on B changes socket.data: the adapter saves it at the gateway ...
    const mark = gw.calls.length;
    const set = await socket.emit(appB, 'set-nickname', { nickname: 'Sammy' });
    assert.deepEqual(set.body, { nickname: 'Sammy' });
    const [data] = gw.since(mark);
    assert.equal(data.op, 'data');
    assert.equal(data.body.socket_id, socket.id);
    assert.deepEqual(data.body.data, { userId: 'sam', roles: [], nickname: 'Sammy' });

    // ... so A sees it on the next call, and a handler that changes nothing saves nothing.
    const before = gw.calls.length;
    const who = await socket.emit(appA, 'whoami');
    assert.deepEqual(who.body, { userId: 'sam', nickname: 'Sammy', socketId: socket.id });
    assert.equal(gw.calls.length, before);

    // Joins on A, sends on B, leaves on A: each is the same socket at the gateway.
    await socket.emit(appA, 'join-room', { roomId: 'shared' });
    assert.ok(gw.sockets.get(`${socket.id}|/chat`).rooms.has('shared'));
    const other = await socket.emit(appB, 'send-message', { roomId: 'shared', content: 'still me' });
    assert.equal(other.body.senderId, 'sam');
    await socket.emit(appA, 'leave-room', { roomId: 'shared' });
    assert.ok(!gw.sockets.get(`${socket.id}|/chat`).rooms.has('shared'));
  });
});

describe('presence (handleConnection / handleDisconnect / fetchSockets)', () => {
  test('connect emits user-online, get-online-users lists socket.data, disconnect emits user-offline', async () => {
    const mark = gw.calls.length;
    const pia = await connected('pia', '/presence');
    const online = gw.since(mark).find((c) => c.op === 'emit' && c.body.event === 'user-online');
    assert.ok(online, 'user-online emitted');
    assert.equal(online.body.namespace, '/presence');
    assert.deepEqual(online.body.args, [{ userId: 'pia' }]);

    const quinn = await connected('quinn', '/presence');
    const list = await pia.emit(appB, 'get-online-users');
    assert.equal(list.status, 200);
    assert.ok(list.body.users.includes('pia') && list.body.users.includes('quinn'), JSON.stringify(list.body));
    assert.ok(gw.calls.some((c) => c.op === 'fetch' && c.body.namespace === '/presence'));

    const before = gw.calls.length;
    const gone = await quinn.disconnect(appB, 'transport close');
    assert.equal(gone.status, 204);
    const calls = gw.since(before);
    assert.deepEqual(calls.map((c) => c.op), ['fetch', 'emit']);
    assert.equal(calls[1].body.event, 'user-offline');
    assert.deepEqual(calls[1].body.args, [{ userId: 'quinn' }]);
    assert.equal(calls[1].body.namespace, '/presence');
  });

  test('no user-offline while the user has another socket', async () => {
    const first = await connected('rita', '/presence');
    await connected('rita', '/presence');
    const before = gw.calls.length;
    await first.disconnect(appA);
    assert.ok(!gw.since(before).some((c) => c.op === 'emit' && c.body.event === 'user-offline'));
  });
});

describe('the orders controller (HTTP → sockets)', () => {
  test('finds the user\'s sockets with fetchSockets() on /chat and emits order-update to each', async () => {
    const tab1 = await connected('olga');
    const tab2 = await connected('olga');
    await connected('someone-else');
    const mark = gw.calls.length;
    const response = await fetch(`${appB.url}/orders/olga/update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: 'o-42', status: 'shipped' }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { notified: 2 });
    await gw.waitFor((calls) => calls.slice(mark).filter((c) => c.body.event === 'order-update').length === 2);
    const calls = gw.since(mark);
    assert.equal(calls[0].op, 'fetch');
    assert.equal(calls[0].body.namespace, '/chat');
    const targets = calls.filter((c) => c.body.event === 'order-update').map((c) => c.body.rooms[0]).sort();
    assert.deepEqual(targets, [tab1.id, tab2.id].sort());
    for (const call of calls.filter((c) => c.body.event === 'order-update')) {
      assert.deepEqual(call.body.args, [{ orderId: 'o-42', status: 'shipped' }]);
    }
  });
});

test('the example page, the socket.io client bundle and the gateway URL are served', async () => {
  const page = await fetch(`${appA.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /io\(gatewayUrl \+ '\/chat', \{ auth: \{ token \} \}\)/);
  const bundle = await fetch(`${appA.url}/socket.io.min.js`);
  assert.equal(bundle.status, 200);
  assert.match(await bundle.text(), /socket\.io/i);
  assert.deepEqual(await (await fetch(`${appA.url}/config.json`)).json(), { gatewayUrl: gw.url });
});

test('the adapter never called the fake gateway with a wrong token', () => {
  assert.equal(gw.unauthorized, 0);
});
