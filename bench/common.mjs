// What the load scripts of bench/ share: a timestamped log on stderr, a sleep, the median, a
// bounded pool of tasks, a free port, and HS256 tokens for the server's secret (the scripts
// start servers with secrets of their own; they never read the project's).

import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';

export const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs `task(i)` for i in 0..n with at most `c` at once; the results in order. */
export async function pool(n, c, task) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n) { const i = next++; out[i] = await task(i); }
  }));
  return out;
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** `token(sub)`: an HS256 JWT signed with `secret`, valid for an hour. */
export function tokens(secret) {
  return (sub) => {
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iat: now - 5, exp: now + 3600 })}`;
    return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
  };
}
