// Issue #14: what "deliver or notify" costs an offline user — alarm wakes and push-service POSTs.
//
//   node bench/notify.mjs [--users 200] [--runs 3] [--after 5] [--interval 30] [--burst 10]
//     [--conc 1] [--margin 3] [--offline never|closed] [--scenarios A,B,C,D,E]
//     [--server-log PREFIX]   (the server's output, the Worker's warnings included, to PREFIX-runN.log)
//
// Every run starts a fresh bench/serve.mjs server (workerd through Miniflare, no wrangler dev
// proxy; fresh state, random secrets, a fresh VAPID key pair, DEV_MODE=true for the alarm report,
// NOTIFY_AFTER_SECONDS=--after, NOTIFY_MIN_INTERVAL_SECONDS=--interval) and a local push service
// (node:http on 127.0.0.1 answering 201 to every POST, counting them per endpoint and decrypting
// each body, RFC 8291, with the subscription's private key to read its `count`). Then, on that
// server, one scenario after another, each over U users of its own:
//
//   A  no subscription: 1 event each, with `notify`.
//   B  one Web Push subscription each: 1 event each, with `notify`.
//   C  as B, --burst events each, one after another (a burst).
//   D  as B, with one raw socket per user open that acks every event as it arrives (`ack {seq}`).
//   E  B's users again, once B's notifications are out: 1 more event each, with `notify` (their
//      hubs now hold the notification tables and no alarm: a second notification's cost; due
//      NOTIFY_AFTER later, or at the end of NOTIFY_MIN_INTERVAL after B's if that is later).
//
// The users of A–C (so E's too) are offline: with --offline never (the default) they never
// connected; with --offline closed each opened one raw socket, got `ready` and closed it before
// the scenario. D's users stay online (their sockets' own alarm is the token expiry, 1 h away).
// Every event is `POST /internal/v1/push` naming one user (U × events calls, --conc in flight at
// once; with --conc 1 the latency is the push path's, not a queue's). A user's alarm report
// (`GET /dev/users/{id}/alarm`: alarm_wakes, alarm_at) is read before the first push and again
// once every expected POST has arrived and NOTIFY_AFTER + margin has passed since the last push;
// wakes are the difference. Prints a markdown table of every run and the medians. The default
// NOTIFY_AFTER of 5 s keeps alarms out of A's, B's and E's timed pushes (a star in the table marks
// a scenario whose pushes outlasted the first due time; C's 2,000 calls always do). Before the
// scenarios, a warmup (20 users, half subscribed, one event each) runs the paths once, untimed.

import { spawn } from 'node:child_process';
import { createECDH, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ece from 'http_ece';
import WebSocket from 'ws';

import { freePort, log, median, pool, sleep, tokens } from './common.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    users: { type: 'string', default: '200' },
    runs: { type: 'string', default: '3' },
    after: { type: 'string', default: '5' },
    interval: { type: 'string', default: '30' },
    burst: { type: 'string', default: '10' },
    conc: { type: 'string', default: '1' },
    margin: { type: 'string', default: '3' },
    'server-log': { type: 'string' },
    offline: { type: 'string', default: 'never' },
    scenarios: { type: 'string', default: 'A,B,C,D,E' },
  },
});
const USERS = +opt.users, RUNS = +opt.runs, AFTER = +opt.after, INTERVAL = +opt.interval;
const BURST = +opt.burst, CONC = +opt.conc, MARGIN = +opt.margin, OFFLINE = opt.offline;
const SCENARIOS = opt.scenarios.split(',').map((s) => s.trim().toUpperCase());
if (!['never', 'closed'].includes(OFFLINE)) throw new Error('--offline must be never or closed');
if (SCENARIOS.includes('E') && SCENARIOS.indexOf('E') < SCENARIOS.indexOf('B')) throw new Error('E needs B before it');
/** Alarm wakes and push-service POSTs per user that each scenario should cost. */
const EXPECTED = { A: [0, 0], B: [1, 1], C: [1, 1], D: [0, 0], E: [1, 1] };
const JWT_SECRET = randomBytes(32).toString('hex');
const INTERNAL = randomBytes(32).toString('hex');

