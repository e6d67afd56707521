// A streamed request body without Content-Length is cut off at MAX_BODY_BYTES with 413.
//
// This file runs last (the runner takes files in name order): under local `wrangler dev`, a
// request whose body the Worker stopped reading leaves the dev proxy unable to serve later
// requests, so nothing may run after it. Production Workers answer without reading the rest.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { token, uid, BASE } from './helpers.mjs';

const pad = (n) => 'x'.repeat(n);

test('a streamed body without Content-Length is cut off at the limit with 413', async () => {
  const chunk = new TextEncoder().encode(`"${pad(64 * 1024)}",`);
  let sent = 0;
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"name":"x","members":['));
    },
    pull(controller) {
      if (sent >= 40) {
        controller.enqueue(new TextEncoder().encode('"a"]}'));
        controller.close();
        return;
      }
      controller.enqueue(chunk);
      sent++;
    },
  });
  // The upload is abandoned once the answer is in; a gateway that read it all would answer later.
  const abort = new AbortController();
  const res = await fetch(`${BASE}/v1/rooms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token(uid())}`, 'content-type': 'application/json', connection: 'close' },
    body,
    duplex: 'half',
    signal: abort.signal,
  });
  const answer = await res.json();
  abort.abort();
  assert.equal(res.status, 413);
  assert.equal(answer.error.code, 'payload_too_large');
});
