#!/usr/bin/env node
// Summarises V8 .cpuprofile files (node --cpu-prof): per file, CPU busy share, self time by module/package and by
// function, and inclusive time of our own functions (packages/*, services/*) — who caused the work.
//
// Usage: node scripts/cpuprofile-summary.mjs <dir-or-files...> [--top N] [--all]
// A window.json in the directory ({ startUs, endUs } on V8's monotonic clock, written by test/bench/profile.ts)
// limits the samples to the load interval; --all ignores it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

const args = process.argv.slice(2);
const topN = Number(args[args.indexOf('--top') + 1]) || 12;
const useWindow = !args.includes('--all');
const paths = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--top');
if (paths.length === 0) {
  console.error('usage: cpuprofile-summary.mjs <dir-or-files...> [--top N] [--all]');
  process.exit(2);
}

const files = [];
let windowSpec;
for (const p of paths) {
  if (statSync(p).isDirectory()) {
    // A folder per process (test/bench/profile.ts): <dir>/<service>/CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    for (const f of readdirSync(p).sort()) {
      const sub = join(p, f);
      if (f.endsWith('.cpuprofile')) files.push(sub);
      else if (statSync(sub).isDirectory()) {
        for (const g of readdirSync(sub).sort()) if (g.endsWith('.cpuprofile')) files.push(join(sub, g));
      }
    }
    const w = join(p, 'window.json');
    if (useWindow && existsSync(w)) windowSpec = JSON.parse(readFileSync(w, 'utf8'));
  } else files.push(p);
}

// Shares are of non-idle samples. On a saturated machine a thread that is runnable but waiting for a CPU is sampled
// as busy too, so "non-idle" overstates CPU time: take absolute CPU from /proc (test/bench/profile.ts prints it).

/** Which module a frame belongs to: an npm package, one of our workspaces, node internals, or a V8 pseudo-frame. */
function moduleOf(cf) {
  const url = cf.url || '';
  if (!url) {
    if (cf.functionName === '(garbage collector)') return 'GC';
    if (cf.functionName === '(program)') return '(program: V8/native, unattributed)';
    if (cf.functionName === '(idle)') return '(idle)';
    return 'native/builtin';
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    if (pkg.startsWith('@opentelemetry/')) return `otel (${pkg.slice(15)})`;
    return pkg;
  }
  const m = /\/(packages|services)\/([^/]+)\//.exec(url);
  if (m) return `${m[1] === 'packages' ? '@mailgate/' : 'service '}${m[2]}`;
  if (url.startsWith('node:')) return 'node internals';
  return url;
}

// Our code from source (tsx: .../src/) or compiled (.../dist/); workspace symlinks resolve to the real path.
/** Coarse roll-up of moduleOf() for one-line comparisons between processes. */
function groupOf(m) {
  if (m.startsWith('@mailgate/') || m.startsWith('service ')) return 'our code';
  if (m.startsWith('otel')) return 'otel';
  if (m === 'node internals' || m === 'native/builtin') return 'node+native (incl. socket syscalls)';
  if (m.startsWith('(program')) return 'V8 unattributed';
  if (['kafkajs', 'ioredis', 'GC', 'pino', 'tsx', 'require-in-the-middle'].includes(m)) return m;
  if (m === 'redis-parser' || m === '@ioredis/commands') return 'ioredis';
  return 'other libraries';
}

const ours = (cf) =>
  /\/(packages|services)\/[^/]+\/(src|dist)\//.test(cf.url || '') && !cf.url.includes('/node_modules/');
const shortUrl = (url) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, '')
    .replace(/^.*?\/work\/main\//, '');
const fnKey = (cf) =>
  `${cf.functionName || '(anonymous)'} ${cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();
const pct = (n, d) => (d ? ((n / d) * 100).toFixed(1) : '0.0');

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample timestamps: startTime + running sum of timeDeltas; weight each sample by the time to the next one.
  let t = prof.startTime;
  const selfUs = new Map(); // node id -> µs
  let total = 0;
  let idle = 0;
  const inclusive = new Map(); // our fnKey -> µs
  const libInclusive = new Map(); // module -> µs of samples with that module anywhere on the stack
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    const dt = i + 1 < prof.timeDeltas.length ? prof.timeDeltas[i + 1] : 0;
    if (windowSpec && (t < windowSpec.startUs || t > windowSpec.endUs)) continue;
    const id = prof.samples[i];
    const node = byId.get(id);
    if (node.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    total += dt;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    const seen = new Set();
    const mods = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      if (cf.functionName !== '(root)') mods.add(moduleOf(cf).replace(/^otel \(.*\)$/, 'otel (all)'));
      if (!ours(cf)) continue;
      const k = fnKey(cf);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
    for (const m of mods) libInclusive.set(m, (libInclusive.get(m) ?? 0) + dt);
  }
  const byModule = new Map();
  const byFn = new Map();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    const m = moduleOf(cf);
    byModule.set(m, (byModule.get(m) ?? 0) + us);
    const k = `${fnKey(cf)}  [${m}]`;
    byFn.set(k, (byFn.get(k) ?? 0) + us);
  }
  const byGroup = new Map();
  for (const [m, us] of byModule) byGroup.set(groupOf(m), (byGroup.get(groupOf(m)) ?? 0) + us);
  const wall = total + idle;
  const msgs = windowSpec?.messages;
  // Main thread = thread id 0 in Node's default file name; others are workers (e.g. tsx's module loader).
  const tid = /\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1];
  const dirName = basename(join(file, '..'));
  const label =
    tid === undefined ? basename(file, '.cpuprofile') : `${dirName}${tid === '0' ? '' : ` (worker thread ${tid})`}`;
  if (tid !== undefined && tid !== '0' && total < 1000 * 50) {
    console.log(`\n## ${label}: ${(total / 1000).toFixed(0)} ms busy in the window (skipped)`);
    continue;
  }
  console.log(`\n## ${label}`);
  console.log(
    `busy ${(total / 1000).toFixed(0)} ms of ${(wall / 1000).toFixed(0)} ms sampled (${pct(total, wall)} % non-idle)` +
      (msgs ? `, ${(total / 1000 / msgs).toFixed(2)} ms non-idle per message (${msgs} messages)` : '') +
      (windowSpec ? ' — load window only' : ' — whole run'),
  );
  const print = (title, map, n) => {
    console.log(`\n${title}`);
    for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      console.log(`  ${pct(us, total).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
    }
  };
  console.log(
    `self time by group: ${[...byGroup]
      .sort((a, b) => b[1] - a[1])
      .map(([g, us]) => `${g} ${pct(us, total)} %`)
      .join(', ')}`,
  );
  print('self time by module', byModule, topN);
  print('self time by function', byFn, topN);
  const libs = new Map([...libInclusive].filter(([m]) => !m.startsWith('node internals') && !m.startsWith('(')));
  print('inclusive time by module (samples with the module anywhere on the stack)', libs, topN);
  print('inclusive time of our functions (incl. the libraries they call)', inclusive, topN);
}
