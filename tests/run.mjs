// End-to-end test runner: builds the Worker and the client once, starts the real Worker under
// `wrangler dev` (workerd) on a free port with its own throwaway state directory and local D1
// (per-user rates raised so heavy tests do not hit them; quotas.test.mjs checks those), runs every tests/e2e/*.test.mjs against
// it with node's test runner, and stops it afterwards, on failure too.
//
// The test environment gets its own secrets: a fresh HS256 secret, fresh ES256 and RS256 key
// pairs (their public halves as JWT_PUBLIC_KEYS, their private halves handed to the tests), and
// short retention/grace settings so those behaviours can be observed quickly, and a fresh VAPID
// key pair with a one-second notification delay (tests/e2e/notify.test.mjs).
//
// A second gateway runs beside it from the same build with a configuration that must fail safe
// (public keys without an audience, a short internal token, the development secret without
// DEV_MODE); tests/e2e/config.test.mjs checks that it admits nothing and says why.

import { spawnSync } from 'node:child_process';
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  GENEROUS_RATES, applyMigrations, build, envFileOf, freePort, prebuiltConfig, root, startWrangler, waitForHealth,
} from './server.mjs';

/** A VAPID key pair as Web Push configures it: base64url raw P-256 point and scalar. */
function vapidKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { public: ecdh.getPublicKey().toString('base64url'), private: ecdh.getPrivateKey().toString('base64url') };
}

function testKeys() {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecPublic = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' };
  const rsaPublic = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
  return {
    jwks: JSON.stringify({ keys: [ecPublic, rsaPublic] }),
    private: JSON.stringify({
      ec: ec.privateKey.export({ format: 'jwk' }),
      rsa: rsa.privateKey.export({ format: 'jwk' }),
    }),
  };
}