const token = tokens(JWT_SECRET);
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
/** `{value: how many}` as "1 ×199, 2 ×1". */
const spread = (xs) => {
  const counts = new Map();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0] - b[0]).map(([v, n]) => `${v} ×${n}`).join(', ');
};


function vapidKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { public: ecdh.getPublicKey().toString('base64url'), private: ecdh.getPrivateKey().toString('base64url') };
}

/** The payload of a push body (RFC 8291 aes128gcm, opened with http_ece as the notify tests do), or
 *  null if it does not open. */
function decrypt(body, sub) {
  try {
    const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth.toString('base64url') });
    return JSON.parse(plain.toString('utf8'));
  } catch {
    return null;
  }
}

/** The local push service: 201 to every POST, counted per endpoint path, each body decrypted. */
async function startPushService(subscriptions) {
  const posts = new Map(); // path -> [{count, seq, sentAt, wellFormed, at}]
  const server = createHttpServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') {
        const sub = subscriptions.get(req.url);
        const payload = sub ? decrypt(Buffer.concat(chunks), sub) : null;
        const wellFormed = payload !== null
          && req.headers['content-encoding'] === 'aes128gcm'
          && /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/.test(req.headers.authorization ?? '')
          && req.headers.ttl === '86400' && req.headers.topic === 'switchboard';
        const list = posts.get(req.url) ?? [];
        list.push({ count: payload?.count ?? null, seq: payload?.seq ?? null, sentAt: payload?.at ?? null, wellFormed, at: Date.now() });
        posts.set(req.url, list);
      }
      res.writeHead(201).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, posts, port: server.address().port };
}

async function startServer(run) {
  const port = await freePort();
  const vapid = vapidKeys();
  const env = {
    ...process.env, JWT_SECRET, INTERNAL_API_TOKEN: INTERNAL, DEV_MODE: 'true',
    VAPID_PUBLIC_KEY: vapid.public, VAPID_PRIVATE_KEY: vapid.private, VAPID_SUBJECT: 'mailto:bench@switchboard.test',
    NOTIFY_AFTER_SECONDS: String(AFTER), NOTIFY_MIN_INTERVAL_SECONDS: String(INTERVAL),
  };
  const child = spawn('node', [join(root, 'bench/serve.mjs'), '--target', 'switchboard', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  const file = opt['server-log'] ? createWriteStream(`${opt['server-log']}-run${run}.log`) : null;
  child.stderr.on('data', (d) => { buf += d; file?.write(d); });
  child.stdout.on('data', (d) => file?.write(d));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { buf += d; if (buf.includes('"pid"')) resolve(); });
    child.on('exit', (code) => reject(new Error(`serve.mjs exited ${code}: ${buf}`)));
  });
  const server = { child, stopping: false };
  child.on('exit', (code, signal) => server.stopping || log(`the server exited (${code ?? signal}): ${buf.slice(-2000)}`));
  return Object.assign(server, { base: `http://127.0.0.1:${port}`, wsBase: `ws://127.0.0.1:${port}` });
}

async function stopServer(server) {
  server.stopping = true;
  server.child.kill('SIGTERM');
  await Promise.race([new Promise((r) => server.child.once('exit', r)), sleep(10_000)]);
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
}

