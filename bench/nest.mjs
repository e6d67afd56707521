// Issue #21: a NestJS gateway's handler served through @switchboard/nestjs, beside the same kind
// of app on socket.io's own server (the peer of ../shared/bench: NestJS 11 + socket.io 4.8).
//
//   SHARED_BENCH=../shared/bench node bench/nest.mjs [--runs 3] [--clients 20] [--seconds 10]
//
// For each run, each target on fresh processes (server side pinned to CPU 1, this load generator
// to CPU 0, as bench/socketio.mjs does):
//   switchboard  bench/serve.mjs (the Worker, production-like) with EVENT_HOOK_URL pointing at one
//                process of examples/nest-chat (built by `make nest-example`), connection calls on;
//   peer         one process of $SHARED_BENCH/peer-nest (built there with `npm ci && npm run build`).
// C socket.io clients (the token in `auth`, transports websocket) join one room, then each sends
// `send-message` with an ack and the next one when its ack arrives (closed loop) for S seconds:
// every message is also `new-message` to the C sockets of the room. Measured: acks per second,
// ack latency p50/p99, and CPU-s of the app process and of the whole server side per 1,000
// acked events. Prints JSON lines and a markdown table of medians.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';

import { freePort, log, median, pool, sleep, tokens } from './common.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    clients: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
  },
});
const RUNS = +opt.runs, C = +opt.clients, S = +opt.seconds;
const SHARED = resolve(process.env.SHARED_BENCH ?? join(root, '..', 'shared', 'bench'));
const JWT_SECRET = randomBytes(32).toString('hex');
const INTERNAL = randomBytes(32).toString('hex');
const HOOK_SECRET = randomBytes(32).toString('hex');
const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const PIN = cpus().length >= 2;
const token = tokens(JWT_SECRET);

