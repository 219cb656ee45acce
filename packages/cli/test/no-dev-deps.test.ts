// The production CLI path (`mailgate <service>`, `config check`) never loads @mailgate/testkit or @mailgate/devstack:
// a module resolve hook fails the process the moment either is resolved. (`mailgate dev` loads devstack lazily.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const HOOKS = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (/\\/packages\\/(testkit|devstack)\\//.test(r.url)) throw new Error('FORBIDDEN LOAD ' + r.url);
  return r;
}`;
const REGISTER = `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOKS)}));`;

const nodeArgs = () => [
  '--import',
  'tsx',
  '--import',
  `data:text/javascript,${encodeURIComponent(REGISTER)}`,
  '--conditions=mailgate-src',
];

function cli(...args: string[]) {
  return spawnSync(process.execPath, [...nodeArgs(), path.join(root, 'packages/cli/src/main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('config check loads every service without testkit or devstack', () => {
  const r = cli('config', 'check', '--config', path.join(root, 'deploy/mailgate.dev.yaml'));
  assert.doesNotMatch(r.stderr + r.stdout, /FORBIDDEN LOAD/);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /admin: checked/);
});

test('the hook does catch a load (so the test above can fail)', () => {
  const probe = spawnSync(
    process.execPath,
    [...nodeArgs(), '--input-type=module', '-e', "await import('@mailgate/devstack')"],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  assert.notEqual(probe.status, 0);
  assert.match(probe.stderr, /FORBIDDEN LOAD/);
});
