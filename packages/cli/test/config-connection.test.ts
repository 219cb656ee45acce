// The CLI's client commands find the gateway from the configuration file alone: the real `mailgate` process
// (spawned from source) against a real admin service and the shared Redis, with nothing but --config.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { newEnvelope, newMessageId } from '@mailgate/contracts';
import { RetryStore } from '@mailgate/delivery-queue';
import { createRedis } from '@mailgate/runtime';
import { waitFor } from '@mailgate/testkit';
import {
  ADMIN_TOKEN,
  READ_TOKEN,
  REDIS_URL,
  startAdminEnv,
  suiteTeardown,
  type AdminEnv,
} from '../../../services/admin/test/helpers.js';
import { parseArgs } from '../src/args.js';
import { ConnectionError, resolveAdmin } from '../src/connection.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'packages/cli/src/main.ts');

/** Run the CLI from source with a clean environment (no MAILGATE_* from the test runner's shell). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MAILGATE')) base[k] = v;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--conditions=mailgate-src', main, ...args], {
      cwd: root,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('CLI connection from the configuration file', () => {
  let env: AdminEnv;
  let dir: string;
  let configFile: string;
  const teardown = suiteTeardown();
  const msgId = newMessageId();
  const deferredIds = [newMessageId(), newMessageId(), newMessageId()].sort();

  before(async () => {
    env = await startAdminEnv(teardown);
    dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cli-conn-'));
    writeFileSync(path.join(dir, 'helpdesk'), READ_TOKEN + '\n');
    configFile = path.join(dir, 'mailgate.yaml');
    const port = new URL(env.url).port;
    // The services' own file: the admin listens on the wildcard address; one token inline, one in a file.
    writeFileSync(
      configFile,
      [
        `redis: { url: '${REDIS_URL}', keyPrefix: '${env.keyPrefix}' }`,
        'admin:',
        `  http: { host: 0.0.0.0, port: ${port} }`,
        '  tokens:',
        `    - { name: ops, token: ${ADMIN_TOKEN}, role: admin }`,
        `    - { name: helpdesk, tokenFile: ${path.join(dir, 'helpdesk')}, role: read }`,
        '',
      ].join('\n'),
    );
    await env.events([
      {
        type: 'received',
        messageId: msgId,
        at: new Date().toISOString(),
        service: 'ingress-smtp',
        host: 'ingress-0',
        mailFrom: 'carol@conn.test',
        rcptTo: ['desk@example.test'],
        clientIp: '192.0.2.61',
        details: { subject: 'Config only', messageIdHeader: '<config-only@conn.test>' },
      },
    ]);
    await waitFor(async () => (await env.api(`/api/v1/messages/${msgId}`)).status === 200, {
      timeoutMs: 30_000,
      message: 'tracking event ingested',
    });
    // Three deferred messages in the gateway's queue (the key prefix only the config file names).
    const redis = createRedis({ url: REDIS_URL, keyPrefix: env.keyPrefix }, { name: 'cli-test' });
    teardown.last(async () => void redis.disconnect());
    const store = new RetryStore(redis);
    for (const [i, id] of deferredIds.entries()) {
      const envelope = newEnvelope({ id, mailFrom: 'bob@conn.test', rcptTo: [`r${i}@remote.test`], size: 10 });
      await store.add(
        envelope,
        Buffer.from('Subject: x\r\n\r\nx\r\n'),
        new Map([[`r${i}@remote.test`, '451 4.7.1 try later']]),
        Date.now() + 3_600_000 + i * 1000,
        '451 4.7.1 try later',
      );
    }
    for (const e of [
      { kind: 'ip-block', value: '203.0.113.0/24' },
      { kind: 'ip-block', value: '198.51.100.0/24' },
    ]) {
      const r = await env.api('/api/v1/lists', { method: 'POST', body: JSON.stringify({ ...e, reason: 'test' }) });
      assert.equal(r.status, 201);
    }
  });

  test('track and trace with only --config: URL from admin.http, the read token from its file', async () => {
    const track = await cli(['track', '--from', 'carol@conn.test', '--config', configFile]);
    assert.equal(track.code, 0, track.err);
    assert.match(track.out, new RegExp(`^${msgId} .*carol@conn\\.test`, 'm'));
    const json = await cli(['track', '--message-id', '<config-only@conn.test>', '--json', '--config', configFile]);
    assert.equal(json.code, 0, json.err);
    assert.deepEqual(
      (JSON.parse(json.out) as { results: { id: string }[] }).results.map((m) => m.id),
      [msgId],
    );
    const trace = await cli(['trace', msgId, '--config', configFile]);
    assert.equal(trace.code, 0, trace.err);
    assert.match(trace.out, /^From +carol@conn\.test/m);
    // $MAILGATE_CONFIG is the default config; a flag still wins over it.
    const viaEnv = await cli(['track', '--from', 'carol@conn.test'], { MAILGATE_CONFIG: configFile });
    assert.equal(viaEnv.code, 0, viaEnv.err);
    const wrong = await cli(['track', '--from', 'carol@conn.test', '--token', 'not-a-valid-token-0000'], {
      MAILGATE_CONFIG: configFile,
    });
    assert.equal(wrong.code, 77, wrong.err);
  });

  test('lists: ls takes the read token, add needs and finds the admin token; --limit/--offset page; --json', async () => {
    const page1 = await cli(['lists', 'ls', '--kind', 'ip-block', '--limit', '1', '--config', configFile]);
    assert.equal(page1.code, 0, page1.err);
    assert.match(page1.out, /^KIND +VALUE/);
    assert.match(page1.out, /198\.51\.100\.0\/24/);
    assert.doesNotMatch(page1.out, /203\.0\.113\.0\/24/);
    assert.match(page1.err, /showing 1 of 2: --offset 1 for the next page/);
    const page2 = await cli(['lists', 'ls', '--kind', 'ip-block', '--offset', '1', '--json', '--config', configFile]);
    assert.equal(page2.code, 0, page2.err);
    const body = JSON.parse(page2.out) as { results: { value: string }[]; total: number; nextOffset?: number };
    assert.deepEqual(
      body.results.map((e) => e.value),
      ['203.0.113.0/24'],
    );
    assert.equal(body.total, 2);
    assert.equal(body.nextOffset, undefined);
    const add = await cli(['lists', 'add', 'sender-block', '*@conn-spam.test', '--config', configFile]);
    assert.equal(add.code, 0, add.err);
    const audit = (await (await env.api('/api/v1/audit')).json()) as { results: { who: string; action: string }[] };
    assert.ok(
      audit.results.some((a) => a.who === 'alice' && a.action === 'lists.add'),
      'added with the admin token',
    );
    // Choosing the read-only token explicitly: the admin service refuses the change.
    const ro = await cli(['lists', 'rm', 'sender-block', '*@conn-spam.test', '--token-name', 'helpdesk'], {
      MAILGATE_CONFIG: configFile,
    });
    assert.equal(ro.code, 77, ro.err);
    assert.equal((await env.api('/api/v1/lists?limit=0')).status, 400);
  });

  test('queue list with only --config reads the key prefix from it; table, --limit/--offset, --json', async () => {
    const first = await cli(['queue', 'list', '--limit', '2', '--config', configFile]);
    assert.equal(first.code, 0, first.err);
    const lines = first.out.trim().split('\n');
    assert.equal(lines[0], '3 deferred');
    assert.match(lines[1]!, /^ID +NEXT ATTEMPT +TRIES +FROM +TO +LAST ERROR$/);
    assert.deepEqual(
      lines.slice(3).map((l) => l.split(/\s+/)[0]),
      deferredIds.slice(0, 2),
    );
    assert.match(first.err, /showing 1-2 of 3: --offset 2 for the next page/);
    const rest = await cli(['queue', 'list', '--offset', '2', '--json', '--config', configFile]);
    assert.equal(rest.code, 0, rest.err);
    const body = JSON.parse(rest.out) as { total: number; items: { id: string }[] };
    assert.equal(body.total, 3);
    assert.deepEqual(
      body.items.map((m) => m.id),
      deferredIds.slice(2),
    );
    // Without any configuration it says which Redis and prefix it read instead of a silent "0 deferred".
    const none = await cli(['queue', 'list']);
    assert.equal(none.code, 0, none.err);
    assert.match(none.err, /no configuration .*default key prefix 'mailgate:'/);
    assert.equal((await cli(['queue', 'list', '--limit', 'x', '--config', configFile])).code, 64);
  });

  test('resolveAdmin: flags and env before the config; wildcard hosts; role choice; clear errors', () => {
    const a = (argv: string[], e: NodeJS.ProcessEnv = {}, need: 'read' | 'admin' = 'read') =>
      resolveAdmin(parseArgs(argv), need, e);
    const fromConfig = a(['--config', configFile]);
    assert.equal(fromConfig.url, env.url);
    assert.equal(fromConfig.token, READ_TOKEN);
    assert.match(fromConfig.tokenSource, /admin\.tokens\[1\] \(helpdesk\)/);
    assert.equal(a(['--config', configFile], {}, 'admin').token, ADMIN_TOKEN);
    assert.equal(a(['--config', configFile, '--token-name', 'ops']).token, ADMIN_TOKEN);
    const fromEnv = a(['--config', configFile], {
      MAILGATE_ADMIN_URL: 'http://admin.test:9106/',
      MAILGATE_ADMIN_TOKEN_FILE: path.join(dir, 'helpdesk'),
    });
    assert.deepEqual([fromEnv.url, fromEnv.token], ['http://admin.test:9106', READ_TOKEN]);
    const flags = a(['--url', 'http://x.test', '--token', 'flag-token-0123456789'], {
      MAILGATE_ADMIN_TOKEN: 'env-token-0123456789',
    });
    assert.deepEqual([flags.url, flags.token], ['http://x.test', 'flag-token-0123456789']);
    // MAILGATE__ADMIN__… overrides apply as they do for the services; an IPv6 listen address gets brackets.
    const port = new URL(env.url).port;
    assert.equal(
      a(['--config', configFile], { MAILGATE__ADMIN__HTTP__HOST: 'admin.internal' }).url,
      `http://admin.internal:${port}`,
    );
    assert.equal(a(['--config', configFile], { MAILGATE__ADMIN__HTTP__HOST: "'::'" }).url, `http://[::1]:${port}`);
    assert.equal(
      a(['--config', configFile], { MAILGATE__ADMIN__HTTP__HOST: "'fd00::5'" }).url,
      `http://[fd00::5]:${port}`,
    );
    assert.throws(() => a([], {}), ConnectionError);
    assert.throws(() => a(['--config', configFile, '--token-name', 'nobody']), /no token named nobody/);
    assert.throws(() => a(['--token-file', path.join(dir, 'missing')]), /cannot read the token file of --token-file/);
  });
});
