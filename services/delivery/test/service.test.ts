// The service through the real StageRunner, kafka-lite, Redis (AOF) and the bullmq retry worker.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeEvent, TOPICS, type PipelineMessage, type TrackingEvent } from '@mailgate/contracts';
import { startService } from '@mailgate/runtime';
import {
  observeTopics,
  producePipelineMessages,
  startDnsServer,
  startKafka,
  startRedis,
  startSmtpSink,
  testStageService,
  waitFor,
  type DnsServerHandle,
  type KafkaHandle,
  type RedisHandle,
  type Sink,
  type TopicObserver,
} from '@mailgate/testkit';
import { openDeliveryQueue } from '@mailgate/delivery-queue';
import { deliverySchema } from '../src/config.js';
import { setupDelivery } from '../src/service.js';
import { message, silentLog } from './helpers.js';

const service = testStageService({
  stage: 'delivery',
  section: 'delivery',
  schema: deliverySchema,
  setup: setupDelivery,
});

let kafka: KafkaHandle;
let redis: RedisHandle;
let dns: DnsServerHandle;
let mx: Sink;
let events: TopicObserver<TrackingEvent>;

const KEY_PREFIX = 'svc:';
const deliverySection = () => ({
  dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1 },
  mxPort: mx.port,
  timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
  retry: { schedule: { initialMs: 300, factor: 1, maxMs: 300, giveUpAfterMs: 120_000 }, reconcileEveryMs: 1000 },
  limits: { connectionIdleMs: 100, backoffAfterFailures: 1000 },
  bus: { concurrency: 4 },
});
const doc = () => ({
  gateway: { hostname: 'gw.test', instance: 'delivery-0' },
  kafka: { brokers: [kafka.brokers], topics: { partitions: 1 } },
  redis: { url: redis.url, keyPrefix: KEY_PREFIX },
  logging: { level: 'silent' },
  delivery: deliverySection(),
});
const start = () => startService(service, { configDocument: doc(), httpPort: 0, log: silentLog });

before(async () => {
  kafka = await startKafka();
  redis = await startRedis({ appendonly: true });
  dns = await startDnsServer({
    records: [
      { name: 'svc.test', type: 'MX', priority: 10, exchange: 'mx.svc.test' },
      { name: 'mx.svc.test', type: 'A', address: '127.0.0.8' },
    ],
  });
  mx = await startSmtpSink({ host: '127.0.0.8' });
  events = await observeTopics(kafka.brokers, [TOPICS.events], (v) => decodeEvent(v));
});

after(async () => {
  await events?.stop();
  await mx?.close();
  await dns?.close();
  await redis?.stop();
  await kafka?.close();
});

const send = (m: PipelineMessage) => producePipelineMessages(kafka.brokers, TOPICS.deliverable, [m]);

const eventsOf = (id: string, type: string) => events.of(id).flatMap((x) => (x.value.type === type ? [x.value] : []));

