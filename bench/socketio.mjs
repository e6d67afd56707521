// Issue #12: the Socket.IO facade beside the raw protocol, same server, same steps, interleaved.
//
//   node bench/socketio.mjs [--runs 3] [--protos raw,sio,sio-room,sio-auth,sio-poll,sio-emit] [--out DIR] [--connect 200] [--conc 20]
//     [--users 100] [--rounds 40] [--push-rate 5] [--hold 50] [--members 100] [--messages 40]
//     [--send-rate 5] [--after-close 30] [--no-pin]
//
// For each run and each protocol (raw, then socket.io, then the next run: A B A B …) a fresh
// bench/serve.mjs server (workerd through Miniflare, fresh state, fresh random secrets; the same
// raised MAX_SOCKETS_PER_USER / MAX_ROOM_MEMBERS as bench/run.sh), its whole process tree pinned
// to CPU 1 and this load generator to CPU 0 (as the shared kit does), then these steps:
//
//   warmup  20 connects, 5 pushes, closes (unmeasured)
//   connect N sockets of N new users, at most C opening at once, then all closed.
//           raw: GET /v1/connect → `ready`; sio: /socket.io/?EIO=4&transport=websocket, `connect`
//           on namespace `/`. Latency: from the socket's start to ready/connect.
//   afterclose  nothing open for A seconds (--after-close 30) right after the connect step: what
//           the closed hubs still cost (an alarm planned while their sockets were open fires here)
//   push    M new users, one socket each (connected before the step, not measured); R rounds of
//           one POST /internal/v1/push {users: all M} at a fixed rate (open loop). Latency: from
//           the round's scheduled time to each socket's receipt.
//   idle    the same M sockets held H seconds, nothing sent (raw clients send the SDK's
//           `{"event":"ping"}` every 25 s; socket.io clients answer the server's pings).
//   join    a room of K members created over the internal API (owner + K-1 members, none pending);
//           raw: K room sockets GET /v1/rooms/{id}/connect → `ready`; sio: each member's
//           socket.io connection (opened before the step) emits `room.join` → its ack (the room
//           relayed through the member's UserHub); sio-room: K socket.io connections to the room
//           itself (/socket.io/?…&room_id=) → `ready`. (sio-room is sio in every other step.)
//           sio-auth is sio with the token in `auth` (the CONNECT packet) instead of the query:
//           the Worker holds the upgrade until that CONNECT (every socket.io connection is
//           relayed by the Worker, which keeps its heartbeat). sio-poll is sio-auth on HTTP
//           long-polling alone (`transports: ['polling']`): each session in its own object.
//   fanout  one member sends S messages at a fixed rate (raw `send`, sio `room.send`); every
//           member socket (the sender's included) gets each. Latency: scheduled send → receipt.
//           sio-emit is sio but for who sends: the backend, through @switchboard/emitter
//           (`io.to(room).emit('new-message', {body})`, one HTTP call each, issue #20), and every
//           member gets `new-message`.
//
// Each step's server CPU-s: utime+stime over the server's process tree (node + workerd) from
// the step's start until the server is quiet again (bench/settle.sh's rule: two consecutive
// half-seconds of at most 2 clock ticks, at most 60 s), so a step counts its own teardown.
// Prints one JSON line per (run, protocol, step) and a markdown table of medians (every run in
// brackets) with socket.io ÷ raw; writes both to --out (default bench/results/sio-<time>/).

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { io } from 'socket.io-client';

