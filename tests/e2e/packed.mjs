// The npm packages as a user gets them: `npm pack` in the package's folder makes the tarball,
// which is unpacked into a fresh directory and imported from there — so a test sees exactly
// the files `files` ships, never the checkout around them.

import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Packs `packages/<name>` and unpacks it; the unpacked package's folder. */
export function packed(name) {
  const dir = mkdtempSync(join(tmpdir(), `sb-${name}-`));
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: join(ROOT, 'packages', name),
    encoding: 'utf8',
  });
  const tarball = join(dir, out.trim().split('\n').pop());
  execFileSync('tar', ['xzf', tarball, '-C', dir]);
  return join(dir, 'package');
}

/** The packed `@switchboard/emitter`: its `Emitter`, its hook router and its refusal. */
export async function installPacked() {
  const dir = packed('emitter');
  const { Emitter } = await import(join(dir, 'src/index.js'));
  const { HookRouter, HookError } = await import(join(dir, 'src/hooks.js'));
  return { Emitter, HookRouter, HookError };
}
