import assert from 'node:assert/strict';
import { test } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { stageInFlight } from '@mailgate/bus';
import { decodeMessage, TOPICS } from '@mailgate/contracts';
import { deliverySchema } from '../src/config.js';
import {
  buildDsn,
  deliveryQueueSchema,
  dsnFor,
  dsnMessageId,
  headerBlock,
  nextAttemptAt,
  RETRY_QUEUE,
  statusOf,
} from '@mailgate/delivery-queue';
import { orderByPriority, Router } from '../src/routing.js';
import { service } from '../src/service.js';
import { assertNodemailerInternals, NODEMAILER_HOOK, NODEMAILER_WRITTEN_FOR } from '../src/smtp.js';
import { message } from './helpers.js';

const cfg = deliverySchema.parse({
  routes: [
    {
      domains: ['corp.test'],
      hosts: ['10.0.0.1:25', { address: 'hub2.corp.test:2525', priority: 5 }],
      tls: 'required',
    },
    { domains: ['*.corp.test'], hosts: ['10.0.0.9:25'] },
    { domains: ['.branch.test'], type: 'mx' },
  ],
  defaultRoute: { type: 'smarthost', hosts: ['relay.provider.test:587'] },
});

test('routing: exact domain, wildcard subdomain, self-and-sub, default', () => {
  const r = new Router(cfg);
  const corp = r.route('Alice@Corp.Test');
  assert.equal(corp.type, 'smarthost');
  assert.equal(corp.tls, 'required');
  assert.deepEqual(
    corp.hosts.map((h) => `${h.host}:${h.port}/${h.priority}`),
    ['10.0.0.1:25/0', 'hub2.corp.test:2525/5'],
  );
  assert.equal(r.route('bob@eu.corp.test').hosts[0]!.host, '10.0.0.9');
  assert.equal(r.route('x@branch.test').type, 'mx');
  assert.equal(r.route('x@a.branch.test').key, 'mx:a.branch.test');
  const other = r.route('c@elsewhere.test');
  assert.equal(other.key, 'smarthost:default');
  assert.equal(other.hosts[0]!.host, 'relay.provider.test');
  const groups = r.group(['a@corp.test', 'b@corp.test', 'c@eu.corp.test']);
  assert.deepEqual(
    groups.map((g) => g.recipients.length),
    [2, 1],
  );
});

test('routing: default route is MX lookup; config errors name the key', () => {
  const d = new Router(deliverySchema.parse({}));
  assert.equal(d.route('x@example.org').key, 'mx:example.org');
  const bad = deliverySchema.safeParse({ routes: [{ domains: ['a.test'], hosts: ['nope'] }], mxPort: 0 });
  assert.equal(bad.success, false);
  const paths = bad.error!.issues.map((i) => i.path.join('.'));
  assert.ok(paths.includes('routes.0.hosts.0'), paths.join(','));
  assert.ok(paths.includes('mxPort'));
});

test('orderByPriority: lower first, equal preferences in random order', () => {
  const items = [
    { n: 'b', priority: 20 },
    { n: 'a1', priority: 10 },
    { n: 'a2', priority: 10 },
  ];
  const seq = (vals: number[]) => {
    let i = 0;
    return () => vals[i++ % vals.length]!;
  };
  assert.deepEqual(
    orderByPriority(items, seq([0.5, 0.1, 0.9])).map((x) => x.n),
    ['a1', 'a2', 'b'],
  );
  assert.deepEqual(
    orderByPriority(items, seq([0.5, 0.9, 0.1])).map((x) => x.n),
    ['a2', 'a1', 'b'],
  );
});

test('retry schedule: Postfix-like defaults, growing, capped, never past give-up', () => {
  const s = deliverySchema.parse({}).retry.schedule;
  const t0 = 1_000_000;
  assert.equal(nextAttemptAt(s, 1, t0, t0) - t0, 300_000);
  assert.equal(nextAttemptAt(s, 2, t0, t0) - t0, 600_000);
  assert.equal(nextAttemptAt(s, 10, t0, t0) - t0, 4_000_000);
  const late = t0 + s.giveUpAfterMs - 1000;
  assert.equal(nextAttemptAt(s, 10, t0, late), t0 + s.giveUpAfterMs);
});