import { freePort, log, pool, sleep, tokens } from './common.mjs';
import { Emitter } from '../packages/emitter/src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    protos: { type: 'string', default: 'raw,sio,sio-room,sio-auth,sio-poll' },
    out: { type: 'string' },
    connect: { type: 'string', default: '200' },
    conc: { type: 'string', default: '20' },
    users: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '40' },
    'push-rate': { type: 'string', default: '5' },
    hold: { type: 'string', default: '50' },
    members: { type: 'string', default: '100' },
    messages: { type: 'string', default: '40' },
    'send-rate': { type: 'string', default: '5' },
    'after-close': { type: 'string', default: '30' },
    'no-pin': { type: 'boolean', default: false },
  },
});
const N = +opt.connect, C = +opt.conc, M = +opt.users, R = +opt.rounds, PUSH_RATE = +opt['push-rate'];
const HOLD = +opt.hold, K = +opt.members, S = +opt.messages, SEND_RATE = +opt['send-rate'];
const AFTER = +opt['after-close'];
const PROTOS = opt.protos.split(',');
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
const OUT = opt.out ?? join(root, 'bench/results', `sio-${stamp}`);
mkdirSync(OUT, { recursive: true });
const RESULTS = join(OUT, 'results.jsonl');

const JWT_SECRET = process.env.JWT_SECRET ?? randomBytes(32).toString('hex');
const INTERNAL = process.env.INTERNAL_API_TOKEN ?? randomBytes(32).toString('hex');
const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const PIN = !opt['no-pin'] && cpus().length >= 2;

const token = tokens(JWT_SECRET);

// ---- the server's process tree and its CPU ----
function treePids(pid) {
  const out = [];
  const walk = (p) => {
    out.push(p);
    for (const t of safe(() => readdirSync(`/proc/${p}/task`), [])) {
      for (const c of safe(() => readFileSync(`/proc/${p}/task/${t}/children`, 'utf8'), '').split(' ').filter(Boolean)) walk(+c);
    }
  };
  walk(pid);
  return out;
}
function safe(f, d) { try { return f(); } catch { return d; } }
function ticks(pid) {
  let sum = 0;
  for (const p of treePids(pid)) {
    const stat = safe(() => readFileSync(`/proc/${p}/stat`, 'utf8'), null);
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    sum += +f[11] + +f[12]; // utime, stime
  }
  return sum;
}
/** Waits until the server is quiet (bench/settle.sh's rule); returns the ticks at that point. */
async function settle(pid) {
  let last = ticks(pid), quiet = 0;
  for (let i = 0; i < 120 && quiet < 2; i++) {
    await sleep(500);
    const now = ticks(pid);
    quiet = now - last <= 2 ? quiet + 1 : 0;
    last = now;
  }
  return last;
}

