// Medians of bench/rooms.sh's results: one row per configuration (every run in brackets).
//
//   node bench/rooms-report.mjs DIR   (DIR/results.jsonl)

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench/rooms-report.mjs DIR');
  process.exit(2);
}
const rows = readFileSync(join(dir, 'results.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
const groups = new Map();
for (const row of rows) {
  const name = row.step.replace(/-r\d+$/, '');
  if (!groups.has(name)) groups.set(name, []);
  groups.get(name).push(row);
}
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cell = (runs, key) => {
  const values = runs.map((r) => r[key]);
  const m = median(values);
  return m === null ? '—' : `${m} [${values.map((v) => v ?? '—').join(', ')}]`;
};
const columns = [
  ['members up', 'members_up'], ['join s', 'join_s'], ['join CPU-s', 'join_cpu_s'], ['last recipient p50 ms', 'last_p50_ms'],
  ['last recipient p99 ms', 'last_p99_ms'], ['per recipient p50 ms', 'per_recipient_p50_ms'], ['fan-out CPU-s', 'fanout_cpu_s'],
  ['CPU ms / message', 'cpu_ms_per_message'], ['teardown CPU-s', 'teardown_cpu_s'],
];
console.log(`| configuration | ${columns.map(([title]) => title).join(' | ')} | lost / dup / reorder / incomplete |`);
console.log(`|---|${columns.map(() => '---').join('|')}|---|`);
for (const [name, runs] of groups) {
  const faults = ['lost', 'dup', 'reorder', 'incomplete'].map((k) => runs.reduce((sum, r) => sum + (r[k] ?? 0), 0)).join(' / ');
  const errors = runs.filter((r) => r.error).map((r) => r.error);
  console.log(`| ${name} | ${columns.map(([, key]) => cell(runs, key)).join(' | ')} | ${faults}${errors.length ? ` (errors: ${errors.join('; ')})` : ''} |`);
}
