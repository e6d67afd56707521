// Starting real gateways for the tests: `wrangler dev` (workerd) on a free loopback port, with
// its output in a log file, stoppable and killable as a process group. Used by tests/run.mjs for
// the suite's gateways and by tests that need a gateway of their own (a crash test kills one).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { signHS256 } from './e2e/helpers.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wrangler = join(root, 'node_modules', '.bin', 'wrangler');
export const childEnv = { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitForHealth(base, child, deadlineMs, answered = (res) => res.ok) {
  const start = Date.now();
  while (Date.now() - start < deadlineMs) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/health`);
      if (answered(res)) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wrangler dev did not answer /health within ${deadlineMs} ms`);
}

/**
 * Starts `wrangler dev` with `args` and its output in `logPath`. The child gets `exited` (a
 * promise), `stop()` (SIGTERM to its process group) and `kill(signal)` (the whole group,
 * workerd included).
 */
export function startWrangler(args, logPath, env = childEnv) {
  // Straight into the file, not through a pipe this process drains: tests/run.mjs waits in
  // spawnSync while the suite runs, and a pipe nobody reads would leave the log empty (and,
  // once full, stall wrangler's writes).
  const log = openSync(logPath, 'a');
  const child = spawn(wrangler, ['dev', ...args], { cwd: root, env, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.exited = new Promise((resolve) => child.on('exit', resolve));
  const signal = (name) => {
    try { process.kill(-child.pid, name); } catch { /* already gone */ }
  };
  child.stop = () => signal('SIGTERM');
  child.kill = signal;
  process.on('exit', child.stop);
  return child;
}

/**
 * Per-user rates for test gateways that must not hit them: tests send hundreds of messages from
 * one user. tests/e2e/quotas.test.mjs runs a gateway of its own with small ones.
 */
export const GENEROUS_RATES = { SEND_RATE: 2000, REST_RATE: 5000, CONNECT_RATE: 5000 };

/**
 * A copy of wrangler.toml for a gateway on the bundle already built (the snapshot `build`
 * made, else build/ and client/dist): no build command (it would rebuild under a running
 * server), absolute paths, and `rates` ({binding: limit}) in place of the `[[ratelimits]]`
 * limits it names.
 */
export function prebuiltConfig(dir, rates = {}) {
  let toml = readFileSync(join(root, 'wrangler.toml'), 'utf8')
    .replace(/^\[build\]\ncommand = .*\n/m, '')
    .replace(/^main = .*$/m, `main = "${join(built.worker, 'shim.mjs')}"`)
    .replace(/^migrations_dir = .*$/m, `migrations_dir = "${join(root, 'migrations')}"`)
    .replace(/^directory = "client\/dist"$/m, `directory = "${built.client}"`);
  for (const [name, limit] of Object.entries(rates)) {
    const binding = new RegExp(`(name = "${name}"\nnamespace_id = "\\d+"\nsimple = \\{ limit = )\\d+`);
    if (!binding.test(toml)) throw new Error(`wrangler.toml has no rate limit binding ${name}`);
    toml = toml.replace(binding, `$1${limit}`);
  }
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'wrangler.toml');
  writeFileSync(path, toml);
  return path;
}

const snapshot = process.env.SB_BUILD_SNAPSHOT;
const built = snapshot
  ? { worker: join(snapshot, 'build', 'worker'), client: join(snapshot, 'client') }
  : { worker: join(root, 'build', 'worker'), client: join(root, 'client', 'dist') };

/**
 * Builds the Worker bundle and the client once (`make build`) and copies both into `dir`, so a
 * later build in the working tree cannot restart gateways under a running suite. Child
 * processes find the copy through SB_BUILD_SNAPSHOT.
 */
export function build(dir) {
  mkdirSync(dir, { recursive: true });
  const run = spawnSync('make', ['--no-print-directory', 'build'], { cwd: root, env: childEnv, encoding: 'utf8' });
  writeFileSync(join(dir, 'build.log'), `${run.stdout}\n${run.stderr}`);
  if (run.status !== 0) throw new Error(`make build failed; see ${join(dir, 'build.log')}`);
  cpSync(join(root, 'build'), join(dir, 'build'), { recursive: true });
  cpSync(join(root, 'client', 'dist'), join(dir, 'client'), { recursive: true });
  process.env.SB_BUILD_SNAPSHOT = dir;
  built.worker = join(dir, 'build', 'worker');
  built.client = join(dir, 'client');
}

export const envFileOf = (path, vars) =>
  writeFileSync(path, Object.entries(vars).map(([k, v]) => `${k}='${v}'`).join('\n') + '\n');

/** Applies the D1 migrations to the local database in `state` (`config`: a wrangler.toml). */
export function applyMigrations(config, state) {
  const args = ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state];
  if (config) args.push('--config', config);
  const migrate = spawnSync(wrangler, args, { cwd: root, env: childEnv, stdio: 'ignore' });
  if (migrate.status !== 0) throw new Error('applying D1 migrations failed');
}

/**
 * Runs SQL on the local D1 database in `state` while a gateway is serving it, as a test's fault.
 * It goes straight to the SQLite file (python3's sqlite3): a second `wrangler` on the same state
 * would take the running gateway down.
 */
export function executeD1(state, sql) {
  const dir = join(state, 'v3', 'd1', 'miniflare-D1DatabaseObject');
  const file = readdirSync(dir).find((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite');
  if (!file) throw new Error(`no local D1 database in ${dir}`);
  const script = 'import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.argv[2])\nc.commit()';
  const run = spawnSync('python3', ['-c', script, join(dir, file), sql], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`executing SQL on D1 failed: ${run.stderr}`);
}

/**
 * A gateway of its own on `dir` (its config, env and state), restartable on the same state with
 * `start(n)`, for tests whose faults or limits must touch no other test. `rates` as for
 * prebuiltConfig. Gives token minting, JSON calls and sockets that resolve on open.
 */
export async function ownGateway(dir, rates = {}, vars = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const secret = randomBytes(32).toString('hex');
  const internalToken = randomBytes(24).toString('hex');
  const config = prebuiltConfig(join(dir, 'config'), rates);
  const envFile = join(dir, 'gateway.env');
  envFileOf(envFile, { JWT_SECRET: secret, INTERNAL_API_TOKEN: internalToken, DEV_MODE: 'true', ...vars });
  applyMigrations(config, join(dir, 'state'));
  const start = async (n) => {
    const child = startWrangler([
      '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', join(dir, 'state'),
      '--env-file', envFile, '--show-interactive-dev-session=false', '--inspector-port', String(await freePort()),
    ], join(dir, `wrangler-${n}.log`));
    await waitForHealth(base, child, 120_000);
    return child;
  };
  const tok = (sub) => signHS256({ sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 }, secret);
  const call = async (method, path, body, bearer) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  };
  const socket = (path, sub) => new Promise((resolve, reject) => {
    const ws = new WebSocket(base.replace('http', 'ws') + path, { headers: { authorization: `Bearer ${tok(sub)}` } });
    const frames = [];
    ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
    ws.on('open', () => resolve({ ws, frames }));
    ws.on('error', reject);
  });
  const execute = (sql) => executeD1(join(dir, 'state'), sql);
  return { base, start, tok, call, socket, internalToken, execute };
}