// ---- the server ----
async function startServer() {
  const port = await freePort();
  const env = {
    ...process.env, JWT_SECRET, INTERNAL_API_TOKEN: INTERNAL,
    MAX_SOCKETS_PER_USER: process.env.MAX_SOCKETS_PER_USER ?? '1000',
    MAX_ROOM_MEMBERS: process.env.MAX_ROOM_MEMBERS ?? '2000',
  };
  const child = spawn('node', [join(root, 'bench/serve.mjs'), '--target', 'switchboard', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stderr.on('data', (d) => { buf += d; });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { buf += d; if (buf.includes('"pid"')) resolve(); });
    child.on('exit', (code) => reject(new Error(`serve.mjs exited ${code}: ${buf}`)));
  });
  if (PIN) for (const p of treePids(child.pid)) safe(() => execFileSync('taskset', ['-a', '-c', '-p', '1', String(p)], { stdio: 'ignore' }));
  return { child, pid: child.pid, port, base: `http://127.0.0.1:${port}`, wsBase: `ws://127.0.0.1:${port}` };
}
async function stopServer(server) {
  server.child.kill('SIGTERM');
  await Promise.race([new Promise((r) => server.child.once('exit', r)), sleep(10_000)]);
  if (server.child.exitCode === null) server.child.kill('SIGKILL');
}
async function internal(server, method, path, body) {
  const res = await fetch(server.base + path, {
    method, headers: { authorization: `Bearer ${INTERNAL}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// ---- clients: one shape for both protocols ----
// open(user) → {t: ms to ready/connect, on(event, fn(data)), send/request…, close()}
function rawOpen(server, path, user, timeoutMs = 20_000) {
  const t0 = performance.now();
  const ws = new WebSocket(`${server.wsBase}${path}${path.includes('?') ? '&' : '?'}token=${token(user)}`, { perMessageDeflate: false });
  const handlers = new Map();
  ws.on('message', (buf) => {
    const frame = JSON.parse(buf.toString());
    const fns = handlers.get(frame.event);
    if (fns) for (const fn of fns) fn(frame.data, frame);
  });
  const client = {
    ws,
    on(event, fn) { if (!handlers.has(event)) handlers.set(event, []); handlers.get(event).push(fn); },
    sendFrame(frame) { ws.send(JSON.stringify(frame)); },
    close() { ws.close(1000); },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${user}: no ready in ${timeoutMs} ms`)); }, timeoutMs);
    client.on('ready', () => { clearTimeout(timer); client.t = performance.now() - t0; resolve(client); });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`${user}: HTTP ${res.statusCode}`)); });
  });
}
function sioOpen(server, user, timeoutMs = 20_000, room = null, inAuth = false, transport = 'websocket') {
  const t0 = performance.now();
  const query = room ? { room_id: room } : {};
  const carrier = inAuth ? { auth: { token: token(user) } } : { query: { ...query, token: token(user) } };
  const socket = io(server.base, {
    transports: [transport], forceNew: true, reconnection: false, query, ...carrier,
    timeout: timeoutMs, perMessageDeflate: false,
  });
  const client = {
    socket,
    on(event, fn) { socket.on(event, (data) => fn(data)); },
    close() { socket.disconnect(); },
  };
  return new Promise((resolve, reject) => {
    socket.once(room ? 'ready' : 'connect', () => { client.t = performance.now() - t0; resolve(client); });
    socket.once('connect_error', (e) => { socket.disconnect(); reject(new Error(`${user}: ${e.message}`)); });
  });
}
const openUser = (proto, server, user) => (proto === 'raw'
  ? rawOpen(server, '/v1/connect', user)
  : sioOpen(server, user, 20_000, null, proto === 'sio-auth' || proto === 'sio-poll', proto === 'sio-poll' ? 'polling' : 'websocket'));

function pct(values, p) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const r3 = (x) => (x == null ? null : Math.round(x * 1000) / 1000);

/** Measures `body` between a quiet server and a quiet server again. */
async function measured(server, body) {
  const c0 = ticks(server.pid);
  const w0 = performance.now();
  const extra = await body();
  const harnessEnd = ticks(server.pid);
  const wallHarness = (performance.now() - w0) / 1000;
  const c1 = await settle(server.pid);
  return { cpu_s: r3((c1 - c0) / HZ), after_s: r3((c1 - harnessEnd) / HZ), wall_s: r3(wallHarness), ...extra };
}

// ---- the steps ----
async function stepConnect(proto, server, tag) {
  const users = Array.from({ length: N }, (_, i) => `c${tag}-${i}`);
  const res = await measured(server, async () => {
    const w0 = performance.now();
    const clients = await pool(N, C, (i) => openUser(proto, server, users[i]));
    const rate = N / ((performance.now() - w0) / 1000);
    const lat = clients.map((c) => c.t);
    for (const c of clients) c.close();
    return { n: N, per_s: r3(rate), p50_ms: r3(pct(lat, 50)), p99_ms: r3(pct(lat, 99)) };
  });
  return { ...res, cpu_ms_per: r3((res.cpu_s * 1000) / N) };
}

