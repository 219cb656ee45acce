import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Logger } from '@mailgate/runtime';
import { devSchema } from '../src/dev-config.js';
import { startDevDirectory } from '../src/dev-ldap.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DEV_YAML = path.join(root, 'deploy/mailgate.dev.yaml');

test('dev.ldap without slapd installed: a warning, and the LDAP source becomes a static list of the dev users', async () => {
  const warnings: string[] = [];
  const log = {
    warn: (_o: unknown, msg: string) => void warnings.push(msg),
    info: () => undefined,
  } as unknown as Logger;
  // Nothing answers on a port nobody listens on, so auto would start slapd: here it is "not installed".
  const env = { MAILGATE__INGRESS__RECIPIENTS__SOURCES__DIRECTORY__URL: 'ldap://127.0.0.1:1' };
  const config = loadConfig({ file: DEV_YAML, env, sections: { dev: devSchema } });
  assert.equal(config.dev.ldap.spawn, 'auto', 'the documented default');
  const childEnv: NodeJS.ProcessEnv = { ...env };
  const stop = await startDevDirectory({
    spawn: 'auto',
    ingress: (config as { ingress?: unknown }).ingress,
    childEnv,
    log,
    slapdBinary: '/nonexistent/slapd',
  });
  assert.equal(stop, null);
  assert.match(warnings.join('\n'), /\/nonexistent\/slapd not found \(install slapd\): .*static list/);
  // What the services then load: the same source name, now static, with the seeded users and aliases.
  const raw = loadConfig({ file: DEV_YAML, env: childEnv }) as unknown as {
    ingress: { recipients: { sources: Record<string, { type: string; addresses?: string[] }> } };
  };
  assert.deepEqual(raw.ingress.recipients.sources['directory'], {
    type: 'static',
    addresses: [
      'user@example.test',
      'alice@example.test',
      'a.smith@example.test',
      'bob@example.test',
      'postmaster@example.test',
      'abuse@example.test',
    ],
  });
  // ... and every service accepts it.
  const check = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--conditions=mailgate-src', path.join(root, 'packages/cli/src/main.ts'), 'config', 'check'],
    { cwd: root, env: { ...process.env, ...childEnv, MAILGATE_CONFIG: DEV_YAML }, encoding: 'utf8' },
  );
  assert.equal(check.status, 0, check.stderr);
});

test('dev.ldap never: nothing started, nothing changed', async () => {
  const config = loadConfig({ file: DEV_YAML, env: {}, sections: { dev: devSchema } });
  const childEnv: NodeJS.ProcessEnv = {};
  const log = { warn: () => undefined, info: () => undefined } as unknown as Logger;
  const stop = await startDevDirectory({
    spawn: 'never',
    ingress: (config as { ingress?: unknown }).ingress,
    childEnv,
    log,
  });
  assert.equal(stop, null);
  assert.deepEqual(childEnv, {});
});