test("the queue tools' view of the delivery section names the queue delivery works, and accepts the whole section", () => {
  assert.equal(deliverySchema.parse({}).retry.queue, RETRY_QUEUE);
  assert.equal(deliveryQueueSchema.parse(undefined).retry.queue, RETRY_QUEUE);
  const doc = {
    routes: [{ domains: ['example.test'], type: 'smarthost', hosts: ['10.0.0.1:25'] }],
    retry: { queue: 'site-retry', concurrency: 2 },
  };
  assert.equal(deliverySchema.parse(doc).retry.queue, 'site-retry');
  assert.equal(deliveryQueueSchema.parse(doc).retry.queue, 'site-retry');
});

test('DSN: RFC 3464 report with the remote reply and original headers; none for <>', () => {
  const orig = message({
    from: 'sender@src.test',
    to: ['x@dst.test'],
    raw: 'Subject: hi\r\nX-Orig: 1\r\n\r\nsecret body\r\n',
  });
  const dsn = buildDsn({
    original: orig,
    kind: 'failed',
    recipients: [
      {
        rcpt: 'x@dst.test',
        reply: '550 5.1.1 <x@dst.test>: Recipient address rejected',
        remoteHost: 'mx.dst.test[127.0.0.3]:25',
      },
    ],
    reportingMta: 'gw.test',
    instance: 'i',
    traceparent: orig.envelope.trace.traceparent,
  });
  const text = dsn.raw.toString();
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status;/);
  assert.match(text, /Final-Recipient: rfc822; x@dst\.test/);
  assert.match(text, /Action: failed/);
  assert.match(text, /Status: 5\.1\.1/);
  assert.match(text, /Diagnostic-Code: smtp; 550 5\.1\.1 <x@dst\.test>: Recipient address rejected/);
  assert.match(text, /Content-Type: text\/rfc822-headers\r\n\r\nSubject: hi\r\nX-Orig: 1\r\n/);
  assert.doesNotMatch(text, /secret body/);
  assert.equal(dsn.envelope.mailFrom, '');
  assert.deepEqual(dsn.envelope.rcptTo, ['sender@src.test']);
  assert.equal(dsn.envelope.origin, 'dsn');
  assert.equal(dsn.envelope.trace.traceId, orig.envelope.trace.traceId);
  // Same bounce twice → same id (the markers then deliver it once).
  assert.equal(dsn.envelope.id, dsnMessageId(orig.envelope.id, 'failed', ['X@dst.test']));
  const rec = dsnFor(orig, [{ rcpt: 'x@dst.test', reply: '550 no' }], 'failed', {
    reportingMta: 'gw.test',
    instance: 'i',
    traceparent: orig.envelope.trace.traceparent,
  });
  assert.equal(rec!.record.topic, TOPICS.deliverable);
  assert.equal(decodeMessage(rec!.record.value).envelope.id, rec!.id);
  const bounceOfBounce = message({ from: '', to: ['x@dst.test'] });
  assert.equal(
    dsnFor(bounceOfBounce, [{ rcpt: 'x@dst.test', reply: '550 no' }], 'failed', {
      reportingMta: 'gw.test',
      instance: 'i',
      traceparent: orig.envelope.trace.traceparent,
    }),
    null,
  );
});

test('statusOf / headerBlock', () => {
  assert.equal(statusOf('452 4.2.2 mailbox full'), '4.2.2');
  assert.equal(statusOf('554 go away'), '5.0.0');
  assert.equal(statusOf('421 closing'), '4.0.0');
  assert.equal(headerBlock(Buffer.from('A: 1\nB: 2\n\nbody')).toString(), 'A: 1\nB: 2\n');
});

test('nodemailer hook: present in the installed release; a release without it stops start-up, naming it', () => {
  assertNodemailerInternals();
  const without = Object.assign(Object.create(SMTPConnection.prototype) as object, { [NODEMAILER_HOOK]: undefined });
  assert.throws(
    () => assertNodemailerInternals(without, '8.0.0'),
    (err: Error) =>
      err.message.includes(`nodemailer 8.0.0 lacks SMTPConnection.prototype.${NODEMAILER_HOOK}`) &&
      err.message.includes(`written for nodemailer ${NODEMAILER_WRITTEN_FOR}`),
  );
});

test('delivery keeps 96 records in flight per replica unless bus.inFlight says otherwise (alone and in a chain)', () => {
  const def = service.stageDefinition;
  assert.equal(def.inFlight, 96);
  assert.equal(stageInFlight({}, [def]), 96);
  assert.equal(stageInFlight({}, [{}, {}, def]), 96);
  assert.equal(stageInFlight({ inFlight: 0 }, [def]), 0);
});