async function stepPushIdle(proto, server, tag) {
  const users = Array.from({ length: M }, (_, i) => `p${tag}-${i}`);
  const clients = await pool(M, C, (i) => openUser(proto, server, users[i]));
  await settle(server.pid);
  const lat = [];
  let got = 0;
  let done;
  const all = new Promise((r) => { done = r; });
  for (const c of clients) {
    c.on('bench.tick', (data) => { lat.push(performance.now() - data.t); if (++got === M * R) done(); });
  }
  let errors = 0;
  const push = await measured(server, async () => {
    const t0 = performance.now() + 50;
    const posts = [];
    for (let i = 0; i < R; i++) {
      const at = t0 + (i * 1000) / PUSH_RATE;
      await sleep(Math.max(0, at - performance.now()));
      posts.push(internal(server, 'POST', '/internal/v1/push', { users, event: 'bench.tick', data: { i, t: at } }).catch(() => { errors++; }));
    }
    await Promise.all(posts);
    await Promise.race([all, sleep(15_000)]);
    return { deliveries: got, expected: M * R, http_errors: errors, p50_ms: r3(pct(lat, 50)), p99_ms: r3(pct(lat, 99)) };
  });
  push.cpu_us_per = r3((push.cpu_s * 1e6) / Math.max(1, push.deliveries));
  // idle: hold, nothing sent but the raw SDK's heartbeat (answered by the runtime).
  const idle = await measured(server, async () => {
    const pinger = proto === 'raw' ? setInterval(() => { for (const c of clients) c.sendFrame({ event: 'ping' }); }, 25_000) : null;
    await sleep(HOLD * 1000);
    if (pinger) clearInterval(pinger);
    const alive = proto === 'raw' ? clients.filter((c) => c.ws.readyState === WebSocket.OPEN).length : clients.filter((c) => c.socket.connected).length;
    return { n: M, hold_s: HOLD, alive };
  });
  idle.cpu_ms_per_conn_hour = r3((idle.cpu_s * 1000 * 3600) / (M * HOLD));
  for (const c of clients) c.close();
  const teardown = await measured(server, async () => ({}));
  return { push, idle, teardown };
}

async function stepRoom(proto, server, tag) {
  const room = `bench-${tag}`;
  const users = Array.from({ length: K }, (_, i) => `f${tag}-${i}`);
  await internal(server, 'POST', '/internal/v1/rooms', { id: room, name: room, owner: users[0], members: users.slice(1) });
  let sio = null;
  if (proto !== 'raw' && proto !== 'sio-room') sio = await pool(K, C, (i) => openUser(proto, server, users[i]));
  await settle(server.pid);
  let clients;
  const join = await measured(server, async () => {
    let lat;
    if (proto === 'raw') {
      clients = await pool(K, C, (i) => rawOpen(server, `/v1/rooms/${room}/connect`, users[i]));
      lat = clients.map((c) => c.t);
    } else if (proto === 'sio-room') {
      clients = await pool(K, C, (i) => sioOpen(server, users[i], 20_000, room));
      lat = clients.map((c) => c.t);
    } else {
      clients = sio;
      lat = await pool(K, C, async (i) => {
        const t0 = performance.now();
        const ack = await sio[i].socket.timeout(20_000).emitWithAck('room.join', { room_id: room });
        if (ack?.error) throw new Error(`room.join: ${JSON.stringify(ack.error)}`);
        return performance.now() - t0;
      });
    }
    return { n: K, p50_ms: r3(pct(lat, 50)), p99_ms: r3(pct(lat, 99)) };
  });
  join.cpu_ms_per = r3((join.cpu_s * 1000) / K);
  const sched = new Map();
  const lat = [];
  let got = 0, acks = 0, errors = 0;
  let done;
  const all = new Promise((r) => { done = r; });
  for (const c of clients) {
    c.on(proto === 'sio-emit' ? 'new-message' : 'message', (m) => {
      const at = sched.get(m.body);
      if (at !== undefined) lat.push(performance.now() - at);
      if (++got === K * S) done();
    });
  }
  const sender = clients[0];
  const emitter = proto === 'sio-emit' ? new Emitter({ url: server.base, token: INTERNAL }) : null;
  emitter?.on('error', () => { errors++; });
  const fanout = await measured(server, async () => {
    const t0 = performance.now() + 50;
    for (let i = 0; i < S; i++) {
      const at = t0 + (i * 1000) / SEND_RATE;
      await sleep(Math.max(0, at - performance.now()));
      const body = `m${i}`;
      sched.set(body, at);
      if (proto === 'raw') {
        sender.sendFrame({ event: 'send', id: i + 1, data: { body, client_id: `c${i}` } });
      } else if (emitter) {
        emitter.to(room).emit('new-message', { body });
        acks++;
      } else {
        sender.socket.emit('room.send', { room_id: room, body, client_id: `c${i}` }, (ack) => { if (ack?.error) errors++; else acks++; });
      }
    }
    await Promise.race([all, sleep(15_000)]);
    return { deliveries: got, expected: K * S, send_errors: errors, p50_ms: r3(pct(lat, 50)), p99_ms: r3(pct(lat, 99)) };
  });
  fanout.cpu_us_per = r3((fanout.cpu_s * 1e6) / Math.max(1, fanout.deliveries));
  for (const c of clients) c.close();
  await settle(server.pid);
  return { join, fanout };
}