const safe = (f, d) => { try { return f(); } catch { return d; } };
function treePids(pid) {
  const out = [pid];
  for (const t of safe(() => readdirSync(`/proc/${pid}/task`), [])) {
    for (const c of safe(() => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'), '').split(' ').filter(Boolean)) out.push(...treePids(+c));
  }
  return out;
}
function ticks(pids) {
  let sum = 0;
  for (const p of pids) {
    const stat = safe(() => readFileSync(`/proc/${p}/stat`, 'utf8'), null);
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    sum += +f[11] + +f[12];
  }
  return sum;
}
const pin = (pid) => { if (PIN) for (const p of treePids(pid)) safe(() => execFileSync('taskset', ['-a', '-c', '-p', '1', String(p)], { stdio: 'ignore' })); };

/** Spawns `args` and resolves once its output contains `ready`. */
async function start(args, env, ready, cwd = root) {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise((done, fail) => {
    const look = (d) => { out += d; if (out.includes(ready)) done(); };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.once('exit', (code) => fail(new Error(`${args[0]} exited ${code}: ${out.slice(-2000)}`)));
  });
  pin(child.pid);
  return child;
}
async function stop(child) {
  child.kill('SIGTERM');
  await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

/** The switchboard side: the Worker and one example process; `url` the clients connect to. */
async function switchboard() {
  const [gwPort, appPort] = [await freePort(), await freePort()];
  const gateway = await start([join(root, 'bench/serve.mjs'), '--target', 'switchboard', '--port', String(gwPort)], {
    JWT_SECRET, INTERNAL_API_TOKEN: INTERNAL, EVENT_HOOK_SECRET: HOOK_SECRET,
    EVENT_HOOK_URL: `http://127.0.0.1:${appPort}/switchboard/events`, EVENT_HOOK_CONNECTIONS: 'true',
    MAX_SOCKETS_PER_USER: '1000',
  }, '"pid"');
  const app = await start([join(root, 'examples/nest-chat/dist/main.js')], {
    PORT: String(appPort), SWITCHBOARD_URL: `http://127.0.0.1:${gwPort}`, INTERNAL_API_TOKEN: INTERNAL,
    EVENT_HOOK_SECRET: HOOK_SECRET, JWT_SECRET,
  }, 'nest-chat listening', join(root, 'examples/nest-chat'));
  return { url: `http://127.0.0.1:${gwPort}/chat`, app, all: [gateway, app] };
}

/** The peer: one NestJS + socket.io process. */
async function peer() {
  const port = await freePort();
  const app = await start([join(SHARED, 'peer-nest/dist/main.js')], {
    PORT: String(port), JWT_SECRET, INTERNAL_API_TOKEN: INTERNAL,
  }, '"listening"', join(SHARED, 'peer-nest'));
  return { url: `http://127.0.0.1:${port}`, app, all: [app] };
}

function connect(url, user) {
  const socket = io(url, { auth: { token: token(user) }, transports: ['websocket'], forceNew: true, reconnection: false });
  return new Promise((done, fail) => {
    socket.once('connect', () => done(socket));
    socket.once('connect_error', (e) => fail(new Error(`${user}: ${e.message}`)));
  });
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : null;
}

async function measure(target, run) {
  const side = target === 'peer' ? await peer() : await switchboard();
  try {
    const room = `bench-${run}`;
    const sockets = await pool(C, 5, (i) => connect(side.url, `u${run}-${i}`));
    for (const s of sockets) {
      const ack = await s.timeout(10_000).emitWithAck('join-room', { roomId: room });
      if (ack?.error || ack?.ok === false) throw new Error(`join-room: ${JSON.stringify(ack)}`);
    }
    let delivered = 0;
    for (const s of sockets) s.on('new-message', () => { delivered += 1; });
    await sleep(1000);
    const appPids = treePids(side.app.pid);
    const allPids = side.all.flatMap((c) => treePids(c.pid));
    const [app0, all0] = [ticks(appPids), ticks(allPids)];
    const lat = [];
    const until = performance.now() + S * 1000;
    let errors = 0;
    await Promise.all(sockets.map(async (s, i) => {
      for (let n = 0; performance.now() < until; n += 1) {
        const t0 = performance.now();
        const ack = await s.timeout(10_000).emitWithAck('send-message', { roomId: room, content: `m${i}-${n}`, body: `m${i}-${n}` });
        if (ack?.error) errors += 1;
        else lat.push(performance.now() - t0);
      }
    }));
    await sleep(500);
    const [app1, all1] = [ticks(appPids), ticks(allPids)];
    for (const s of sockets) s.disconnect();
    const acks = lat.length;
    return {
      run, target, acks, errors, delivered, expected: acks * C,
      acks_per_s: Math.round(acks / S),
      p50_ms: +pct(lat, 50).toFixed(2), p99_ms: +pct(lat, 99).toFixed(2),
      app_cpu_ms_per_1k: +(((app1 - app0) / HZ) * 1e6 / acks).toFixed(0),
      server_cpu_ms_per_1k: +(((all1 - all0) / HZ) * 1e6 / acks).toFixed(0),
    };
  } finally {
    for (const c of side.all.reverse()) await stop(c);
  }
}

async function main() {
  if (PIN) safe(() => execFileSync('taskset', ['-a', '-c', '-p', '0', String(process.pid)], { stdio: 'ignore' }));
  log(`machine: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}, commit ${safe(() => execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim(), '?')}`);
  const rows = [];
  for (let run = 1; run <= RUNS; run += 1) {
    for (const target of ['switchboard', 'peer']) {
      const row = await measure(target, run);
      console.log(JSON.stringify(row));
      rows.push(row);
    }
  }
  const keys = ['acks_per_s', 'p50_ms', 'p99_ms', 'app_cpu_ms_per_1k', 'server_cpu_ms_per_1k'];
  const lines = ['| metric | switchboard + @switchboard/nestjs: median (runs) | NestJS on socket.io: median (runs) |', '|---|---|---|'];
  for (const key of keys) {
    const cell = (t) => { const xs = rows.filter((r) => r.target === t).map((r) => r[key]); return `${median(xs)} (${xs.join(', ')})`; };
    lines.push(`| ${key} | ${cell('switchboard')} | ${cell('peer')} |`);
  }
  console.log(`\n${lines.join('\n')}`);
}

main().catch((err) => { console.error(err); process.exit(1); });
