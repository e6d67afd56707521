// Starting real gateways for the tests: `wrangler dev` (workerd) on a free loopback port, with
// its output in a log file, stoppable and killable as a process group. Used by tests/run.mjs for
// the suite's gateways and by tests that need a gateway of their own (a crash test kills one).

import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  const log = createWriteStream(logPath);
  const child = spawn(wrangler, ['dev', ...args], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
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
 * A copy of wrangler.toml for a gateway on the bundle already built: no build command (it
 * would rebuild under a running server) and absolute paths.
 */
export function prebuiltConfig(dir) {
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8')
    .replace(/^\[build\]\ncommand = .*\n/m, '')
    .replace(/^main = .*$/m, `main = "${join(root, 'build', 'worker', 'shim.mjs')}"`)
    .replace(/^migrations_dir = .*$/m, `migrations_dir = "${join(root, 'migrations')}"`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'wrangler.toml');
  writeFileSync(path, toml);
  return path;
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
