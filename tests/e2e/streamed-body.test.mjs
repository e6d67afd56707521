// A streamed request body without Content-Length is cut off at MAX_BODY_BYTES with 413.
//
// This file runs last (the runner takes files in name order): under local `wrangler dev`, a
// request whose body the Worker stopped reading leaves the dev proxy unable to serve later
// requests, so nothing may run after it. Production Workers answer without reading the rest.
//
// The request goes over a bare TCP socket with `Transfer-Encoding: chunked`, and the answer is
// read while the body is still being sent: a server that refuses early may reset the connection
// after answering, which a fetch() would report as a failure instead of the 413 it got.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { token, uid, until, BASE } from './helpers.mjs';

/** Sends the chunked body over a bare socket; the raw answer. */
function streamedPost() {
  const url = new URL(`${BASE}/v1/rooms`);
  const chunk = `"${'x'.repeat(64 * 1024)}",`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let received = '';
    let sent = 0;
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer; got ${received.slice(0, 200)}`)); }, 30_000);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const write = (text) => socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
    const pump = () => {
      while (sent < 40 && !received) {
        sent++;
        if (!write(chunk)) return;
      }
      if (sent >= 40 && !received) {
        write('"a"]}');
        socket.write('0\r\n\r\n');
      }
    };
    socket.on('connect', () => {
      socket.write([
        `POST ${url.pathname} HTTP/1.1`,
        `Host: ${url.host}`,
        `Authorization: Bearer ${token(uid())}`,
        'Content-Type: application/json',
        'Transfer-Encoding: chunked',
        '', '',
      ].join('\r\n'));
      write('{"name":"x","members":[');
      pump();
    });
    socket.on('drain', pump);
    socket.on('data', (data) => {
      received += data.toString();
      if (/\r\n\r\n[\s\S]*\}/.test(received)) finish();
    });
    socket.on('error', (err) => (received ? finish() : reject(new Error('the connection failed before any answer', { cause: err }))));
    socket.on('close', () => (received ? finish() : reject(new Error('closed before any answer'))));
  });
}

test('a streamed body without Content-Length is cut off at the limit with 413', async () => {
  // `wrangler dev`'s proxy (not the Worker) now and then answers a request that follows a long
  // one with its own 503 "Your worker restarted mid-request. Please try sending the request
  // again" (docs/SECURITY.md); the Worker never saw that request, so it is sent again, as the
  // proxy asks. Any other answer is the Worker's and is checked.
  // The same proxy has also refused the connection outright at the end of a long suite (twice in
  // five fresh-clone runs, not traced further): then it is asked for /health until it answers and
  // the request is sent again.
  const proxyHiccup = (answer) => answer === null || /^HTTP\/1\.1 503[\s\S]*restarted mid-request/.test(answer);
  let failure = '';
  const attempt = () => streamedPost().catch((err) => {
    if (err.message !== 'the connection failed before any answer') throw err;
    failure = `${err.cause?.code ?? err.cause}`;
    return null;
  });
  let answer = await attempt();
  for (let retry = 0; retry < 2 && proxyHiccup(answer); retry++) {
    console.log(`streamed-body: the dev proxy ${answer === null ? `failed the connection (${failure})` : 'answered 503 "restarted mid-request"'}; sending again`);
    await until(async () => (await fetch(`${BASE}/health`).catch(() => null))?.ok, { timeoutMs: 30_000, what: 'the dev proxy answering again' });
    answer = await attempt();
  }
  assert.ok(answer !== null, `the connection failed before any answer, three times (${failure})`);
  assert.match(answer, /^HTTP\/1\.1 413/);
  assert.match(answer, /"code":"payload_too_large"/);
});