async function main() {
  const state = mkdtempSync(join(tmpdir(), 'switchboard-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const keys = testKeys();
  const vapid = vapidKeys();
  // The Socket.IO tests' backend hook listens here while socketio.test.mjs runs
  // (tests/e2e/hook-server.mjs); test files run one at a time.
  const hookPort = await freePort();
  // Where tests/e2e/socketio-browser.test.mjs serves a page of another origin than the gateway's.
  const pagePort = await freePort();
  const env = {
    JWT_SECRET: randomBytes(32).toString('hex'),
    JWT_PUBLIC_KEYS: keys.jwks,
    JWT_ISSUER: 'https://issuer.test',
    JWT_AUDIENCE: 'switchboard-test',
    INTERNAL_API_TOKEN: randomBytes(24).toString('hex'),
    DEV_MODE: 'true',
    // Every line the gateway writes, the per-session ones (debug) too: tests/e2e/logs.test.mjs
    // reads them.
    LOG_LEVEL: 'debug',
    ALLOWED_ORIGINS: `https://allowed.test,http://localhost:${pagePort}`,
    RETENTION_EVENTS: '100',
    RETENTION_DAYS: '0',
    PRUNE_INTERVAL_SECONDS: '1',
    PRESENCE_GRACE_SECONDS: '2',
    RATE_LIMIT_BURST: '50',
    RATE_LIMIT_PER_SECOND: '10',
    REPLAY_BATCH_BYTES: '65536',
    REPLAY_BYTES_PER_SECOND: '131072',
    RETENTION_BYTES: '262144',
    ROOM_WINDOW_MESSAGES: '50',
    MAX_SOCKETS_PER_USER: '8',
    MAX_ROOM_MEMBERS: '60',
    // Tiny shards: every room test with more than two sockets spans the room's shards.
    ROOM_SHARD_SOCKETS: '2',
    ROOM_PRESENCE_BATCH_USERS: '12',
    MAX_ROOMS_PER_DAY: '5',
    RECALL_WINDOW_SECONDS: '3',
    SOCKETIO_PING_INTERVAL_MS: '1500',
    SOCKETIO_PING_TIMEOUT_MS: '1000',
    SOCKETIO_MAX_NAMESPACES: '4',
    MAX_PENDING_PER_ADDRESS: '16',
    SOCKETIO_CONNECT_TIMEOUT_MS: '1500',
    EVENT_HOOK_URL: `http://127.0.0.1:${hookPort}/switchboard/events`,
    EVENT_HOOK_SECRET: randomBytes(32).toString('hex'),
    EVENT_HOOK_TIMEOUT_MS: '1000',
    EVENT_HOOK_CONNECTIONS: 'true',
    VAPID_PUBLIC_KEY: vapid.public,
    VAPID_PRIVATE_KEY: vapid.private,
    VAPID_SUBJECT: 'mailto:ops@switchboard.test',
    NOTIFY_AFTER_SECONDS: '1',
    NOTIFY_MIN_INTERVAL_SECONDS: '2',
    MAX_PUSH_SUBSCRIPTIONS: '3',
  };
  const envFile = join(state, 'test.env');
  envFileOf(envFile, env);

  build(join(state, 'build'));
  const config = prebuiltConfig(join(state, 'config'), GENEROUS_RATES);
  applyMigrations(config, state);

  const logPath = join(state, 'wrangler.log');
  const child = startWrangler([
    '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state,
    '--env-file', envFile, '--show-interactive-dev-session=false', '--inspector-port', String(await freePort()),
  ], logPath);

  const badPort = await freePort();
  const badBase = `http://127.0.0.1:${badPort}`;
  const badDir = join(state, 'misconfigured');
  const badLogPath = join(state, 'misconfigured.log');
  let bad;

  let status = 1;
  try {
    await waitForHealth(base, child, 240_000);
    const badConfig = prebuiltConfig(badDir);
    const badEnv = join(badDir, 'bad.env');
    envFileOf(badEnv, {
      JWT_SECRET: 'switchboard-development-secret-not-for-production',
      JWT_PUBLIC_KEYS: keys.jwks,
      INTERNAL_API_TOKEN: 'short',
    });
    bad = startWrangler([
      '--config', badConfig, '--ip', '127.0.0.1', '--port', String(badPort), '--persist-to', join(badDir, 'state'),
      '--env-file', badEnv, '--show-interactive-dev-session=false', '--inspector-port', String(await freePort()),
    ], badLogPath);
    await waitForHealth(badBase, bad, 120_000, (res) => res.status === 503);
    const dir = join(root, 'tests', 'e2e');
    const files = readdirSync(dir).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => join(dir, f));
    const only = process.argv.slice(2);
    // By file name: a checkout's own path (a worktree named after a test) must not select all.
    const selected = only.length ? files.filter((f) => only.some((o) => basename(f).includes(o))) : files;
    const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=180000', ...selected], {
      cwd: root,
      stdio: 'inherit',
      env: {
        ...process.env,
        SB_BASE: base,
        SB_JWT_SECRET: env.JWT_SECRET,
        SB_INTERNAL_TOKEN: env.INTERNAL_API_TOKEN,
        SB_ISSUER: env.JWT_ISSUER,
        SB_AUDIENCE: env.JWT_AUDIENCE,
        SB_PRIVATE_KEYS: keys.private,
        SB_RETENTION_EVENTS: env.RETENTION_EVENTS,
        SB_PRESENCE_GRACE_SECONDS: env.PRESENCE_GRACE_SECONDS,
        SB_RATE_LIMIT_BURST: env.RATE_LIMIT_BURST,
        SB_RATE_LIMIT_PER_SECOND: env.RATE_LIMIT_PER_SECOND,
        SB_REPLAY_BATCH_BYTES: env.REPLAY_BATCH_BYTES,
        SB_REPLAY_BYTES_PER_SECOND: env.REPLAY_BYTES_PER_SECOND,
        SB_RETENTION_BYTES: env.RETENTION_BYTES,
        SB_ROOM_WINDOW_MESSAGES: env.ROOM_WINDOW_MESSAGES,
        SB_MAX_SOCKETS_PER_USER: env.MAX_SOCKETS_PER_USER,
        SB_MAX_ROOM_MEMBERS: env.MAX_ROOM_MEMBERS,
        SB_MAX_ROOMS_PER_DAY: env.MAX_ROOMS_PER_DAY,
        SB_RECALL_WINDOW_SECONDS: env.RECALL_WINDOW_SECONDS,
        SB_SOCKETIO_PING_INTERVAL_MS: env.SOCKETIO_PING_INTERVAL_MS,
        SB_SOCKETIO_PING_TIMEOUT_MS: env.SOCKETIO_PING_TIMEOUT_MS,
        SB_SOCKETIO_MAX_NAMESPACES: env.SOCKETIO_MAX_NAMESPACES,
        SB_MAX_PENDING_PER_ADDRESS: env.MAX_PENDING_PER_ADDRESS,
        SB_SOCKETIO_CONNECT_TIMEOUT_MS: env.SOCKETIO_CONNECT_TIMEOUT_MS,
        SB_HOOK_PORT: String(hookPort),
        SB_PAGE_PORT: String(pagePort),
        SB_HOOK_SECRET: env.EVENT_HOOK_SECRET,
        SB_HOOK_TIMEOUT_MS: env.EVENT_HOOK_TIMEOUT_MS,
        SB_VAPID_PUBLIC_KEY: env.VAPID_PUBLIC_KEY,
        SB_NOTIFY_AFTER_SECONDS: env.NOTIFY_AFTER_SECONDS,
        SB_NOTIFY_MIN_INTERVAL_SECONDS: env.NOTIFY_MIN_INTERVAL_SECONDS,
        SB_MAX_PUSH_SUBSCRIPTIONS: env.MAX_PUSH_SUBSCRIPTIONS,
        SB_WRANGLER_LOG: logPath,
        // Values that must never appear in the gateway's log (tests/e2e/logs.test.mjs).
        SB_SECRETS: JSON.stringify([env.JWT_SECRET, env.INTERNAL_API_TOKEN, env.EVENT_HOOK_SECRET, env.VAPID_PRIVATE_KEY]),
        SB_BAD_BASE: badBase,
        SB_BUILD_SNAPSHOT: join(state, 'build'),
      },
    });
    status = run.status ?? 1;
  } catch (err) {
    console.error(String(err));
  } finally {
    child.stop();
    bad?.stop();
    if (status !== 0) {
      console.error(`--- wrangler dev log (${logPath}) ---`);
      console.error(spawnSync('tail', ['-n', '80', logPath], { encoding: 'utf8' }).stdout);
    }
    await Promise.race([Promise.all([child.exited, bad?.exited]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (status === 0) rmSync(state, { recursive: true, force: true });
  }
  process.exit(status);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