test('service: delivers from the topic; deferred mail survives a delivery restart and a Redis restart (AOF); queue operations', async () => {
  let s = await start();
  try {
    const ok = message({ from: 'a@src.test', to: ['ok@svc.test'] });
    mx.setReply({ stage: 'rcpt', code: 451, rcpt: 'later@svc.test', message: '4.7.1 greylisted' });
    const later = message({ from: 'a@src.test', to: ['later@svc.test', 'now@svc.test'] });
    // A control deferred like `later` but not held: its retry after the restart is the positive signal that the
    // retry worker runs (so `later` staying untouched means "held", not "nothing ran yet").
    mx.setReply({ stage: 'rcpt', code: 451, rcpt: 'ctl@svc.test', message: '4.7.1 greylisted' });
    const ctl = message({ from: 'a@src.test', to: ['ctl@svc.test'] });
    await send(ok);
    await send(later);
    await send(ctl);
    await mx.waitFor((m) => m.rcptTo.includes('ok@svc.test'), 30_000);
    await mx.waitFor((m) => m.rcptTo.includes('now@svc.test'), 30_000);
    await waitFor(() => eventsOf(later.envelope.id, 'deferred').length > 0, {
      timeoutMs: 10_000,
      message: 'deferred event',
    });
    const deferred = eventsOf(later.envelope.id, 'deferred')[0]!;
    assert.deepEqual(deferred.rcptTo, ['later@svc.test']);
    assert.match(String(deferred.details!['reason']), /451 4\.7\.1 greylisted/);
    const delivered = await waitFor(() => eventsOf(ok.envelope.id, 'delivered')[0], {
      timeoutMs: 10_000,
      message: 'delivered event',
    });
    assert.match(String(delivered.details!['remoteHost']), /127\.0\.0\.8/);

    // /metrics: outcomes by result and reply class, the deferred queue, process metrics, no scope label.
    const metric = async (re: RegExp) => {
      const text = await (await fetch(`http://127.0.0.1:${s.http.port}/metrics`)).text();
      assert.doesNotMatch(text, /otel_scope_name/);
      const m = re.exec(text);
      return m ? Number(m[1]) : null;
    };
    await waitFor(async () => ((await metric(/^mailgate_delivery_deferred_messages (\S+)$/m)) ?? 0) >= 1, {
      timeoutMs: 10_000,
      message: 'deferred depth gauge',
    });
    assert.ok(
      (await metric(/^mailgate_delivery_outcomes_total\{result="delivered",class="2xx"\} (\S+)$/m))! >= 2,
      'delivered outcomes',
    );
    assert.ok((await metric(/^mailgate_delivery_outcomes_total\{result="deferred",class="4xx"\} (\S+)$/m))! >= 1);
    const age = (await metric(/^mailgate_delivery_deferred_oldest_age_seconds (\S+)$/m))!;
    assert.ok(age > 0 && age < 600, `oldest age ${age}`);
    assert.ok((await metric(/^process_resident_memory_bytes (\S+)$/m))! > 1e6);
    assert.ok((await metric(/^process_cpu_seconds_total (\S+)$/m))! > 0);
    assert.notEqual(await metric(/^nodejs_eventloop_lag_seconds (\S+)$/m), null);

    // Queue operations see it, with its next attempt and last error; hold stops the retries.
    const q = openDeliveryQueue({
      delivery: deliverySchema.parse(deliverySection()),
      redis: { url: redis.url, keyPrefix: KEY_PREFIX },
      gateway: { name: 'mailgate', hostname: 'gw.test', instance: 'cli' },
    });
    try {
      const list = await q.list();
      const item = list.items.find((i) => i.id === later.envelope.id)!;
      assert.deepEqual(
        item.recipients.map((r) => r.rcpt),
        ['later@svc.test'],
      );
      assert.match(item.lastError, /greylisted/);
      assert.ok(item.nextAttemptAt);
      await q.hold(later.envelope.id);
      assert.equal((await q.get(later.envelope.id))!.held, true);

      // Restart delivery, then Redis (AOF): the held message is still there; the sink stops refusing.
      await s.stop();
      await redis.restart();
      mx.clearReplies();
      s = await start();
      const attemptsBefore = (await q.get(later.envelope.id))!.attempts;
      await mx.waitFor((m) => m.rcptTo.includes('ctl@svc.test'), 30_000);
      await waitFor(async () => (await q.get(ctl.envelope.id)) === null, {
        timeoutMs: 10_000,
        message: 'control retried and done',
      });
      assert.equal((await q.get(later.envelope.id))!.attempts, attemptsBefore, 'held: not retried');
      assert.equal(mx.messages.filter((m) => m.rcptTo.includes('later@svc.test')).length, 0);
      await q.release(later.envelope.id);
      await q.retryNow(later.envelope.id);
      await mx.waitFor((m) => m.rcptTo.includes('later@svc.test'), 30_000);
      await waitFor(async () => (await q.get(later.envelope.id)) === null, {
        timeoutMs: 10_000,
        message: 'queue entry removed',
      });
    } finally {
      await q.close();
    }
    // Exactly one copy per recipient.
    for (const r of ['ok@svc.test', 'now@svc.test', 'later@svc.test', 'ctl@svc.test']) {
      assert.equal(mx.messages.filter((m) => m.rcptTo.includes(r)).length, 1, r);
    }
    // delivery's own metrics are exported (the journal backlog gauge is always reported).
    const metrics = await (await fetch(`http://127.0.0.1:${s.http.port}/metrics`)).text();
    assert.match(metrics, /mailgate_delivery_outcome_journal_backlog(\{[^}]*\})? 0/);
  } finally {
    await s.stop();
  }
});

test('service: restart with pending retries → all eventually delivered by the retry worker', async () => {
  let s = await start();
  try {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      mx.setReply({ stage: 'rcpt', code: 450, rcpt: `p${i}@svc.test`, times: 1 });
      const m = message({ from: 'a@src.test', to: [`p${i}@svc.test`] });
      ids.push(m.envelope.id);
      await send(m);
    }
    await waitFor(() => ids.every((id) => eventsOf(id, 'deferred').length > 0), {
      timeoutMs: 30_000,
      message: 'all deferred',
    });
    await s.stop(); // pending retries stay in Redis
    s = await start();
    for (let i = 0; i < 5; i++) await mx.waitFor((m) => m.rcptTo.includes(`p${i}@svc.test`), 30_000);
    await waitFor(() => ids.every((id) => eventsOf(id, 'delivered').length === 1), {
      timeoutMs: 10_000,
      message: 'delivered events',
    });
    for (let i = 0; i < 5; i++) assert.equal(mx.messages.filter((m) => m.rcptTo.includes(`p${i}@svc.test`)).length, 1);
  } finally {
    await s.stop();
  }
});

test('service: Redis killed and restarted twice while a message is being retried → the retries go on and it is delivered once', async () => {
  const s = await start();
  try {
    mx.setReply({ stage: 'rcpt', code: 451, rcpt: 'rr@svc.test', message: '4.7.1 greylisted' });
    const m = message({ from: 'a@src.test', to: ['rr@svc.test'] });
    await send(m);
    const refusals = () => mx.rejections.filter((r) => r.rcpt === 'rr@svc.test').length;
    await waitFor(() => eventsOf(m.envelope.id, 'deferred').length > 0, { timeoutMs: 30_000, message: 'deferred' });
    for (let i = 0; i < 2; i++) {
      // Crash Redis between retries (every 300 ms), then wait for the positive signal: another attempt was made.
      const before = refusals();
      await redis.kill();
      await redis.restart();
      await waitFor(() => refusals() >= before + 2, { timeoutMs: 60_000, message: `retries resumed (${i + 1})` });
    }
    mx.clearReplies();
    await mx.waitFor((x) => x.rcptTo.includes('rr@svc.test'), 60_000);
    await waitFor(() => eventsOf(m.envelope.id, 'delivered').length === 1, {
      timeoutMs: 10_000,
      message: 'delivered event',
    });
    assert.equal(mx.messages.filter((x) => x.rcptTo.includes('rr@svc.test')).length, 1);
  } finally {
    await s.stop();
  }
});