async function warmup(proto, server, tag) {
  const users = Array.from({ length: 20 }, (_, i) => `w${tag}-${i}`);
  const clients = await pool(20, 10, (i) => openUser(proto, server, users[i]));
  for (let i = 0; i < 5; i++) await internal(server, 'POST', '/internal/v1/push', { users, event: 'bench.warm', data: { i } });
  await sleep(500);
  for (const c of clients) c.close();
  await settle(server.pid);
}

// ---- main ----
function emit(row) {
  const line = JSON.stringify(row);
  console.log(line);
  appendFileSync(RESULTS, line + '\n');
}

async function one(run, proto) {
  const server = await startServer();
  const tag = `${run}${proto}`;
  try {
    await settle(server.pid);
    await warmup(proto, server, tag);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    log(`run ${run} ${proto}: server pid ${server.pid} port ${server.port}, load ${load}`);
    const base = { run, proto, load };
    emit({ ...base, step: 'connect', ...(await stepConnect(proto, server, tag)) });
    // Nothing open: what the connect step's hubs still cost afterwards (alarms planned while
    // their sockets were open fire here), so that it does not land in the steps after.
    const closed = await measured(server, async () => { await sleep(AFTER * 1000); return { hold_s: AFTER }; });
    emit({ ...base, step: 'afterclose', ...closed, cpu_ms_per: r3((closed.cpu_s * 1000) / N) });
    const { push, idle, teardown } = await stepPushIdle(proto, server, tag);
    emit({ ...base, step: 'push', ...push });
    emit({ ...base, step: 'idle', ...idle });
    emit({ ...base, step: 'teardown', ...teardown });
    const { join, fanout } = await stepRoom(proto, server, tag);
    emit({ ...base, step: 'join', ...join });
    emit({ ...base, step: 'fanout', ...fanout });
  } finally {
    await stopServer(server);
  }
}

