#!/usr/bin/env node
// One table for a `make bench` output directory (bench/run.sh): for each scenario and metric, the
// median over the runs of the floor, Switchboard and the peer, every run's value beside it, and
// Switchboard ÷ floor (what Switchboard's own code costs on top of the platform).
//
//   node bench/report.mjs bench/results/<time>
//
// Input: <dir>/<target>-<run>/results.jsonl as written by the shared kit's run.sh, and beside it
// settle.jsonl from bench/settle.sh (the part of each step after the harness exited, until the
// server was quiet; a step's CPU-s includes it).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench/report.mjs OUT_DIR');
  process.exit(2);
}
const TARGETS = ['floor', 'switchboard', 'peer'];

function load(file, settleFile) {
  const run = { meta: {}, steps: new Map(), server: new Map(), settle: new Map(), rss: {} };
  const lines = [file, settleFile].filter(existsSync).flatMap((f) => readFileSync(f, 'utf8').split('\n'));
  for (const line of lines) {
    let v;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (v.kind === 'meta') run.meta = v;
    else if (v.kind === 'server') run.server.set(v.label, v);
    else if (v.kind === 'settle') run.settle.set(v.label, v);
    else if (v.kind === 'rss') run.rss[v.point] = v.kb;
    else if (v.label) run.steps.set(v.label, v);
  }
  return run;
}

const runs = Object.fromEntries(TARGETS.map((t) => [t, []]));
for (const name of readdirSync(dir).sort()) {
  const m = name.match(/^(floor|switchboard|peer)-(\d+)$/);
  const file = join(dir, name, 'results.jsonl');
  if (m && existsSync(file)) runs[m[1]].push(load(file, join(dir, name, 'settle.jsonl')));
}
const present = TARGETS.filter((t) => runs[t].length);

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const fmt = (x) => (x === undefined ? '–' : Math.abs(x) >= 100 ? Math.round(x).toString() : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
// CPU % is over the load only (the step less its settle); CPU-s is the whole step, teardown included.
const cpuShare = (run, label) => {
  const s = run.server.get(label);
  const settle = run.settle.get(label) ?? { cpu_s: 0, wall_s: 0 };
  const wall = s ? s.wall_s - settle.wall_s : 0;
  return wall > 0 ? (100 * (s.cpu_s - settle.cpu_s)) / wall : undefined;
};
const cpuSeconds = (run, label) => run.server.get(label)?.cpu_s;
const teardownSeconds = (run, label) => run.settle.get(label)?.cpu_s;
// Deliveries missing from what the answered requests promised. A request whose answer timed out
// is not counted as expected, although the server may still have delivered it: those show under
// 'HTTP errors', not as a negative loss.
const lost = (s) => Math.max(0, (s.expected_deliveries ?? 0) - (s.delivered ?? 0));

const connectMetrics = [
  ['handshakes/s', (s) => s.handshakes_per_s, false],
  ['TCP→ready p50 ms', (s) => s.latency?.p50_ms, true],
  ['TCP→ready p99 ms', (s) => s.latency?.p99_ms, true],
  ['failed', (s) => s.failed + s.timeouts + s.rejected, true],
  ['server CPU-s', (s, r, l) => cpuSeconds(r, l), true],
  ['of which after the harness', (s, r, l) => teardownSeconds(r, l), true],
];

// [step label pattern, title, [[metric, value(step, run, label), lower is better?]]]
const rows = [
  [/^connect-seq$/, 'connect, sequential', connectMetrics],
  [/^connect-conc$/, 'connect, concurrent', connectMetrics],
  [/^auth-reject$/, 'wrongly-signed tokens refused', [['refused of 20', (s) => s.rejected, false]]],
  [/^push-1x\d+$/, 'push 1 user × N devices', [
    ['delivery p50 ms', (s) => s.latency?.p50_ms, true],
    ['delivery p99 ms', (s) => s.latency?.p99_ms, true],
    ['HTTP p50 ms', (s) => s.http_latency_from_schedule?.p50_ms, true],
    ['lost', lost, true],
    ['HTTP errors', (s) => s.http_err, true],
    ['duplicates', (s) => s.dup, true],
    ['server CPU %', (s, r, l) => cpuShare(r, l), true],
    ['server CPU-s', (s, r, l) => cpuSeconds(r, l), true],
    ['of which after the harness', (s, r, l) => teardownSeconds(r, l), true],
  ]],
  [/^push-\d+x1$/, 'push N users × 1 device', [
    ['delivery p50 ms', (s) => s.latency?.p50_ms, true],
    ['delivery p99 ms', (s) => s.latency?.p99_ms, true],
    ['HTTP p50 ms', (s) => s.http_latency_from_schedule?.p50_ms, true],
    ['lost', lost, true],
    ['HTTP errors', (s) => s.http_err, true],
    ['duplicates', (s) => s.dup, true],
    ['server CPU %', (s, r, l) => cpuShare(r, l), true],
    ['server CPU-s', (s, r, l) => cpuSeconds(r, l), true],
    ['of which after the harness', (s, r, l) => teardownSeconds(r, l), true],
  ]],
  ...['small', 'large'].map((size) => [size, `room fan-out (${size})`, [
    ['members join s', (s) => s.setup_s, true],
    ['last recipient p50 ms', (s) => s.latency_last_recipient?.p50_ms, true],
    ['last recipient p99 ms', (s) => s.latency_last_recipient?.p99_ms, true],
    ['per recipient p50 ms', (s) => s.latency_per_recipient?.p50_ms, true],
    ['sender ack p50 ms', (s) => s.ack_latency?.p50_ms, true],
    ['lost', lost, true],
    ['duplicates', (s) => s.dup, true],
    ['server CPU %', (s, r, l) => cpuShare(r, l), true],
    ['server CPU-s', (s, r, l) => cpuSeconds(r, l), true],
    ['of which after the harness', (s, r, l) => teardownSeconds(r, l), true],
  ]]),
  [/^idle-\d+$/, 'idle connections', [
    ['up', (s) => s.up, false],
    ['alive at end', (s) => s.alive_at_end, false],
    ['RSS per connection KiB', (s, r) =>
      r.rss.idle_up !== undefined && r.rss.before_idle !== undefined && s.up ? (r.rss.idle_up - r.rss.before_idle) / s.up : undefined, true],
  ]],
];

/** The step labels of a run matching a row: fan-out rows pick the smaller or larger size. */
function labelFor(run, pattern) {
  const labels = [...run.steps.keys()];
  if (pattern instanceof RegExp) return labels.find((l) => pattern.test(l));
  const fanouts = labels.filter((l) => /^fanout-\d+$/.test(l)).sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]));
  return pattern === 'small' ? fanouts[0] : fanouts[fanouts.length - 1];
}

