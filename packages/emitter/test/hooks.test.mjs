// Tests of @switchboard/emitter/hooks: signatures made here with node:crypto exactly as the
// gateway makes them (src/hook.rs `sign`), checked by verifySignature; HookRouter's dispatch and
// answers through `handle`; and `node()` behind a real node:http server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, request } from 'node:http';
import { execFileSync } from 'node:child_process';

import { verifySignature, HookRouter, HookError } from '../src/hooks.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const nowSeconds = () => Math.floor(Date.now() / 1000);

function sign(rawBody, t = nowSeconds(), secret = SECRET) {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex')}`;
}

function hookBody(fields) {
  return JSON.stringify({
    kind: 'event',
    event: 'send-message',
    args: [],
    socket_id: 'a~1',
    conn_id: 'a~1',
    namespace: '/chat',
    user_id: 'alice',
    data: null,
    sent_at: Date.now(),
    ...fields,
  });
}

async function handled(router, fields) {
  const raw = hookBody(fields);
  return router.handle(raw, sign(raw));
}

test('verifySignature accepts the gateway signature of the exact bytes', async () => {
  const raw = hookBody({ args: [{ text: 'héllo' }] });
  assert.equal(await verifySignature(raw, sign(raw), SECRET), true);
  assert.equal(await verifySignature(new TextEncoder().encode(raw), sign(raw), SECRET), true);
  assert.equal(await verifySignature(Buffer.from(raw), ` ${sign(raw).replace(',', ' , ')} `, SECRET), true);
});

test('verifySignature refuses tampered bodies, other secrets, stale t and malformed headers', async () => {
  const raw = hookBody({});
  const t = nowSeconds();
  assert.equal(await verifySignature(`${raw} `, sign(raw, t), SECRET), false);
  assert.equal(await verifySignature(raw, sign(raw, t, 'another-secret'), SECRET), false);
  assert.equal(await verifySignature(raw, sign(raw, t - 301), SECRET), false);
  assert.equal(await verifySignature(raw, sign(raw, t + 301), SECRET), false);
  assert.equal(await verifySignature(raw, sign(raw, t - 1000), SECRET, { toleranceSeconds: 2000 }), true);
  assert.equal(await verifySignature(raw, sign(raw, t), SECRET, { now: (t + 600) * 1000 }), false);
  const v1 = sign(raw, t).split('v1=')[1];
  for (const header of [
    undefined,
    null,
    '',
    `t=${t}`,
    `v1=${v1}`,
    `t=abc,v1=${v1}`,
    `t=${t},v1=${v1.slice(2)}`,
    `t=${t},v1=${v1.slice(0, -2)}zz`,
    `t=${t},v1=${v1}00`,
    `t=${t},t=${t},v1=${v1}`,
    `t=${t};v1=${v1}`,
    `${t},${v1}`,
  ]) {
    assert.equal(await verifySignature(raw, header, SECRET), false, `header ${header}`);
  }
  await assert.rejects(verifySignature({ parsed: true }, sign(raw), SECRET), TypeError);
});

