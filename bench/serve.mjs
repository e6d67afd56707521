// A production-like local server for measurement: the built bundle (or the platform floor,
// bench/floor/) served by workerd through Miniflare's API, without `wrangler dev`'s proxy, request
// logging and file watching. The port given is a direct workerd socket to the Worker (Miniflare's
// `unsafeDirectSockets`), so not even Miniflare's own entry worker sits in front of it. SQLite-backed Durable Objects USER_HUB/ROOM/DIRECTORY (and ROOM_SHARD, POLLING for switchboard), a local D1 `DB` with the
// project's migrations applied, the [vars] of wrangler.toml (each overridable by an environment
// variable of the same name), the secrets from the environment, and from the environment too the
// settings wrangler.toml only names in comments (DEV_MODE, VAPID_SUBJECT, NOTIFY_WEBHOOK_URL, EVENT_HOOK_URL)
// when set. State lives in a throwaway directory that is removed on exit. Binds to 127.0.0.1 only.
//
//   JWT_SECRET=… INTERNAL_API_TOKEN=… node bench/serve.mjs --target switchboard|floor \
//     [--port 8790] [--inspector-port 9229]
//
// Prints one JSON line once it answers: {"target","pid","port","url","inspector_port","state"}.
// Stop it with SIGTERM or SIGINT.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Miniflare } from 'miniflare';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECRETS = [
  'JWT_SECRET', 'JWT_PUBLIC_KEYS', 'INTERNAL_API_TOKEN',
  'VAPID_PUBLIC_KEY', 'VAPID_PRIVATE_KEY', 'NOTIFY_WEBHOOK_SECRET', 'EVENT_HOOK_SECRET',
];
/** Settings that are not in wrangler.toml's [vars] (commented out there, or development-only). */
const UNLISTED_VARS = ['DEV_MODE', 'VAPID_SUBJECT', 'NOTIFY_WEBHOOK_URL', 'EVENT_HOOK_URL'];

const { values: args } = parseArgs({
  options: {
    target: { type: 'string', default: 'switchboard' },
    port: { type: 'string', default: '8790' },
    'inspector-port': { type: 'string' },
  },
});

/** `compatibility_date` and the string values of [vars] from wrangler.toml (the only shapes it uses). */
function wranglerConfig() {
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
  const vars = {};
  let section = '';
  let compatibilityDate;
  for (const line of toml.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('[')) {
      section = trimmed;
      continue;
    }
    const m = trimmed.match(/^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"\s*(#.*)?$/);
    if (!m) continue;
    if (section === '' && m[1] === 'compatibility_date') compatibilityDate = m[2];
    if (section === '[vars]') vars[m[1]] = m[2];
  }
  return { compatibilityDate, vars };
}

/** The project's D1 migrations as single statements, in file order. */
function migrationStatements() {
  const dir = join(root, 'migrations');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .map((line) => line.replace(/--.*$/, ''))
        .join('\n')
        .split(';')
        .map((statement) => statement.trim())
        .filter(Boolean),
    );
}

function modules(target) {
  if (target === 'switchboard') {
    return [
      { type: 'ESModule', path: join(root, 'build/worker/shim.mjs') },
      { type: 'ESModule', path: join(root, 'build/index.js') },
      { type: 'CompiledWasm', path: join(root, 'build/index_bg.wasm') },
    ];
  }
  if (target === 'floor') return [{ type: 'ESModule', path: join(root, 'bench/floor/worker.mjs') }];
  throw new Error(`--target must be switchboard or floor, not ${target}`);
}

async function main() {
  for (const name of ['JWT_SECRET', 'INTERNAL_API_TOKEN']) {
    if ((process.env[name] ?? '').length < 32) throw new Error(`${name} must be set to at least 32 bytes`);
  }
  const { compatibilityDate, vars } = wranglerConfig();
  const bindings = {};
  for (const [name, value] of Object.entries(vars)) bindings[name] = process.env[name] ?? value;
  for (const name of [...SECRETS, ...UNLISTED_VARS]) if (process.env[name]) bindings[name] = process.env[name];

  const state = mkdtempSync(join(tmpdir(), `switchboard-bench-${args.target}-`));
  const port = Number(args.port);
  const inspectorPort = args['inspector-port'] ? Number(args['inspector-port']) : undefined;
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    unsafeDirectSockets: [{ host: '127.0.0.1', port }],
    inspectorPort,
    inspectorHost: inspectorPort ? '127.0.0.1' : undefined,
    compatibilityDate,
    modulesRoot: root,
    modules: modules(args.target),
    bindings,
    durableObjects: {
      USER_HUB: { className: 'UserHub', useSQLite: true },
      ROOM: { className: 'Room', useSQLite: true },
      DIRECTORY: { className: 'Directory', useSQLite: true },
      ...(args.target === 'switchboard'
        ? { ROOM_SHARD: { className: 'RoomShard', useSQLite: true }, POLLING: { className: 'PollingSession', useSQLite: true } }
        : {}),
    },
    d1Databases: { DB: 'switchboard-bench' },
    durableObjectsPersist: join(state, 'do'),
    d1Persist: join(state, 'd1'),
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await mf.dispose().catch(() => {});
    rmSync(state, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Miniflare's own signal hook may exit the process before `stop` has finished: the state
  // directory goes on any exit.
  process.on('exit', () => rmSync(state, { recursive: true, force: true }));

  await mf.ready;
  const url = await mf.unsafeGetDirectURL();
  const db = await mf.getD1Database('DB');
  await db.batch(migrationStatements().map((statement) => db.prepare(statement)));
  const health = await fetch(new URL('/health', url));
  if (!health.ok) throw new Error(`GET /health answered ${health.status}`);
  console.log(
    JSON.stringify({
      target: args.target,
      pid: process.pid,
      port,
      url: url.href,
      inspector_port: inspectorPort ?? null,
      state,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