async function call(server, method, path, { bearer = INTERNAL, body } = {}) {
  const res = await fetch(server.base + path, {
    method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A raw socket of `user`, resolved at `ready`; with `acking`, acks every stream event (with an id,
 * so the bench can tell when the hub has recorded the cursor). */
function connect(server, user, acking) {
  const ws = new WebSocket(`${server.wsBase}/v1/connect`, {
    perMessageDeflate: false, headers: { authorization: `Bearer ${token(user)}` },
  });
  const client = { ws, user, seen: 0, acked: 0, lastSeq: 0, errors: 0 };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${user}: no ready in 30 s`)); }, 30_000);
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.event === 'ready') { clearTimeout(timer); resolve(client); return; }
      if (frame.event === 'bench.notify' && typeof frame.seq === 'number') {
        client.seen++;
        client.lastSeq = frame.seq;
        if (acking) ws.send(JSON.stringify({ event: 'ack', data: { seq: frame.seq }, id: frame.seq }));
      }
      if (frame.event === 'ack' && typeof frame.data?.cursor === 'number') client.acked = Math.max(client.acked, frame.data.cursor);
      if (frame.event === 'error') client.errors++;
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`${user}: HTTP ${res.statusCode}`)); });
  });
}

async function closeAll(clients) {
  await Promise.all(clients.map((c) => new Promise((r) => {
    if (c.ws.readyState === WebSocket.CLOSED) return r();
    c.ws.once('close', r);
    c.ws.close();
    setTimeout(() => { c.ws.terminate(); r(); }, 5000);
  })));
}

const alarmOf = (server, user) => call(server, 'GET', `/dev/users/${encodeURIComponent(user)}/alarm`, { bearer: 'none' });

async function subscribe(server, push, user) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16);
  const path = `/push/${user}`;
  push.subscriptions.set(path, { ecdh, auth });
  await call(server, 'POST', '/v1/push-subscriptions', {
    bearer: token(user),
    body: {
      endpoint: `http://127.0.0.1:${push.port}${path}`,
      expirationTime: null,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
    },
  });
}

/** Warms a fresh server's paths (the Worker's and the hubs' code, D1) before anything is timed:
 * W users, half of them subscribed, one event each with `notify`; then waits until their
 * notifications are out so that no alarm of theirs runs during the first scenario. */
async function warmup(server, push, run, n = 20) {
  const users = Array.from({ length: n }, (_, i) => `nb-warm${run}-${i}`);
  await pool(n / 2, 5, (i) => subscribe(server, push, users[i]));
  await pool(n, 5, (i) => alarmOf(server, users[i]));
  await pool(n, 1, (i) => call(server, 'POST', '/internal/v1/push', {
    body: { users: [users[i]], event: 'bench.notify', data: { warmup: i }, notify: { title: 'warmup', body: 'warmup' } },
  }));
  await sleep((AFTER + MARGIN) * 1000);
}

