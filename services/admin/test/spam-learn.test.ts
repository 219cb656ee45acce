// Spam learning through the admin API and `mailgate spam`, against a real rspamd (Bayes in a real Redis), the real
// admin service, kafka-lite and Redis: "not spam" releases train ham, "mark as spam" trains spam, all audited.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { decodeMessage, TOPICS } from '@mailgate/contracts';
import { RspamdClient } from '@mailgate/rspamd';
import { waitFor, type RspamdHandle } from '@mailgate/testkit';
import { runSpam } from '../../../packages/cli/src/spam.js';
import { adminSchema } from '../src/config.js';
import {
  ADMIN_TOKEN,
  eventsFor,
  quarantinedMessage,
  READ_TOKEN,
  runCli,
  suiteTeardown,
  type AdminEnv,
} from './helpers.js';
import { learnableMail as mail, spamQuarantined, startSpamEnv, type SpamEnv } from './spam-helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('spam learning (admin API + CLI, real rspamd)', () => {
  let env: AdminEnv;
  let rspamd: RspamdHandle;
  let spam: SpamEnv;
  let stat: RspamdClient;
  const teardown = suiteTeardown();
  before(async () => {
    // The password from a file, as a Kubernetes Secret would provide it.
    spam = await startSpamEnv(teardown, 'file');
    ({ env, rspamd } = spam);
    stat = new RspamdClient({
      worker: { host: rspamd.host, port: rspamd.port },
      controller: { host: rspamd.host, port: rspamd.controllerPort },
      password: rspamd.password,
    });
    teardown.after(async () => stat.close());
  });

  /** Learned per class, from rspamd's Bayes state in its Redis. */
  const classCount = (symbol: 'BAYES_HAM' | 'BAYES_SPAM') => spam.learns(symbol === 'BAYES_HAM' ? 'ham' : 'spam');
  /** Total learned, from the controller's /stat (`rspamc stat`: "Messages learned"): counted at once. */
  const total = async () => (await stat.stat()).learned;
  const classReaches = async (symbol: 'BAYES_HAM' | 'BAYES_SPAM', n: number) =>
    assert.equal(await classCount(symbol), n, `${symbol} learned`);
  const audit = () => spam.audit();
  const waitQuarantined = (id: string) =>
    waitFor(async () => (await env.api(`/api/v1/quarantine/${id}`)).status === 200, {
      timeoutMs: 20_000,
      message: `${id} in quarantine`,
    });

  test('release as not spam: rspamd learns ham (Bayes count rises), then the message goes on to delivery', async () => {
    const m = spamQuarantined(mail('ham'));
    const id = m.envelope.id;
    await env.quarantine(m, TOPICS.policyChecked);
    await waitQuarantined(id);
    const hamBefore = await classCount('BAYES_HAM');
    const totalBefore = await total();

    // A read-only token cannot train.
    assert.equal(
      (await env.api(`/api/v1/quarantine/${id}/not-spam`, { method: 'POST', token: READ_TOKEN })).status,
      403,
    );

    const r = await env.api(`/api/v1/quarantine/${id}/not-spam`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 200, await r.clone().text());
    const j = (await r.json()) as Json;
    assert.deepEqual(j['learned'], { class: 'ham', learned: true, alreadyLearned: false });
    assert.equal(j['released']['topic'], TOPICS.deliverable, 'released as is: after spam-check comes delivery');
    assert.equal(await total(), totalBefore + 1, "rspamd's learned count rose by one");
    await classReaches('BAYES_HAM', hamBefore + 1);
    // `rspamc stat` agrees (rspamd's own client).
    assert.match(await rspamd.rspamc(['stat']), new RegExp(`Messages learned: ${totalBefore + 1}\\b`));

    const [rec] = await env.readTopic(TOPICS.deliverable, 1);
    const out = decodeMessage(rec!.value!);
    assert.equal(out.envelope.id, id);
    assert.equal(out.envelope.release?.by, 'alice');
    assert.equal((await env.api(`/api/v1/quarantine/${id}`)).status, 404, 'no longer held');
    const a = await audit();
    assert.ok(a.includes(`alice spam.learn-ham ${id}`), a.join('\n'));
    assert.ok(a.includes(`alice quarantine.release ${id}`), a.join('\n'));
  });

  test('not spam is only for spam-check holds; unknown ids are 404', async () => {
    const v = quarantinedMessage({ from: 'eve@bad.test', to: 'bob@example.test' });
    await env.quarantine(v.msg, TOPICS.scanned);
    await waitQuarantined(v.msg.envelope.id);
    const r = await env.api(`/api/v1/quarantine/${v.msg.envelope.id}/not-spam`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 409);
    assert.match(((await r.json()) as Json)['message'], /held by virus-scan/);
    assert.equal((await env.api(`/api/v1/quarantine/${v.msg.envelope.id}`)).status, 200, 'still held');
    assert.equal((await env.api('/api/v1/quarantine/NOPE123/not-spam', { method: 'POST', body: '{}' })).status, 404);
  });

  test('rspamd declines to learn (too few tokens): 422 with its words; nothing released, nothing audited', async () => {
    const tiny = spamQuarantined(
      Buffer.from('From: a@partner.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhi\r\n'),
    );
    const id = tiny.envelope.id;
    await env.quarantine(tiny, TOPICS.policyChecked);
    await waitQuarantined(id);
    const r = await env.api(`/api/v1/quarantine/${id}/not-spam`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 422, await r.clone().text());
    const j = (await r.json()) as Json;
    assert.equal(j['error'], 'unprocessable');
    assert.match(j['message'], /less tokens than required.*too little text.*nothing was released/);
    assert.equal((await env.api(`/api/v1/quarantine/${id}`)).status, 200, 'still held');
    const m = await env.api(`/api/v1/messages/${id}/mark-spam`, { method: 'POST' });
    assert.equal(m.status, 422);
    assert.match(((await m.json()) as Json)['message'], /Bayes is unchanged/);
    const a = await audit();
    assert.ok(!a.some((l) => l.endsWith(` ${id}`) && l.includes('spam.learn')), a.join('\n'));
  });

  test('mark as spam: from the quarantine, or an uploaded copy of a delivered message; audited', async () => {
    const spamBefore = await classCount('BAYES_SPAM');
    const totalBefore = await total();
    // Held (e.g. tagged grey and quarantined): the bytes come from the quarantine store.
    const held = spamQuarantined(mail('spam'));
    await env.quarantine(held, TOPICS.policyChecked);
    await waitQuarantined(held.envelope.id);
    const r1 = await env.api(`/api/v1/messages/${held.envelope.id}/mark-spam`, { method: 'POST' });
    assert.equal(r1.status, 200, await r1.clone().text());
    assert.deepEqual(((await r1.json()) as Json)['learned'], {
      class: 'spam',
      source: 'quarantine',
      learned: true,
      alreadyLearned: false,
    });
    assert.equal(await total(), totalBefore + 1);

    // Delivered: tracked, but the gateway has no copy → 409 with the way out; with the upload it learns.
    const delivered = quarantinedMessage({ from: 'winner@lottery.test', to: 'bob@example.test' });
    const did = delivered.msg.envelope.id;
    await env.events(eventsFor(delivered, 'delivered'));
    await waitFor(async () => (await env.api(`/api/v1/messages/${did}`)).status === 200, {
      timeoutMs: 20_000,
      message: 'tracked',
    });
    const noBytes = await env.api(`/api/v1/messages/${did}/mark-spam`, { method: 'POST' });
    assert.equal(noBytes.status, 409);
    assert.match(((await noBytes.json()) as Json)['message'], /message\/rfc822/);
    const up = await env.api(`/api/v1/messages/${did}/mark-spam`, {
      method: 'POST',
      headers: { 'content-type': 'message/rfc822' },
      body: mail('spam'),
    });
    assert.equal(up.status, 200, await up.clone().text());
    assert.equal(((await up.json()) as Json)['learned']['source'], 'upload');
    assert.equal(await total(), totalBefore + 2);
    await classReaches('BAYES_SPAM', spamBefore + 2);
    assert.equal((await env.api('/api/v1/messages/NOPE123/mark-spam', { method: 'POST' })).status, 404);

    const a = await audit();
    assert.ok(a.includes(`alice spam.learn-spam ${held.envelope.id}`), a.join('\n'));
    assert.ok(a.includes(`alice spam.learn-spam ${did}`), a.join('\n'));
    const st = (await (await env.api('/api/v1/spam/stat')).json()) as Json;
    assert.ok(st['statfiles'].some((s: Json) => s['symbol'] === 'BAYES_SPAM'));
    assert.equal(st['learned'], totalBefore + 2);
    const spec = (await (await env.api('/openapi.json')).json()) as Json;
    assert.ok(spec.paths['/api/v1/quarantine/{id}/not-spam'].post);
  });

  test('CLI: mailgate spam not-spam | mark --eml | stat', async () => {
    const run = (argv: string[]) => runCli(runSpam, env, ['spam', ...argv], ADMIN_TOKEN);

    const m = spamQuarantined(mail('ham'));
    await env.quarantine(m, TOPICS.policyChecked);
    await waitQuarantined(m.envelope.id);
    const totalBefore = await total();
    const hamBefore = await classCount('BAYES_HAM');
    const released = await run(['not-spam', m.envelope.id]);
    assert.equal(released.code, 0, released.err);
    assert.match(
      released.out,
      new RegExp(`released ${m.envelope.id} to ${TOPICS.deliverable}; rspamd learned it as ham`),
    );
    assert.equal(await total(), totalBefore + 1);
    await classReaches('BAYES_HAM', hamBefore + 1);
    assert.equal((await run(['not-spam', m.envelope.id])).code, 1, 'gone from the quarantine');

    const d = quarantinedMessage({ from: 'winner@lottery.test', to: 'bob@example.test' });
    await env.events(eventsFor(d, 'delivered'));
    await waitFor(async () => (await env.api(`/api/v1/messages/${d.msg.envelope.id}`)).status === 200, {
      timeoutMs: 20_000,
      message: 'tracked',
    });
    const eml = join(tmpdir(), `mailgate-spam-${process.pid}.eml`);
    // Text Bayes does not already classify as spam: rspamd skips learning a message it already rates 100 % spam
    // ("all learn conditions denied"), and its reply to that is not well-formed HTTP (see docs/spam-check.md).
    writeFileSync(eml, mail('ham'));
    const marked = await run(['mark', d.msg.envelope.id, '--eml', eml]);
    assert.equal(marked.code, 0, marked.err);
    assert.match(marked.out, /marked \S+ as spam; rspamd learned it as spam/);
    const stat = await run(['stat']);
    assert.equal(stat.code, 0, stat.err);
    assert.match(stat.out, /BAYES_SPAM\s+\d+/);
    assert.equal((await run(['mark'])).code, 64);
  });

  test('config: password xor passwordFile, http controller URL', () => {
    const base = { controllerUrl: 'http://rspamd:11334' };
    assert.ok(adminSchema.safeParse({ rspamd: { ...base, password: 'x' } }).success);
    assert.equal(adminSchema.safeParse({ rspamd: { ...base, password: 'x', passwordFile: '/p' } }).success, false);
    assert.equal(adminSchema.safeParse({ rspamd: { controllerUrl: 'ftp://rspamd' } }).success, false);
  });
});

describe('spam learning with a wrong controller password', () => {
  test('502 with a clear message; nothing released', async (t) => {
    const { env } = await startSpamEnv(t, 'wrong');
    const m = spamQuarantined(mail('ham'));
    await env.quarantine(m, TOPICS.policyChecked);
    await waitFor(async () => (await env.api(`/api/v1/quarantine/${m.envelope.id}`)).status === 200, {
      timeoutMs: 20_000,
      message: 'held',
    });
    const r = await env.api(`/api/v1/quarantine/${m.envelope.id}/not-spam`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 502);
    assert.match(((await r.json()) as Json)['message'], /password/);
    assert.equal((await env.api(`/api/v1/quarantine/${m.envelope.id}`)).status, 200, 'still held');
  });
});
