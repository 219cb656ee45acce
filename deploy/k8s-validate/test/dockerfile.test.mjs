// Dockerfile and .dockerignore, linted by rule (no Docker engine or hadolint here): multi-stage, pinned LTS base,
// reproducible install, production deps only, non-root, exec-form entrypoint on the CLI that exists.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpPorts } from '../lib/contracts.mjs';
import { REPO } from '../lib/helm.mjs';

const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
// Instructions with line continuations joined, comments dropped.
const instructions = text
  .replace(/\\\n(\s*#[^\n]*\n)*/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(' ') };
  });
const all = (op) => instructions.filter((i) => i.op === op);
const args = Object.fromEntries(all('ARG').map((a) => a.args.split('=')));

test('multi-stage on a pinned Node LTS base', () => {
  const froms = all('FROM');
  assert.ok(froms.length >= 2, 'build and runtime stages');
  for (const f of froms) {
    const image = f.args.split(/\s+/)[0].replace(/^\$\{(\w+)\}$/, (_, k) => args[k]);
    assert.match(image, /^node:(\d+)\.\d+\.\d+-[a-z]+(-slim)?$/, `base ${image} pinned to a full version`);
    const major = Number(/^node:(\d+)/.exec(image)[1]);
    assert.equal(major % 2, 0, 'even Node majors are the LTS lines');
    const engines = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).engines.node;
    // One Node line everywhere: the image runs the major the workspace declares (and tests) in engines.
    assert.equal(major, Number(/(\d+)/.exec(engines)[1]), `Node ${major} is the engines major (${engines})`);
  }
});

test('reproducible install, build, production deps only', () => {
  const runs = all('RUN').map((r) => r.args);
  assert.ok(
    runs.some((r) => /\bnpm ci\b/.test(r)),
    'npm ci (lockfile), not npm install',
  );
  assert.ok(!runs.some((r) => /\bnpm install\b/.test(r)));
  assert.ok(runs.some((r) => /\bnpm run build\b/.test(r)));
  assert.ok(runs.some((r) => /\bnpm prune --omit=dev\b/.test(r)));
  assert.ok(!all('ADD').some((a) => /https?:\/\//.test(a.args)), 'no ADD of URLs');
});

test('runs as a numeric non-root user, exec-form entrypoint on the CLI', () => {
  const lastFrom = instructions.findLastIndex((i) => i.op === 'FROM');
  const runtime = instructions.slice(lastFrom);
  const user = runtime.filter((i) => i.op === 'USER').at(-1);
  assert.ok(user, 'USER in the runtime stage');
  const uid = Number(user.args.split(':')[0]);
  assert.ok(Number.isInteger(uid) && uid > 0, 'numeric non-root uid (runAsNonRoot can verify it)');
  // The chart's podSecurityContext uses the same uid.
  const values = readFileSync(join(REPO, 'helm', 'mailgate', 'values.yaml'), 'utf8');
  assert.match(values, new RegExp(`runAsUser: ${uid}\\b`));
  const entry = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT').args);
  assert.equal(entry[0], 'node');
  assert.ok(existsSync(join(REPO, entry[1].replace(/^\/app\//, ''))), `${entry[1]} exists in the repository`);
  const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((e) => e.args.split(/\s+/).map(Number));
  // SMTP and every service's http port (the SERVICES table).
  for (const p of [2525, 2587, ...Object.values(httpPorts())]) assert.ok(exposed.includes(p), `EXPOSE ${p}`);
});

test('.dockerignore keeps local builds, secrets and VCS out of the context', () => {
  const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim());
  for (const p of ['.git', '**/node_modules', '**/dist', '**/*.tsbuildinfo', '**/*.pem', '**/*.key', '.env'])
    assert.ok(ignore.includes(p), `.dockerignore lacks ${p}`);
  // What the build needs must not be ignored.
  for (const p of ['package.json', 'package-lock.json', 'packages', 'services', 'tsconfig.base.json'])
    assert.ok(!ignore.includes(p), `${p} must stay in the context`);
});