const out = [];
const head = present.map((t) => `${t} median (runs)`);
const withRatio = present.includes('floor') && present.includes('switchboard');
out.push(`| scenario | metric | ${head.join(' | ')}${withRatio ? ' | switchboard ÷ floor' : ''} |`);
out.push(`|---|---|${present.map(() => '---').join('|')}${withRatio ? '|---' : ''}|`);
for (const [pattern, title, metrics] of rows) {
  const sample = present.flatMap((t) => runs[t]).map((r) => [r, labelFor(r, pattern)]).find(([, l]) => l);
  if (!sample) continue;
  const [sr, sl] = sample;
  const step = sr.steps.get(sl);
  const size = step.members ?? (step.users && step.devices_per_user ? `${step.users}×${step.devices_per_user}` : step.n);
  metrics.forEach(([name, fn], i) => {
    const medians = {};
    const cells = present.map((t) => {
      const values = runs[t].map((r) => {
        const l = labelFor(r, pattern);
        const s = l && r.steps.get(l);
        if (!s || s.error) return undefined;
        try {
          return fn(s, r, l);
        } catch {
          return undefined;
        }
      });
      medians[t] = median(values);
      return `${fmt(medians[t])} (${values.map(fmt).join(', ')})`;
    });
    const ratio = withRatio && medians.floor > 0 && medians.switchboard !== undefined ? `${(medians.switchboard / medians.floor).toFixed(2)}×` : '–';
    out.push(`| ${i === 0 ? `${title}${size !== undefined ? ` (${size})` : ''}` : ''} | ${name} | ${cells.join(' | ')}${withRatio ? ` | ${ratio}` : ''} |`);
  });
}
console.log(out.join('\n'));
console.log('');
for (const t of present) {
  const m = runs[t][0].meta;
  const server = t === 'peer' ? m.describe : `bench/serve.mjs --target ${t} (workerd through Miniflare, direct socket)`;
  console.log(`- **${t}** (${runs[t].length} run${runs[t].length > 1 ? 's' : ''}): ${server}; server on CPU ${m.server_cpu ?? '?'}, harness on CPU ${m.harness_cpu ?? '?'}`);
}
console.log('- Latencies run from each message\'s *scheduled* send time (open loop). CPU-s: CPU seconds the server process tree used during the step, from its start until the server was quiet after the harness exited (its teardown: "of which after the harness"); CPU %: share of one core while the harness ran.');
