// Builds the adapter this example runs on (packages/nestjs, installing its dev dependencies the
// first time) and refreshes the copy of it npm installed here, so that `npm install && npm run
// build && npm start` works from a fresh checkout. An app outside this repository installs the
// packed tarballs instead and needs none of this.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const example = join(dirname(fileURLToPath(import.meta.url)), '..');
const adapter = join(example, '..', '..', 'packages', 'nestjs');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(args, cwd) {
  const result = spawnSync(npm, args, { cwd, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync(join(adapter, 'node_modules'))) run(['ci', '--no-audit', '--no-fund'], adapter);
run(['run', 'build'], adapter);

const installed = join(example, 'node_modules', '@switchboard', 'nestjs');
if (existsSync(installed) && !lstatSync(installed).isSymbolicLink()) {
  rmSync(join(installed, 'dist'), { recursive: true, force: true });
  cpSync(join(adapter, 'dist'), join(installed, 'dist'), { recursive: true });
}