/** One scenario on a running server: returns the row for the table. */
async function scenario(server, push, name, run) {
  // E reuses B's users (subscribed, notified once, offline).
  const users = Array.from({ length: USERS }, (_, i) => `nb-${name === 'E' ? 'b' : name.toLowerCase()}${run}-${i}`);
  const subscribed = name !== 'A' && name !== 'E';
  const seenBefore = name === 'E' ? new Map(users.map((u) => [u, (push.posts.get(`/push/${u}`) ?? []).length])) : null;
  const events = name === 'C' ? BURST : 1;
  const t0 = performance.now();
  const loadAvgAtStart = loadavg()[0];
  if (OFFLINE === 'closed' && name !== 'D' && name !== 'E') {
    // Connected once, then closed: the hub has seen a device and has none now.
    await pool(USERS, 10, async (i) => closeAll([await connect(server, users[i], false)]));
  }
  if (subscribed) await pool(USERS, 10, (i) => subscribe(server, push, users[i]));
  const clients = name === 'D' ? await pool(USERS, 10, (i) => connect(server, users[i], true)) : [];
  const before = await pool(USERS, 10, (i) => alarmOf(server, users[i]));
  log(`${name} run ${run}: ${USERS} users ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; pushing ${events} event(s) each`);

  const latencies = [];
  const pushedAt = new Map();
  const pushStart = performance.now();
  let firstDue = Infinity;
  let devicesLive = 0;
  await pool(USERS, CONC, async (i) => {
    for (let k = 0; k < events; k++) {
      const t = performance.now();
      const answer = await call(server, 'POST', '/internal/v1/push', {
        body: {
          users: [users[i]], event: 'bench.notify', data: { run, i, k },
          notify: { title: `bench ${name}`, body: `event ${k + 1} of ${events} for ${users[i]}` },
        },
      });
      const done = performance.now();
      latencies.push(done - t);
      if (k === 0) pushedAt.set(users[i], { at: Date.now(), seq: answer.results?.[0]?.seq });
      firstDue = Math.min(firstDue, t + AFTER * 1000);
      devicesLive += answer.results?.[0]?.devices ?? 0;
    }
  });
  const pushEnd = performance.now();

  // Wait: every expected POST in (B, C, E: one per user), the acks recorded (D), and NOTIFY_AFTER +
  // margin since the last push; then one more quiet margin for anything late.
  const expectPosts = ['B', 'C', 'E'].includes(name) ? USERS : 0;
  const postsOf = (u) => (push.posts.get(`/push/${u}`) ?? []).slice(seenBefore?.get(u) ?? 0);
  const postsNow = () => users.reduce((n, u) => n + postsOf(u).length, 0);
  const deadline = pushEnd + (AFTER + MARGIN) * 1000;
  const hardDeadline = pushEnd + (AFTER + MARGIN + 60) * 1000;
  while (performance.now() < hardDeadline) {
    const acksIn = clients.every((c) => c.acked >= c.lastSeq && c.seen === events);
    if (performance.now() >= deadline && postsNow() >= expectPosts && acksIn) break;
    await sleep(100);
  }
  await sleep(MARGIN * 1000);
  const after = await pool(USERS, 10, (i) => alarmOf(server, users[i]));
  const wakes = users.map((_, i) => after[i].alarm_wakes - before[i].alarm_wakes);
  const postsPerUser = users.map((u) => postsOf(u).length);
  const allPosts = users.flatMap(postsOf);
  const row = {
    name, run, events,
    pushS: (pushEnd - pushStart) / 1000,
    overlap: pushEnd > firstDue,
    p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95),
    wakes, totalWakes: wakes.reduce((a, b) => a + b, 0),
    posts: postsPerUser, totalPosts: allPosts.length,
    wellFormed: allPosts.filter((p) => p.wellFormed).length,
    counts: allPosts.map((p) => p.count),
    alarmsLeft: after.filter((a) => a.alarm_at !== null).length,
    alarmsSoon: after.filter((a) => a.alarm_at !== null && (typeof a.alarm_at === 'number' ? a.alarm_at : Date.parse(a.alarm_at)) < Date.now() + 600_000).length,
    load: loadAvgAtStart,
    devicesLive,
    acked: clients.filter((c) => c.acked >= c.lastSeq && c.seen === events).length,
    ackErrors: clients.reduce((n, c) => n + c.errors, 0),
  };
  log(`${name} run ${run}: push ${row.pushS.toFixed(1)} s (p50 ${row.p50.toFixed(1)} ms, p95 ${row.p95.toFixed(1)} ms), wakes/user ${spread(wakes)}, POSTs/user ${spread(postsPerUser)}, alarms set ${row.alarmsLeft} (${row.alarmsSoon} within 10 min), load ${row.load.toFixed(2)}${name === 'D' ? `, devices live ${devicesLive}, sockets acked ${row.acked}/${USERS}, error frames ${row.ackErrors}` : ''}`);
  // Whatever differs from one wake per notification, in detail (times relative to the user's push).
  const [wantWakes, wantPosts] = EXPECTED[name];
  const odd = users.map((u, i) => ({ u, i })).filter(({ u, i }) => wakes[i] !== wantWakes || postsOf(u).length !== wantPosts);
  for (const { u, i } of odd.slice(0, 10)) {
    const p = pushedAt.get(u);
    const posts = postsOf(u).map((x) => `+${x.at - p.at} ms (seq ${x.seq}, count ${x.count}, at +${x.sentAt - p.at})`).join('; ');
    log(`  ${u}: pushed seq ${p.seq}; wakes ${wakes[i]}; before ${JSON.stringify(before[i])}; after ${JSON.stringify(after[i])} (alarm_at +${after[i].alarm_at ? after[i].alarm_at - Date.now() : '-'} ms from now); POSTs: ${posts || 'none'}`);
  }
  if (odd.length > 10) log(`  … and ${odd.length - 10} more`);
  if (clients.length) await closeAll(clients);
  return row;
}

