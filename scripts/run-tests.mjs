#!/usr/bin/env node
// Runs every node:test file of the repository with the TypeScript loader, from source (the `mailgate-src`
// export condition), so tests need no build step. Usage: npm test [-- <path filter>...]
//   MAILGATE_TEST_CONCURRENCY=N  files run in parallel (default 2: the CI machine has 2 cores)
//   MAILGATE_TEST_TIMEOUT_MS=N   per-file timeout (default 300 s; 600 s when an e2e file is selected)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const filters = process.argv.slice(2);

function testFiles(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = [];
for (const group of ['packages', 'services']) {
  const base = path.join(root, group);
  if (!existsSync(base)) continue;
  for (const ws of readdirSync(base).sort()) files.push(...testFiles(path.join(base, ws, 'test')));
}
files.push(...testFiles(path.join(root, 'test')));
files.push(...testFiles(path.join(root, 'deploy', 'k8s-validate', 'test')));

const selected = files
  .map((f) => path.relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)));
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.MAILGATE_TEST_CONCURRENCY ?? '2';
// Per file. The whole-stack e2e files start a dozen processes on 2 shared cores and then run for minutes: 10 min.
const timeoutMs =
  process.env.MAILGATE_TEST_TIMEOUT_MS ?? (selected.some((f) => f.startsWith('test/e2e/')) ? '600000' : '300000');
const args = [
  '--import',
  'tsx',
  '--conditions=mailgate-src',
  '--test',
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${timeoutMs}`,
  ...selected,
];
console.log(`running ${selected.length} test files (concurrency ${concurrency})`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
