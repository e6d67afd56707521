// The real python-socketio client (5.18, tests/python/requirements.txt, installed in .venv by
// `make venv`), unchanged but for the URL: its default transports (long-polling, then the move to
// a WebSocket), a polling-only client, and an expired token. tests/python/client.py is the
// client; it writes one JSON line per step on stdout, and this file drives it.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { root } from '../server.mjs';
import { BASE, createRoom, push, token, uid } from './helpers.mjs';

const PYTHON = join(root, '.venv', 'bin', 'python');
const SCRIPT = join(root, 'tests', 'python', 'client.py');
const STEP_MS = 30_000;

const children = new Set();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts tests/python/client.py; `next()` resolves with its next JSON line (rejecting on an
 * `{error}` line, on exit, or after STEP_MS), `exited` with its exit code.
 */
function python(...args) {
  assert.ok(existsSync(PYTHON), `${PYTHON} is missing: run \`make venv\``);
  const child = spawn(PYTHON, ['-u', SCRIPT, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const lines = [];
  const waiters = [];
  let closed = false;
  const exited = new Promise((resolve) => child.on('close', (code) => {
    closed = true;
    children.delete(child);
    resolve(code);
    for (const waiter of waiters.splice(0)) waiter.reject(new Error(`client.py exited (${code}) early; stderr:\n${stderr}`));
  }));
  const deliver = () => {
    while (lines.length && waiters.length) {
      const line = lines.shift();
      const waiter = waiters.shift();
      let value;
      try {
        value = JSON.parse(line);
      } catch {
        waiter.reject(new Error(`client.py wrote a line that is not JSON: ${line}`));
        continue;
      }
      if (value.error) waiter.reject(new Error(`client.py: ${value.error}\nstderr:\n${stderr}`));
      else waiter.resolve(value);
    }
  };
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    deliver();
  });
  const next = () => new Promise((resolve, reject) => {
    if (closed && !lines.length) {
      reject(new Error(`client.py exited (${child.exitCode}); stderr:\n${stderr}`));
      return;
    }
    const timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(waiter), 1);
      child.kill('SIGKILL');
      reject(new Error(`no line from client.py within ${STEP_MS} ms; stderr:\n${stderr}`));
    }, STEP_MS);
    const waiter = {
      resolve: (v) => { clearTimeout(timer); resolve(v); },
      reject: (e) => { clearTimeout(timer); reject(e); },
    };
    waiters.push(waiter);
    deliver();
  });
  return { child, next, exited };
}

/** The whole session of client.py `scenario`: connect, a push, room.join and room.send acks. */
async function session(scenario) {
  const user = uid('py');
  const room = await createRoom(user);
  const py = python(scenario, BASE, token(user), room);
  try {
    const ready = await py.next();
    assert.equal(ready.ready, true);
    const res = await push([user], 'order.shipped', { order: 1 });
    assert.equal(res.status, 200, res.text);
    const pushed = await py.next();
    assert.equal(pushed.event, 'order.shipped');
    assert.deepEqual(pushed.args[0], { order: 1 });
    assert.equal(typeof pushed.args[1], 'string', 'the second argument is the recovery offset');
    const joined = await py.next();
    assert.equal(joined.ack, 'room.join');
    assert.equal(joined.answer.room_id, room);
    const sent = await py.next();
    assert.equal(sent.ack, 'room.send');
    assert.equal(sent.answer.message.body, 'hi');
    const message = await py.next();
    assert.equal(message.event, 'message');
    assert.equal(message.args[0].body, 'hi');
    assert.equal(message.args[0].room_id, room);
    const done = await py.next();
    assert.equal(done.done, true);
    assert.equal(await py.exited, 0);
    return { ready, done };
  } finally {
    py.child.kill('SIGKILL');
  }
}

test('python-socketio: the default transports connect with the token in auth, move to a WebSocket, get pushes and acks', async () => {
  const { ready, done } = await session('default');
  // python-engineio opens on long-polling, then probes and moves to the WebSocket inside
  // connect(): the upgrade is done by the time connect() returns.
  assert.deepEqual(ready.steps, [
    'Attempting polling connection', 'Polling connection accepted',
    'Attempting WebSocket upgrade', 'WebSocket upgrade was successful',
  ]);
  assert.equal(ready.transport, 'websocket');
  assert.equal(done.transport, 'websocket');
});

test('python-socketio: a polling-only client with a Bearer token in auth gets pushes and acks', async () => {
  const { ready, done } = await session('polling');
  assert.deepEqual(ready.steps, ['Attempting polling connection', 'Polling connection accepted']);
  assert.equal(ready.transport, 'polling');
  assert.equal(done.transport, 'polling');
});

test('python-socketio: an expired token fails connect() with its code', async (t) => {
  const py = python('expired', BASE, token(uid('py'), { ttl: -120 }));
  try {
    const refused = await py.next();
    t.diagnostic(JSON.stringify(refused));
    assert.equal(refused.refused, 'ConnectionError');
    // The handshake and the upgrade succeed (the token travels in the CONNECT packet, after
    // them), and the gateway answers the CONNECT with CONNECT_ERROR. python-socketio then raises a
    // generic error from connect(); the code is in the data its connect_error handler gets.
    assert.equal(refused.message, 'One or more namespaces failed to connect: /');
    assert.equal(refused.connect_error.length, 1, JSON.stringify(refused));
    assert.equal(refused.connect_error[0][0].message, 'token_expired', JSON.stringify(refused));
    assert.equal(await py.exited, 0);
  } finally {
    py.child.kill('SIGKILL');
  }
});