async function main() {
  log(`${RUNS} runs of ${SCENARIOS.join(', ')}; ${USERS} users each; NOTIFY_AFTER_SECONDS=${AFTER}, NOTIFY_MIN_INTERVAL_SECONDS=${INTERVAL}; offline users: ${OFFLINE === 'never' ? 'never connected' : 'connected once, then closed'}; ${CONC} push call(s) in flight`);
  const subscriptions = new Map();
  const push = await startPushService(subscriptions);
  push.subscriptions = subscriptions;
  const rows = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      const server = await startServer(run);
      try {
        await warmup(server, push, run);
        for (const name of SCENARIOS) rows.push(await scenario(server, push, name, run));
      } finally {
        await stopServer(server);
      }
    }
  } finally {
    push.server.close();
  }

  const f1 = (x) => x.toFixed(1);
  const expected = EXPECTED;
  const lines = [
    `Deliver or notify: ${USERS} users per scenario, offline users ${OFFLINE === 'never' ? 'never connected' : 'connected once then closed'}, NOTIFY_AFTER_SECONDS=${AFTER}, NOTIFY_MIN_INTERVAL_SECONDS=${INTERVAL}, one user per push call, ${CONC} in flight; bench/serve.mjs, ${RUNS} runs`,
    '',
    '| scenario | run | events/user | push phase s | push p50 ms | push p95 ms | alarm wakes/user | total wakes | push-service POSTs/user | total POSTs | well-formed | payload count | alarms set after (within 10 min) | load avg at start |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.run} | ${r.events} | ${f1(r.pushS)}${r.overlap ? '*' : ''} | ${f1(r.p50)} | ${f1(r.p95)} | ${spread(r.wakes)} | ${r.totalWakes} | ${spread(r.posts)} | ${r.totalPosts} | ${r.wellFormed} | ${spread(r.counts) || '—'} | ${r.alarmsLeft} (${r.alarmsSoon}) | ${r.load.toFixed(2)} |`),
    '',
    `| scenario | expected wakes/user, POSTs/user | median wakes/user | median of total wakes | median POSTs/user | median of total POSTs | push p50 ms (median) | push p95 ms (median) |`,
    '|---|---|---|---|---|---|---|---|',
    ...SCENARIOS.map((name) => {
      const rs = rows.filter((r) => r.name === name);
      return `| ${name} | ${expected[name].join(', ')} | ${median(rs.flatMap((r) => r.wakes))} | ${median(rs.map((r) => r.totalWakes))} | ${median(rs.flatMap((r) => r.posts))} | ${median(rs.map((r) => r.totalPosts))} | ${f1(median(rs.map((r) => r.p50)))} | ${f1(median(rs.map((r) => r.p95)))} |`;
    }),
  ];
  if (rows.some((r) => r.overlap)) lines.push('', '\\* the push phase outlasted the first event\'s due time: some alarms ran while pushes were still being timed.');
  console.log(lines.join('\n'));
  const ok = rows.every((r) => r.wakes.every((w) => w === expected[r.name][0]) && r.posts.every((p) => p === expected[r.name][1]));
  if (!ok) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
