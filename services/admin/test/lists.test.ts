// /api/v1/lists and `mailgate lists` against the real admin service, kafka-lite and Redis.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { runLists } from '../../../packages/cli/src/lists.js';
import { ADMIN_TOKEN, auditLines, READ_TOKEN, runCli, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('lists API', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
  });
  const post = (body: unknown, token = ADMIN_TOKEN) =>
    env.api('/api/v1/lists', {
      method: 'POST',
      token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  test('add, list, search, remove; validation; read-only tokens cannot change; audited', async () => {
    const r = await post({ kind: 'ip-block', value: '198.51.100.0/24', reason: 'botnet', ttlSeconds: 3600 });
    assert.equal(r.status, 201, await r.clone().text());
    const { entry } = (await r.json()) as Json;
    assert.equal(entry.value, '198.51.100.0/24');
    assert.equal(entry.createdBy, 'alice');
    assert.ok(Date.parse(entry.expiresAt) > Date.now());
    assert.equal((await post({ kind: 'sender-block', value: '@Spam.Test' })).status, 201);
    assert.equal((await post({ kind: 'ip-block', value: 'not-an-ip' })).status, 400);
    assert.equal((await post({ kind: 'nope', value: '1.2.3.4' })).status, 400);
    assert.equal((await post({ kind: 'ip-allow', value: '10.0.0.1' }, READ_TOKEN)).status, 403);

    const all = (await (await env.api('/api/v1/lists')).json()) as Json;
    assert.deepEqual(
      all.results.map((e: Json) => `${e.kind} ${e.value}`),
      ['ip-block 198.51.100.0/24', 'sender-block *@spam.test'],
    );
    const found = (await (await env.api('/api/v1/lists?search=botnet')).json()) as Json;
    assert.equal(found.results.length, 1);

    const del = await env.api(`/api/v1/lists?kind=ip-block&value=${encodeURIComponent('198.51.100.0/24')}`, {
      method: 'DELETE',
    });
    assert.equal(del.status, 200);
    assert.equal(
      (await env.api('/api/v1/lists?kind=ip-block&value=198.51.100.0/24', { method: 'DELETE' })).status,
      404,
    );

    const actions = await auditLines(env);
    assert.ok(actions.includes('alice lists.add ip-block 198.51.100.0/24'), actions.join('\n'));
    assert.ok(actions.includes('alice lists.remove ip-block 198.51.100.0/24'));
    const spec = (await (await env.api('/openapi.json')).json()) as Json;
    assert.ok(spec.paths['/api/v1/lists'].post);
  });

  test('CLI: mailgate lists add|ls|rm', async () => {
    const run = (argv: string[]) => runCli(runLists, env, ['lists', ...argv], ADMIN_TOKEN);
    const added = await run(['add', 'ip-block', '203.0.113.9', '--reason', 'attack', '--ttl', '600']);
    assert.equal(added.code, 0, added.err);
    assert.match(added.out, /added ip-block 203\.0\.113\.9\/32 until /);
    const ls = await run(['ls', '--kind', 'ip-block']);
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /KIND\s+VALUE\s+EXPIRES\s+BY\s+REASON/);
    assert.match(ls.out, /ip-block\s+203\.0\.113\.9\/32\s+\S+\s+alice\s+attack/);
    const rm = await run(['rm', 'ip-block', '203.0.113.9']);
    assert.equal(rm.code, 0, rm.err);
    assert.equal((await run(['rm', 'ip-block', '203.0.113.9'])).code, 1);
    assert.equal((await run(['add', 'ip-block'])).code, 64);
  });
});
