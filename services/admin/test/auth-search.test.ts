// The `auth` search filter end to end: tracking events through the broker into the admin service's store, then the
// API (`auth=fail`), the console's search form and `mailgate track --auth fail` — plus the class rules themselves.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { runTrack } from '../../../packages/cli/src/track.js';
import { authClass } from '../src/tracking-store.js';
import {
  ADMIN_TOKEN,
  ingestEvents,
  ingressEvent,
  runCli,
  startAdminEnv,
  suiteTeardown,
  type AdminEnv,
} from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

test('authClass: a failed SPF or DMARC, or only failed DKIM signatures, is fail; one good signature is enough', () => {
  assert.equal(authClass(undefined), 'none');
  assert.equal(authClass({ action: 'accept', reason: 'trusted network' }), 'none');
  assert.equal(authClass({ spf: 'none', dkim: 'none', dmarc: 'none', action: 'accept' }), 'none');
  assert.equal(authClass({ spf: 'temperror', action: 'accept' }), 'none');
  assert.equal(authClass({ spf: 'pass', dkim: 'none', dmarc: 'none' }), 'pass');
  assert.equal(authClass({ spf: 'softfail', dkim: 'pass', dmarc: 'pass' }), 'fail');
  assert.equal(authClass({ spf: 'pass', dkim: 'fail', dmarc: 'pass' }), 'fail');
  assert.equal(authClass({ spf: 'pass', dkim: 'fail,pass', dmarc: 'pass' }), 'pass', 'a list re-signed the mail');
  assert.equal(authClass({ spf: 'none', dkim: 'none', dmarc: 'fail', dryRun: true }), 'fail');
  assert.equal(authClass({ spf: 'permerror' }), 'fail');
});

describe('search by sender authentication (auth=fail|pass|none)', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  const id = { forged: '', refused: '', signed: '', unchecked: '', tempfail: '', listResigned: '' };
  const from = 'auth-search@forged.test';
  before(async () => {
    env = await startAdminEnv(teardown);
    for (const k of Object.keys(id) as (keyof typeof id)[]) id[k] = newMessageId();
    const t0 = Date.now() - 60_000;
    const client = { mailFrom: from, rcptTo: ['ceo@example.test'], clientIp: '203.0.113.66' };
    const received = (n: number, messageId: string, auth?: Record<string, unknown>): TrackingEvent =>
      ingressEvent('received', messageId, { t0, seconds: n }, client, { size: 300, ...(auth ? { auth } : {}) });
    const refused = (n: number, messageId: string, reply: string): TrackingEvent =>
      ingressEvent('refused', messageId, { t0, seconds: n }, client, {
        reason: 'sender-auth',
        reply,
        phase: 'data',
        listener: 'mx',
      });
    await ingestEvents(env, [
      received(0, id.forged, {
        spf: 'fail',
        dkim: 'none',
        dmarc: 'fail',
        action: 'quarantine',
        reason: 'dmarc p=quarantine',
      }),
      refused(1, id.refused, '550 5.7.1 DMARC policy of forged.test: reject'),
      received(2, id.signed, { spf: 'pass', dkim: 'pass', dmarc: 'pass', action: 'accept', reason: 'dmarc pass' }),
      received(3, id.unchecked),
      refused(4, id.tempfail, '451 4.7.5 sender authentication: DNS temporary error'),
      received(5, id.listResigned, { spf: 'pass', dkim: 'fail,pass', dmarc: 'pass', action: 'accept' }),
    ]);
  });

  const ids = async (query: string): Promise<string[]> => {
    const r = await env.api(`/api/v1/messages?${query}`);
    assert.equal(r.status, 200, `${query}: ${await r.clone().text()}`);
    return ((await r.json()) as Json)['results'].map((m: Json) => m['id']);
  };

  test('API: auth=fail finds the failed and the refused-for-it, newest first; pass and none their own', async () => {
    const f = `from=${encodeURIComponent(from)}`;
    assert.deepEqual(await ids(`${f}&auth=fail`), [id.refused, id.forged]);
    assert.deepEqual(await ids(`${f}&auth=pass`), [id.listResigned, id.signed]);
    assert.deepEqual(await ids(`${f}&auth=none`), [id.unchecked]);
    // auth alone is a search (the whole time range), and it combines with status=refused.
    assert.ok((await ids('auth=fail')).includes(id.forged));
    assert.deepEqual(await ids(`${f}&auth=fail&status=refused`), [id.refused]);
    const one = (await (await env.api(`/api/v1/messages/${id.forged}`)).json()) as Json;
    assert.equal(one['summary']['auth'], 'fail');
    const bad = await env.api('/api/v1/messages?auth=maybe');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as Json)['message'], /auth=maybe: one of pass, fail, none/);
  });

  test('console: the sender-auth select filters the list and keeps the filter', async () => {
    const r = await fetch(`${env.url}/console/messages?field=from&q=${encodeURIComponent(from)}&auth=fail`, {
      headers: { cookie: `mailgate_token=${encodeURIComponent(ADMIN_TOKEN)}` },
      redirect: 'manual',
    });
    assert.equal(r.status, 200);
    const html = await r.text();
    assert.ok(html.includes(id.forged) && html.includes(id.refused));
    for (const other of [id.signed, id.unchecked, id.tempfail, id.listResigned]) assert.ok(!html.includes(other));
    assert.match(html, /<option value="fail" selected>fail<\/option>/);
    assert.match(html, /<td class="a-fail">fail<\/td>/);
  });

  test('CLI: mailgate track --auth fail; a wrong class is a usage error', async () => {
    const run = (argv: string[]) => runCli(runTrack, env, argv);
    const r = await run(['track', '--from', from, '--auth', 'fail', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      (JSON.parse(r.out) as Json)['results'].map((m: Json) => [m['id'], m['auth']]),
      [
        [id.refused, 'fail'],
        [id.forged, 'fail'],
      ],
    );
    const alone = await run(['track', '--auth', 'fail']);
    assert.equal(alone.code, 0, alone.err);
    assert.match(alone.out, new RegExp(id.forged));
    const trace = await run(['trace', id.forged]);
    assert.match(trace.out, /^Auth {6}fail$/m);
    assert.equal((await run(['track', '--auth', 'maybe'])).code, 64);
  });
});