test('verifySignature gives the same verdicts through Web Crypto, where node:crypto is not handed out', () => {
  const raw = hookBody({ args: [{ text: 'héllo' }] });
  const cases = [
    [raw, sign(raw), SECRET],
    [`${raw} `, sign(raw), SECRET],
    [raw, sign(raw), `${SECRET}?`],
    [raw, sign(raw), SECRET],
  ];
  const script = `
    delete process.getBuiltinModule;
    const { verifySignature } = await import(${JSON.stringify(new URL('../src/hooks.js', import.meta.url).href)});
    const cases = JSON.parse(process.argv[1]);
    const verdicts = [];
    for (const [body, header, secret] of cases) verdicts.push(await verifySignature(body, header, secret));
    console.log(JSON.stringify(verdicts));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(cases)], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), [true, false, false, true], 'the same key again (cached), a tampered body, another secret');
});

test('HookRouter dispatches by kind and maps answers', async () => {
  const router = new HookRouter({ secret: SECRET });
  const seen = [];
  router
    .on('send-message', (call) => {
      seen.push(call);
      return { id: 'm1' };
    })
    .on('typing', () => undefined)
    .on('refuse', () => {
      throw new HookError('not_member', 'join the room first', 403);
    })
    .on('refuse-default', () => {
      throw new HookError('bad_text', 'empty');
    })
    .on('crash', () => {
      throw new Error('database down');
    })
    .onConnection(async (call) => {
      seen.push(call);
      return { data: { plan: 'pro' } };
    });

  let answer = await handled(router, { args: [{ room: 'r1', text: 'hi' }] });
  assert.deepEqual(answer, { status: 200, headers: { 'content-type': 'application/json' }, body: '{"id":"m1"}' });
  assert.equal(seen[0].socketId, 'a~1');
  assert.equal(seen[0].userId, 'alice');
  assert.deepEqual(seen[0].args, [{ room: 'r1', text: 'hi' }]);
  assert.equal(seen[0].namespace, '/chat');

  answer = await handled(router, { event: 'typing' });
  assert.deepEqual(answer, { status: 204, headers: {}, body: null });

  answer = await handled(router, { event: 'refuse' });
  assert.equal(answer.status, 403);
  assert.deepEqual(JSON.parse(answer.body), { error: { code: 'not_member', message: 'join the room first' } });

  answer = await handled(router, { event: 'refuse-default' });
  assert.equal(answer.status, 400);
  assert.equal(JSON.parse(answer.body).error.code, 'bad_text');

  const original = console.error;
  const logged = [];
  console.error = (...args) => logged.push(args);
  try {
    answer = await handled(router, { event: 'crash' });
  } finally {
    console.error = original;
  }
  assert.equal(answer.status, 500);
  assert.equal(JSON.parse(answer.body).error.code, 'handler_failed');
  assert.doesNotMatch(answer.body, /database down/);
  assert.equal(logged.length, 1);

  answer = await handled(router, { event: 'nobody-listens' });
  assert.equal(answer.status, 404);
  assert.equal(JSON.parse(answer.body).error.code, 'unknown_event');

  answer = await handled(router, { kind: 'connection', event: 'connection', handshake: { auth: { v: 2 } } });
  assert.deepEqual(JSON.parse(answer.body), { data: { plan: 'pro' } });
  assert.equal(answer.status, 200);
  assert.deepEqual(seen[1].handshake, { auth: { v: 2 } });

  answer = await handled(router, { kind: 'disconnect', event: 'disconnect', reason: 'transport close' });
  assert.deepEqual(answer, { status: 204, headers: {}, body: null });

  const raw = hookBody({});
  answer = await router.handle(raw, sign(raw, nowSeconds() - 3600));
  assert.equal(answer.status, 401);
  assert.equal(JSON.parse(answer.body).error.code, 'bad_signature');
  assert.equal(seen.length, 2);
});

test('onDisconnect receives the reason; unregistered connection answers 204', async () => {
  const reasons = [];
  const router = new HookRouter({ secret: SECRET }).onDisconnect((call) => {
    reasons.push([call.socketId, call.reason]);
  });
  assert.equal((await handled(router, { kind: 'connection', event: 'connection' })).status, 204);
  assert.equal((await handled(router, { kind: 'disconnect', event: 'disconnect', reason: 'ping timeout' })).status, 204);
  assert.deepEqual(reasons, [['a~1', 'ping timeout']]);
  assert.throws(() => router.on('connection', () => {}), /onConnection/);
  assert.throws(() => new HookRouter({}), /secret/);
});

/** POSTs `body` to `url` with node:http; resolves to `{status, headers, body}`. */
function post(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function withServer(listener, fn) {
  const server = createServer(listener);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn(`http://127.0.0.1:${server.address().port}/hook`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('node() answers over a real node:http server', async () => {
  const router = new HookRouter({ secret: SECRET }).on('send-message', (call) => ({ echo: call.args[0] }));
  await withServer(router.node(), async (url) => {
    const raw = hookBody({ args: ['hi'] });
    let res = await post(url, raw, { 'content-type': 'application/json', 'x-switchboard-signature': sign(raw) });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.body), { echo: 'hi' });

    res = await post(url, raw, { 'x-switchboard-signature': sign(`${raw}x`) });
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).error.code, 'bad_signature');

    res = await post(url, raw, {});
    assert.equal(res.status, 401);

    const big = hookBody({ args: ['x'.repeat(1024 * 1024)] });
    res = await post(url, big, { 'x-switchboard-signature': sign(big) });
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).error.code, 'too_large');

    res = await post(url, big, { 'x-switchboard-signature': sign(big), 'transfer-encoding': 'chunked' });
    assert.equal(res.status, 413);
  });
});

test('node() takes the bytes a body parser left in req.body, and refuses a parsed body', async () => {
  const router = new HookRouter({ secret: SECRET }).on('send-message', () => 'ok');
  const handler = router.node();
  const expressRaw = async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    req.body = Buffer.concat(chunks);
    req.body = req.url.endsWith('json') ? JSON.parse(req.body) : req.body;
    handler(req, res);
  };
  await withServer(expressRaw, async (url) => {
    const raw = hookBody({});
    let res = await post(url, raw, { 'x-switchboard-signature': sign(raw) });
    assert.equal(res.status, 200);
    assert.equal(res.body, '"ok"');

    res = await post(`${url}?json`, raw, { 'x-switchboard-signature': sign(raw) });
    assert.equal(res.status, 500);
    assert.equal(JSON.parse(res.body).error.code, 'raw_body_required');
  });
});
