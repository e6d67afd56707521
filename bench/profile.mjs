#!/usr/bin/env node
// V8 CPU profile of the Worker (and its Durable Objects: the same isolate locally) while a command
// runs, through workerd's inspector (bench/serve.mjs --inspector-port N) and the Chrome DevTools
// Protocol: Profiler.start, run the command, Profiler.stop. Writes a .cpuprofile (open it in Chrome
// DevTools or speedscope) and prints the top functions by self and total time.
//
//   node bench/profile.mjs --inspector-port 9229 --out profiles/push.cpuprofile [--interval-us 100] \
//     [--timeout 300] -- COMMAND [ARGS...]
//   node bench/profile.mjs --summary profiles/push.cpuprofile [--top 25]

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: args, positionals: command } = parseArgs({
  allowPositionals: true,
  options: {
    'inspector-port': { type: 'string' },
    out: { type: 'string' },
    'interval-us': { type: 'string', default: '100' },
    timeout: { type: 'string', default: '300' },
    summary: { type: 'string' },
    top: { type: 'string', default: '25' },
    target: { type: 'string', default: 'core:user:' },
  },
});

function frameName(frame) {
  const fn = frame.functionName || '(anonymous)';
  if (fn.startsWith('(')) return fn;
  const where = frame.url ? frame.url.replace(/^.*\//, '') : '';
  return `${fn} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`.trim();
}

/** Self and total time per function (a function counted once per sample, however deep). */
function summarise(profile, top) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const total = new Map();
  let all = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas?.[i] ?? 0;
    const leaf = byId.get(id);
    const leafName = frameName(leaf.callFrame);
    if (leafName === '(idle)') {
      idle += dt;
      return;
    }
    all += dt;
    self.set(leafName, (self.get(leafName) ?? 0) + dt);
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const name = frameName(byId.get(n).callFrame);
      if (!seen.has(name)) {
        seen.add(name);
        total.set(name, (total.get(name) ?? 0) + dt);
      }
    }
  });
  const ms = (us) => (us / 1000).toFixed(1);
  const pct = (us) => ((100 * us) / Math.max(all, 1)).toFixed(1);
  const lines = [`busy ${ms(all)} ms, idle ${ms(idle)} ms (percentages are of busy time)`, '', 'self time:'];
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us).padStart(5)}%  ${ms(us).padStart(9)} ms  ${name}`);
  lines.push('', 'total time (self + callees):');
  for (const [name, us] of [...total].sort((a, b) => b[1] - a[1]).filter(([n]) => n !== '(root)').slice(0, top)) {
    lines.push(`  ${pct(us).padStart(5)}%  ${ms(us).padStart(9)} ms  ${name}`);
  }
  return lines.join('\n');
}

async function profileWhile() {
  const port = args['inspector-port'];
  if (!port || !args.out || command.length === 0) {
    console.error('usage: node bench/profile.mjs --inspector-port N --out FILE -- COMMAND [ARGS...]');
    process.exit(2);
  }
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = list.find((t) => t.id === args.target);
  if (!target) throw new Error(`no inspector target ${args.target}: ${list.map((t) => t.id).join(', ')}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl.replace('localhost', '127.0.0.1'), { maxPayload: 1 << 30 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let next = 0;
  const pending = new Map();
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw);
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
    else p.resolve(msg.result);
  });
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });

  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: Number(args['interval-us']) });
  await call('Profiler.start');
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
  const timer = setTimeout(() => child.kill('SIGTERM'), Number(args.timeout) * 1000);
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  const { profile } = await call('Profiler.stop');
  ws.close();
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, JSON.stringify(profile));
  console.error(`profile: ${args.out} (command exited ${code})`);
  console.log(summarise(profile, Number(args.top)));
  process.exit(code);
}

if (args.summary) console.log(summarise(JSON.parse(readFileSync(args.summary, 'utf8')), Number(args.top)));
else await profileWhile();
