// The admin service against real kafka-lite and Redis: tracking, search, quarantine release/delete, auth, audit.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { decodeMessage, RECORD_HEADERS, TOPICS, type TrackingEvent } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import { runTrack } from '../../../packages/cli/src/track.js';
import {
  ADMIN_TOKEN,
  eventsFor,
  quarantinedMessage,
  READ_TOKEN,
  startAdminEnv,
  suiteTeardown,
  TRACE_UI,
  type AdminEnv,
  type TestMessage,
} from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('admin service', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
  });

  const json = async (path: string, init?: Parameters<AdminEnv['api']>[1]): Promise<Json> => {
    const r = await env.api(path, init);
    assert.equal(r.status, 200, `${init?.method ?? 'GET'} ${path}: ${r.status} ${await r.clone().text()}`);
    return (await r.json()) as Json;
  };
  const inQuarantine = async (id: string) =>
    ((await json('/api/v1/quarantine')).results as Json[]).some((e) => e['id'] === id);
  const waitQuarantined = (id: string) =>
    waitFor(() => inQuarantine(id), { timeoutMs: 20_000, message: `${id} in quarantine` });
  const waitTimeline = (id: string, pred: (evs: TrackingEvent[]) => boolean) =>
    waitFor(
      async () => {
        const r = await env.api(`/api/v1/messages/${id}`);
        if (r.status !== 200) return null;
        const m = (await r.json()) as Json;
        return pred(m['events']) ? m : null;
      },
      { timeoutMs: 20_000, message: `timeline of ${id}` },
    );

  let bob: TestMessage; // quarantined by virus-scan
  let carol: TestMessage; // delivered

  test('tracking: search by recipient, sender, domain, client IP; timeline with trace id and link', async () => {
    bob = quarantinedMessage({ from: 'bob@partner.test', to: 'ceo@example.test', ip: '198.51.100.7' });
    carol = quarantinedMessage({ from: 'carol@other.test', to: 'ceo@example.test', ip: '203.0.113.9' });
    // Out of order on purpose: the status follows the latest event, the time index the earliest.
    await env.events([...eventsFor(bob)].reverse());
    await env.events(eventsFor(carol, 'delivered'));
    const id = bob.msg.envelope.id;

    const byRcpt = await waitFor(
      async () => {
        const r = (await json('/api/v1/messages?rcpt=CEO@example.test')).results as Json[];
        return r.length === 2 ? r : null;
      },
      { timeoutMs: 20_000, message: 'both messages found by recipient' },
    );
    assert.deepEqual(byRcpt.map((m) => m['id']).sort(), [id, carol.msg.envelope.id].sort());

    const byFrom = (await json('/api/v1/messages?from=bob@partner.test')).results as Json[];
    assert.deepEqual(
      byFrom.map((m) => m['id']),
      [id],
    );
    assert.equal(byFrom[0]!['status'], 'quarantined');
    assert.equal(byFrom[0]!['traceId'], bob.traceId);
    assert.equal(byFrom[0]!['clientIp'], '198.51.100.7');
    assert.equal(byFrom[0]!['ingressHost'], 'ingress-0');
    assert.equal(byFrom[0]!['firstSeen'], bob.msg.envelope.receivedAt, 'indexed under the earliest event');

    assert.deepEqual(
      ((await json('/api/v1/messages?from=@partner.test')).results as Json[]).map((m) => m['id']),
      [id],
    );
    assert.deepEqual(
      ((await json('/api/v1/messages?ip=203.0.113.9')).results as Json[]).map((m) => m['id']),
      [carol.msg.envelope.id],
    );
    assert.deepEqual(
      ((await json('/api/v1/messages?rcpt=ceo@example.test&from=carol@other.test')).results as Json[]).map(
        (m) => m['id'],
      ),
      [carol.msg.envelope.id],
      'criteria combine',
    );
    assert.equal(((await json('/api/v1/messages?from=nobody@partner.test')).results as Json[]).length, 0);
    const future = Date.now() + 3600_000;
    assert.equal(((await json(`/api/v1/messages?rcpt=ceo@example.test&since=${future}`)).results as Json[]).length, 0);

    const tl = await json(`/api/v1/messages/${id}`);
    assert.equal(tl['summary']['traceId'], bob.traceId);
    assert.equal(tl['traceUrl'], `${TRACE_UI}/trace/${bob.traceId}`);
    assert.deepEqual(
      (tl['events'] as TrackingEvent[]).map((e) => `${e.service}:${e.type}`),
      ['ingress-smtp:received', 'dnsbl-check:stage', 'virus-scan:stage', 'virus-scan:quarantined'],
    );
    assert.ok(
      (tl['events'] as TrackingEvent[]).every((e) => e.traceId === bob.traceId),
      'trace id in every event',
    );
    const del = await json(`/api/v1/messages/${carol.msg.envelope.id}`);
    assert.equal(del['summary']['status'], 'delivered');

    // Redelivered events (at-least-once) change nothing.
    await env.events(eventsFor(bob).slice(0, 2));
    await env.events(eventsFor(carol, 'delivered').slice(0, 1));
    await waitFor(
      async () => (await json('/api/v1/stats')).stages.find((s: Json) => s['stage'] === 'admin-events')?.lag === 0,
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(((await json(`/api/v1/messages/${id}`))['events'] as unknown[]).length, 4);
    assert.equal((await json(`/api/v1/messages/${carol.msg.envelope.id}`))['summary']['status'], 'delivered');

    assert.equal((await env.api('/api/v1/messages/NOPE0000000000000000000000')).status, 404);
    assert.equal((await env.api('/api/v1/messages/bad%20id%3B')).status, 400);
  });

  test('auth: no or wrong token 401, read-only token cannot change anything (403), health stays open', async () => {
    for (const path of ['/api/v1/messages', '/api/v1/quarantine', '/api/v1/audit', '/openapi.json']) {
      const none = await env.api(path, { token: null });
      assert.equal(none.status, 401, path);
      assert.equal(((await none.json()) as Json)['error'], 'unauthorized');
      assert.equal((await env.api(path, { token: 'x'.repeat(28) })).status, 401, `${path} wrong token`);
      assert.equal((await env.api(path, { token: ADMIN_TOKEN.slice(0, -1) })).status, 401, `${path} truncated token`);
      assert.equal((await env.api(path, { token: READ_TOKEN })).status, 200, `${path} read token`);
    }
    const consoleNoToken = await env.api('/console/messages', { token: null, redirect: 'manual' });
    assert.equal(consoleNoToken.status, 302);
    assert.equal(consoleNoToken.headers.get('location'), '/console/login');
    for (const [method, path] of [
      ['POST', `/api/v1/quarantine/${bob.msg.envelope.id}/release`],
      ['DELETE', `/api/v1/quarantine/${bob.msg.envelope.id}`],
      ['POST', `/api/v1/deferred/${bob.msg.envelope.id}/retry`],
    ] as const) {
      const r = await env.api(path, { method, token: READ_TOKEN, body: '{}' });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(((await r.json()) as Json)['message'], /read-only/);
      assert.equal((await env.api(path, { method, token: null, body: '{}' })).status, 401);
    }
    assert.equal((await env.api('/healthz', { token: null })).status, 200);
    assert.equal((await env.api('/metrics', { token: null })).status, 200);
  });

  test('openapi.json describes the API', async () => {
    const doc = await json('/openapi.json');
    assert.equal(doc['openapi'], '3.0.3');
    for (const p of [
      '/api/v1/messages',
      '/api/v1/messages/{id}',
      '/api/v1/quarantine/{id}/release',
      '/api/v1/deferred',
      '/api/v1/audit',
    ]) {
      assert.ok(doc['paths'][p], p);
    }
  });

  test('quarantine: release as is goes to the next stage, with an admin verdict, in the same trace; audited', async () => {
    await env.quarantine(bob.msg, TOPICS.dnsblChecked);
    const id = bob.msg.envelope.id;
    await waitQuarantined(id);
    const entry = await json(`/api/v1/quarantine/${id}`);
    assert.equal(entry['stage'], 'virus-scan');
    assert.equal(entry['reason'], 'virus found: Eicar-Signature');
    const raw = await env.api(`/api/v1/quarantine/${id}/raw`);
    assert.equal(raw.headers.get('content-type'), 'message/rfc822');
    assert.deepEqual(Buffer.from(await raw.arrayBuffer()), bob.msg.raw);

    const r = await json(`/api/v1/quarantine/${id}/release`, {
      method: 'POST',
      body: JSON.stringify({ recheck: false }),
    });
    assert.deepEqual(
      r['released'],
      { id, topic: TOPICS.scanned, recheck: false },
      'virus-scan quarantined it: attachment-policy is next',
    );
    const [rec] = await env.readTopic(TOPICS.scanned, 1);
    const out = decodeMessage(rec!.value);
    assert.equal(out.envelope.id, id);
    assert.deepEqual(out.raw, bob.msg.raw, 'bytes unchanged');
    assert.equal(out.envelope.origin, 'release');
    assert.deepEqual(
      out.envelope.release && {
        by: out.envelope.release.by,
        fromStage: out.envelope.release.fromStage,
        recheck: out.envelope.release.recheck,
      },
      {
        by: 'alice',
        fromStage: 'virus-scan',
        recheck: false,
      },
    );
    assert.deepEqual(out.envelope.verdicts.at(-1)?.details, {
      action: 'release-as-is',
      by: 'alice',
      fromStage: 'virus-scan',
    });
    const tp = rec!.headers?.[RECORD_HEADERS.traceparent]?.toString() ?? '';
    assert.equal(tp.split('-')[1], bob.traceId, 'the released record continues the message trace');
    assert.equal(rec!.key?.toString(), id);

    assert.equal(await inQuarantine(id), false, 'left quarantine');
    assert.equal((await env.api(`/api/v1/quarantine/${id}`)).status, 404);
    const audit = (await json('/api/v1/audit')).results as Json[];
    assert.ok(
      audit.some((a) => a['who'] === 'alice' && a['action'] === 'quarantine.release' && a['target'] === id),
      JSON.stringify(audit),
    );
    const tl = await waitTimeline(id, (evs) => evs.some((e) => e.type === 'released'));
    assert.equal(tl['summary']['status'], 'released');
    const released = (tl['events'] as TrackingEvent[]).find((e) => e.type === 'released')!;
    assert.equal(released.details?.['by'], 'alice');

    // Releasing again: it is gone (404), nothing produced twice.
    assert.equal((await env.api(`/api/v1/quarantine/${id}/release`, { method: 'POST', body: '{}' })).status, 404);
  });

  test('a redelivered quarantine record of a released message does not come back; a re-quarantine after recheck does', async () => {
    const id = bob.msg.envelope.id;
    await env.quarantine(bob.msg, TOPICS.dnsblChecked); // e.g. the admin consumer restarted before its commit
    const marker = quarantinedMessage({ from: 'marker@partner.test', to: 'x@example.test' });
    await env.quarantine(marker.msg, TOPICS.dnsblChecked);
    await waitQuarantined(marker.msg.envelope.id); // one partition: the record before it was handled too
    assert.equal(await inQuarantine(id), false);

    // The recheck path: the stage appended another verdict and quarantined it again.
    const again = {
      ...bob.msg,
      envelope: {
        ...bob.msg.envelope,
        verdicts: [
          ...bob.msg.envelope.verdicts,
          { stage: 'admin' as const, verdict: { kind: 'pass' as const }, at: new Date().toISOString(), durationMs: 0 },
          {
            stage: 'virus-scan' as const,
            verdict: { kind: 'quarantine' as const, reason: 'still infected' },
            at: new Date().toISOString(),
            durationMs: 5,
          },
        ],
      },
    };
    await env.quarantine(again, TOPICS.dnsblChecked);
    await waitQuarantined(id);
    assert.equal((await json(`/api/v1/quarantine/${id}`))['reason'], 'still infected');
  });

  test('quarantine: release with recheck goes back to the quarantining stage input; delete; both audited', async () => {
    const re = quarantinedMessage({ from: 'dave@partner.test', to: 'ceo@example.test' });
    const gone = quarantinedMessage({ from: 'eve@partner.test', to: 'ceo@example.test' });
    await env.quarantine(re.msg, TOPICS.dnsblChecked);
    await env.quarantine(gone.msg, TOPICS.dnsblChecked);
    await waitQuarantined(gone.msg.envelope.id);

    const r = await json(`/api/v1/quarantine/${re.msg.envelope.id}/release`, {
      method: 'POST',
      body: JSON.stringify({ recheck: true }),
    });
    assert.equal(r['released']['topic'], TOPICS.dnsblChecked, 'virus-scan consumes dnsbl-checked: the scan runs again');
    const recs = await env.readTopic(TOPICS.dnsblChecked, 1);
    const m = decodeMessage(recs[0]!.value);
    assert.equal(m.envelope.id, re.msg.envelope.id);
    assert.equal(m.envelope.release?.recheck, true);

    const d = await json(`/api/v1/quarantine/${gone.msg.envelope.id}`, { method: 'DELETE' });
    assert.deepEqual(d, { deleted: gone.msg.envelope.id });
    assert.equal(await inQuarantine(gone.msg.envelope.id), false);
    assert.equal((await env.api(`/api/v1/quarantine/${gone.msg.envelope.id}`, { method: 'DELETE' })).status, 404);
    const audit = (await json('/api/v1/audit')).results as Json[];
    assert.equal(audit[0]!['action'], 'quarantine.delete', 'newest first');
    assert.equal(audit[0]!['who'], 'alice');
    assert.equal(audit[0]!['target'], gone.msg.envelope.id);
    assert.ok(
      audit.some(
        (a) =>
          a['action'] === 'quarantine.release-recheck' && a['target'] === re.msg.envelope.id && a['who'] === 'alice',
      ),
    );
    await waitTimeline(gone.msg.envelope.id, (evs) =>
      evs.some((e) => e.type === 'deleted' && e.details?.['by'] === 'alice'),
    );
  });

  test('two simultaneous releases of one message: one succeeds, the other is refused (409/404)', async () => {
    const x = quarantinedMessage({ from: 'frank@partner.test', to: 'ceo@example.test', stage: 'attachment-policy' });
    await env.quarantine(x.msg, TOPICS.scanned);
    await waitQuarantined(x.msg.envelope.id);
    const rs = await Promise.all(
      [0, 1].map(() => env.api(`/api/v1/quarantine/${x.msg.envelope.id}/release`, { method: 'POST', body: '{}' })),
    );
    const codes = rs.map((r) => r.status).sort();
    assert.equal(codes[0], 200, String(codes));
    assert.ok(codes[1] === 409 || codes[1] === 404, String(codes));
    // As is = to the input of the stage after attachment-policy (spam-check); nothing else is produced to it here.
    const recs = await env.readTopic(TOPICS.policyChecked, 1);
    assert.equal(recs.filter((r) => r.key?.toString() === x.msg.envelope.id).length, 1, 'produced once');
  });

  test('bad records: a non-event on the events topic and an undecodable dead letter do not stop ingestion', async () => {
    await env.produce(TOPICS.events, [
      { key: 'junk', value: Buffer.from('not json') },
      { key: 'junk2', value: Buffer.from('{"hello":1}') },
      { key: 'junk3', value: null },
    ]);
    await env.produce(TOPICS.deadLetter, [
      {
        key: 'DL0000000000000000000000AA',
        value: Buffer.from('garbage that is no mailgate record'),
        headers: {
          [RECORD_HEADERS.sourceTopic]: TOPICS.inbound,
          [RECORD_HEADERS.error]: 'CodecError: record too short',
        },
      },
    ]);
    const later = quarantinedMessage({ from: 'gina@partner.test', to: 'ops@example.test' });
    await env.events(eventsFor(later));
    await waitTimeline(later.msg.envelope.id, (evs) => evs.length === 4);
    await waitQuarantined('DL0000000000000000000000AA');
    const e = await json('/api/v1/quarantine/DL0000000000000000000000AA');
    assert.equal(e['kind'], 'undecodable');
    assert.equal(e['stage'], 'dnsbl-check');
    assert.match(e['reason'], /record too short/);
    const r = await env.api('/api/v1/quarantine/DL0000000000000000000000AA/release', { method: 'POST', body: '{}' });
    assert.equal(r.status, 409);
    assert.match(((await r.json()) as Json)['message'], /cannot be released/);
    assert.equal((await env.api('/api/v1/quarantine/DL0000000000000000000000AA', { method: 'DELETE' })).status, 200);
  });

  test('CLI: mailgate trace <id> and mailgate track --rcpt print the timeline and the search as tables', async () => {
    const capture = () => {
      let text = '';
      return {
        write: (s: string) => void (text += s),
        get text() {
          return text;
        },
      };
    };
    const run = async (argv: string[]) => {
      const out = capture();
      const err = capture();
      const code = await runTrack([...argv, '--url', env.url, '--token', READ_TOKEN], out, err);
      return { code, out: out.text, err: err.text };
    };
    const id = carol.msg.envelope.id;
    const t = await run(['trace', id]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, new RegExp(`Message\\s+${id}`));
    assert.match(t.out, new RegExp(`Trace\\s+${carol.traceId}\\s+${TRACE_UI}/trace/${carol.traceId}`));
    assert.match(t.out, /TIME\s+SERVICE\s+INSTANCE\s+EVENT\s+DETAILS/);
    assert.match(
      t.out,
      /delivery\s+delivery-0\s+delivered\s+rcpt=ceo@example.test, mx=mx.remote.test, reply=250 2.0.0 Ok/,
    );
    const s = await run(['track', '--rcpt', 'ceo@example.test', '--from', '@other.test']);
    assert.equal(s.code, 0, s.err);
    assert.match(
      s.out,
      new RegExp(`${id}\\s+\\S+\\s+carol@other.test\\s+ceo@example.test\\s+203.0.113.9\\s+delivered`),
    );
    assert.equal((await run(['track', '--rcpt', 'nobody@example.test'])).code, 1);
    assert.equal((await run(['trace', 'NOPE0000000000000000000000'])).code, 1);
    assert.equal((await run(['track'])).code, 64);
    const bad = capture();
    assert.equal(
      await runTrack(['trace', id, '--url', env.url, '--token', 'wrong-token-wrong-token'], capture(), bad),
      77,
    );
    assert.match(bad.text, /refused the token \(401\)/);
    assert.equal(
      await runTrack(['trace', id, '--url', 'http://127.0.0.1:1', '--token', READ_TOKEN], capture(), capture()),
      69,
    );
  });

  test('two recipients, a@ deferred and b@ delivered: each status in the API, the search, the CLI and the console', async () => {
    const m = quarantinedMessage({ from: 'dave@partner.test', to: 'a@multi.test', ip: '192.0.2.44' });
    const e = m.msg.envelope;
    const base = {
      messageId: e.id,
      traceId: m.traceId,
      mailFrom: e.mailFrom,
      rcptTo: ['a@multi.test', 'b@multi.test'],
      clientIp: e.session.clientIp,
      service: 'delivery' as const,
      host: 'delivery-0',
    };
    const t0 = Date.parse(e.receivedAt);
    const at = new Date(t0 + 30).toISOString(); // one stage outcome: one timestamp (runner.route)
    await env.events([
      { ...base, type: 'received', at: e.receivedAt, service: 'ingress-smtp', host: 'ingress-0' },
      { ...base, type: 'stage', at, details: { stage: 'delivery', verdict: { kind: 'pass' } } },
      {
        ...base,
        type: 'delivered',
        at,
        rcptTo: ['b@multi.test'],
        details: { remoteHost: 'mx.multi.test', reply: '250 2.0.0 Ok: queued as BB', destination: 'multi.test' },
      },
      {
        ...base,
        type: 'deferred',
        at,
        rcptTo: ['a@multi.test'],
        details: { destination: 'multi.test', reason: '451 4.2.1 try later', remoteHost: 'mx.multi.test' },
      },
    ]);
    const tl = await waitTimeline(e.id, (evs) => evs.length === 4);
    assert.equal(tl['summary']['status'], 'partially-delivered');
    assert.deepEqual(
      (tl['summary']['recipients'] as Json[]).map((r) => [r['rcpt'], r['status'], r['reply']]),
      [
        ['a@multi.test', 'deferred', '451 4.2.1 try later'],
        ['b@multi.test', 'delivered', '250 2.0.0 Ok: queued as BB'],
      ],
    );
    const statusFor = async (rcpt: string) =>
      ((await json(`/api/v1/messages?rcpt=${encodeURIComponent(rcpt)}`)).results as Json[])[0]!['status'];
    assert.equal(await statusFor('a@multi.test'), 'deferred');
    assert.equal(await statusFor('b@multi.test'), 'delivered');
    // The status search sees the message-level aggregate (status-search.test.ts covers it in depth).
    await waitFor(
      async () =>
        ((await json('/api/v1/messages?status=partially-delivered&rcpt=@multi.test')).results as Json[]).some(
          (r) => r['id'] === e.id,
        ),
      { timeoutMs: 20_000, message: 'indexed as partially-delivered' },
    );
    assert.equal((await env.api('/api/v1/messages?status=lost')).status, 400, 'unknown status');

    const out: string[] = [];
    const code = await runTrack(
      ['trace', e.id, '--url', env.url, '--token', READ_TOKEN],
      { write: (s: string) => out.push(s) },
      { write: () => undefined },
    );
    assert.equal(code, 0);
    assert.match(out.join(''), /To\s+a@multi\.test\s+deferred\s+451 4\.2\.1 try later/);
    assert.match(out.join(''), /\s+b@multi\.test\s+delivered\s+250 2\.0\.0 Ok: queued as BB\s+\(mx\.multi\.test\)/);

    const page = await (await env.api(`/console/messages/${e.id}`)).text();
    assert.match(page, /<tr data-rcpt="a@multi.test"><td>a@multi.test<\/td><td class="s-deferred">deferred<\/td>/);
    assert.match(page, /<tr data-rcpt="b@multi.test"><td>b@multi.test<\/td><td class="s-delivered">delivered<\/td>/);
  });

  test('deferred endpoints read the delivery queue (opened from the delivery section); unknown ids are 404', async () => {
    const r = await env.api('/api/v1/deferred');
    assert.equal(r.status, 200);
    assert.deepEqual(((await r.json()) as Json)['results'], []);
    const retry = await env.api('/api/v1/deferred/01M8G0B70XHFFSW30WSDE8BBRP/retry', { method: 'POST' });
    assert.ok(retry.status === 404, `status ${retry.status}`);
  });

  test('/metrics: consumer lag per partition and quarantine depth; /api/v1/stats', async () => {
    const stats = await json('/api/v1/stats');
    const events = (stats['stages'] as Json[]).find((s) => s['stage'] === 'admin-events')!;
    assert.ok(events['produced'] > 0);
    assert.equal(typeof stats['quarantined'], 'number');
    const text = await (await env.api('/metrics', { token: null })).text();
    assert.match(text, /mailgate_consumer_lag\{[^}]*stage="dnsbl-check"[^}]*partition="0"[^}]*\} \d+/);
    assert.match(text, /mailgate_consumer_lag\{[^}]*stage="virus-scan"/);
    assert.match(text, /mailgate_quarantine_depth(\{[^}]*\})? \d+/);
    assert.match(text, /mailgate_quarantine_messages\{[^}]*reason="virus"[^}]*\} \d+/);
  });
});
