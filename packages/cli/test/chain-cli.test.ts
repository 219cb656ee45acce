import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'packages/cli/src/main.ts');
const node = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', '--conditions=mailgate-src', main, ...args], {
    cwd: root,
    encoding: 'utf8',
  });

test('mailgate chain: help, a missing list is a usage error, a bad chain a configuration error', () => {
  const help = node(['help', 'chain']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /mailgate chain STAGE,STAGE/);
  assert.match(help.stdout, /mailgate\.chain\.<first>\.\.<last>/);
  const none = node(['chain']);
  assert.equal(none.status, 64);
  assert.match(none.stderr, /which stages/);
  const gap = node(['chain', 'dnsbl-check,attachment-policy']);
  assert.equal(gap.status, 78);
  assert.match(gap.stderr, /attachment-policy does not follow dnsbl-check/);
  const ingress = node(['chain', 'ingress-smtp,dnsbl-check']);
  assert.equal(ingress.status, 78);
  assert.match(ingress.stderr, /ingress-smtp cannot be a step of a stage chain: only the stages that read a topic can/);
});
