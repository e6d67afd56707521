// Issue #13: a broadcast reaching every online user, through the sharded directory.
//
//   node bench/broadcast.mjs [--users 3000] [--runs 3] [--conc 20] [--warmup 1]
//
// Starts a fresh bench/serve.mjs server (workerd through Miniflare, no wrangler dev proxy;
// fresh state and random secrets), connects U distinct users with one raw socket each (at most C
// opening at once; the local runtime holds one SQLite database per hub with a socket, so a few
// thousand distinct users is its limit), waits until GET /internal/v1/online counts them all,
// sends W warmup broadcasts (shown, not in the median: the first wakes every hub, which has
// hibernated while the others connected), then R measured ones, one after another. For each: the time
// from the POST to its answer, from the POST to the last socket's receipt, and the median
// socket's receipt; the answer's hubs and devices; and whether every socket got it exactly once
// (checked after the next broadcast has arrived everywhere, or a quiet second for the last).
// Prints a markdown table of every run and the median.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { freePort, log, median, pool, sleep, tokens } from './common.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    users: { type: 'string', default: '3000' },
    runs: { type: 'string', default: '3' },
    conc: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '1' },
  },
});
const USERS = +opt.users, RUNS = +opt.runs, CONC = +opt.conc, WARMUP = +opt.warmup;
const JWT_SECRET = randomBytes(32).toString('hex');
const INTERNAL = randomBytes(32).toString('hex');

const token = tokens(JWT_SECRET);

async function startServer() {
  const port = await freePort();
  const env = { ...process.env, JWT_SECRET, INTERNAL_API_TOKEN: INTERNAL };
  const child = spawn('node', [join(root, 'bench/serve.mjs'), '--target', 'switchboard', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stderr.on('data', (d) => { buf += d; });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { buf += d; if (buf.includes('"pid"')) resolve(); });
    child.on('exit', (code) => reject(new Error(`serve.mjs exited ${code}: ${buf}`)));
  });
  const server = { child, stopping: false };
  child.on('exit', (code, signal) => server.stopping || log(`the server exited (${code ?? signal}): ${buf.slice(-2000)}`));
  return Object.assign(server, { base: `http://127.0.0.1:${port}`, wsBase: `ws://127.0.0.1:${port}` });
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

/** One raw socket of `user`, resolved at `ready`; `got` maps a broadcast's run to [receipt times]. */
function connect(server, user) {
  const ws = new WebSocket(`${server.wsBase}/v1/connect?token=${token(user)}`, { perMessageDeflate: false });
  const client = { ws, got: new Map() };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${user}: no ready in 30 s`)); }, 30_000);
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.event === 'ready') { clearTimeout(timer); resolve(client); }
      if (frame.event === 'bench.broadcast' && frame.broadcast === true && frame.seq === undefined) {
        const times = client.got.get(frame.data.run) ?? [];
        times.push(performance.now());
        client.got.set(frame.data.run, times);
      }
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`${user}: HTTP ${res.statusCode}`)); });
  });
}

/** Sends broadcast `run` and waits until every socket has it (or 60 s). */
async function measure(server, clients, run) {
  const t0 = performance.now();
  const answer = await internal(server, 'POST', '/internal/v1/broadcast', { event: 'bench.broadcast', data: { run } });
  const answeredMs = performance.now() - t0;
  const deadline = Date.now() + 60_000;
  while (clients.some((c) => !c.got.has(run)) && Date.now() < deadline) await sleep(5);
  const firsts = clients.filter((c) => c.got.has(run)).map((c) => c.got.get(run)[0] - t0);
  return {
    run, answer, answeredMs, received: firsts.length,
    lastMs: Math.max(...firsts), medianMs: median(firsts),
  };
}

async function main() {
  log(`starting the server; ${USERS} users, ${RUNS} measured broadcasts (+${WARMUP} warmup)`);
  const server = await startServer();
  try {
    const t0 = performance.now();
    const clients = await pool(USERS, CONC, (i) => connect(server, `bc-${i}`));
    log(`${clients.length} users connected in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const deadline = Date.now() + 60_000;
    let listed = 0;
    while (Date.now() < deadline) {
      listed = (await internal(server, 'GET', '/internal/v1/online?limit=1')).count;
      if (listed === USERS) break;
      await sleep(200);
    }
    if (listed !== USERS) throw new Error(`the directory lists ${listed} of ${USERS} users`);
    const results = [];
    for (let run = 1 - WARMUP; run <= RUNS; run++) {
      const result = await measure(server, clients, run);
      log(`broadcast ${run}: answer ${result.answeredMs.toFixed(0)} ms, last socket ${result.lastMs.toFixed(0)} ms, ${JSON.stringify(result.answer)}`);
      results.push(result);
    }
    await sleep(1000);
    for (const result of results) {
      result.once = clients.every((c) => (c.got.get(result.run) ?? []).length === 1);
    }
    const measured = results.filter((r) => r.run > 0);
    const fmt = (x) => x.toFixed(0);
    const lines = [
      `Broadcast to ${USERS} online users (one raw socket each), bench/serve.mjs, ${RUNS} runs`,
      '',
      '| run | POST → answer (ms) | POST → median socket (ms) | POST → last socket (ms) | hubs | devices | sockets that got it | exactly once |',
      '|---|---|---|---|---|---|---|---|',
      ...results.map((r) => `| ${r.run > 0 ? r.run : `warmup ${1 - r.run}`} | ${fmt(r.answeredMs)} | ${fmt(r.medianMs)} | ${fmt(r.lastMs)} | ${r.answer.hubs} | ${r.answer.devices} | ${r.received} | ${r.once ? 'yes' : 'NO'} |`),
      `| median of ${RUNS} | ${fmt(median(measured.map((r) => r.answeredMs)))} | ${fmt(median(measured.map((r) => r.medianMs)))} | ${fmt(median(measured.map((r) => r.lastMs)))} | | | | |`,
    ];
    console.log(lines.join('\n'));
    for (const c of clients) c.ws.terminate();
    if (!results.every((r) => r.once && r.received === USERS && r.answer.devices === USERS)) process.exitCode = 1;
  } finally {
    server.stopping = true;
    server.child.kill('SIGTERM');
    await Promise.race([new Promise((r) => server.child.once('exit', r)), sleep(10_000)]);
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