function table(rows) {
  const med = (xs) => pct(xs, 50) === null ? null : (() => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; })();
  const fmt = (x) => (x == null ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const metrics = [
    ['connect', 'cpu_s', `connect ×${N}: server CPU-s`], ['connect', 'cpu_ms_per', 'connect: CPU-ms per connect'],
    ['connect', 'p50_ms', 'connect: latency p50 (ms)'], ['connect', 'p99_ms', 'connect: latency p99 (ms)'],
    ['afterclose', 'cpu_s', `after the connects, nothing open, ${AFTER} s: server CPU-s`], ['afterclose', 'cpu_ms_per', 'after the connects: CPU-ms per connect'],
    ['push', 'cpu_s', `push ${R} rounds × ${M} users: server CPU-s`], ['push', 'cpu_us_per', 'push: CPU-µs per delivered event'],
    ['push', 'p50_ms', 'push: latency p50 (ms)'], ['push', 'p99_ms', 'push: latency p99 (ms)'],
    ['idle', 'cpu_s', `idle ${M} sockets × ${HOLD} s: server CPU-s`], ['idle', 'cpu_ms_per_conn_hour', 'idle: CPU-ms per connection-hour'],
    ['join', 'cpu_s', `room join ×${K}: server CPU-s`], ['join', 'cpu_ms_per', 'room join: CPU-ms per join'],
    ['join', 'p50_ms', 'room join: latency p50 (ms)'], ['join', 'p99_ms', 'room join: latency p99 (ms)'],
    ['fanout', 'cpu_s', `fan-out ${S} msgs × ${K} members: server CPU-s`], ['fanout', 'cpu_us_per', 'fan-out: CPU-µs per delivered message'],
    ['fanout', 'p50_ms', 'fan-out: latency p50 (ms)'], ['fanout', 'p99_ms', 'fan-out: latency p99 (ms)'],
  ];
  const LABELS = { sio: 'socket.io', 'sio-room': 'socket.io, room connection', 'sio-auth': 'socket.io, token in auth', 'sio-poll': 'socket.io, long-polling', 'sio-emit': 'socket.io, backend emit' };
  const others = PROTOS.filter((p) => p !== 'raw');
  const lines = [
    `| step, metric | raw: median (runs) | ${others.map((p) => `${LABELS[p]}: median (runs) | ÷ raw`).join(' | ')} |`,
    `|---|---|${others.map(() => '---|---').join('|')}|`,
  ];
  for (const [step, key, name] of metrics) {
    const cell = (proto) => {
      const xs = rows.filter((r) => r.step === step && r.proto === proto).sort((a, b) => a.run - b.run).map((r) => r[key]);
      return { m: med(xs.filter((x) => x != null)), xs };
    };
    const a = cell('raw');
    const ratio = (x) => (a.m && x.m != null ? `${(x.m / a.m).toFixed(2)}×` : '–');
    const both = (x) => `${fmt(x.m)} (${x.xs.map(fmt).join(', ')}) | ${ratio(x)}`;
    lines.push(`| ${name} | ${fmt(a.m)} (${a.xs.map(fmt).join(', ')}) | ${others.map((p) => both(cell(p))).join(' | ')} |`);
  }
  const lost = rows.filter((r) => r.expected !== undefined && r.deliveries !== r.expected);
  for (const r of lost) lines.push(`\nrun ${r.run} ${r.proto} ${r.step}: ${r.deliveries} of ${r.expected} delivered`);
  return lines.join('\n');
}

async function main() {
  const machine = {
    date: new Date().toISOString(), nproc: cpus().length, cpu: cpus()[0]?.model, mem_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version, pinned: PIN, commit: safe(() => execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim(), null),
    config: { N, C, M, R, PUSH_RATE, HOLD, K, S, SEND_RATE },
  };
  writeFileSync(join(OUT, 'machine.json'), JSON.stringify(machine, null, 1));
  log(`out: ${OUT}`, JSON.stringify(machine));
  if (PIN) safe(() => execFileSync('taskset', ['-a', '-c', '-p', '0', String(process.pid)], { stdio: 'ignore' }));
  const rows = [];
  const origEmit = emit;
  for (let run = 1; run <= +opt.runs; run++) {
    for (const proto of PROTOS) {
      const before = safe(() => readFileSync(RESULTS, 'utf8').split('\n').filter(Boolean).length, 0);
      try {
        await one(run, proto);
      } catch (err) {
        log(`run ${run} ${proto} failed: ${err.stack ?? err}`);
        origEmit({ run, proto, step: 'error', error: String(err.message ?? err) });
      }
      const lines = readFileSync(RESULTS, 'utf8').split('\n').filter(Boolean).slice(before);
      rows.push(...lines.map((l) => JSON.parse(l)));
    }
  }
  const md = table(rows.filter((r) => r.step !== 'error'));
  writeFileSync(join(OUT, 'table.md'), md + '\n');
  console.log('\n' + md);
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
