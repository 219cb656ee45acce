// The service through the real StageRunner, kafka-lite and Debian's rspamd (Bayes in a real Redis): what reaches
// the next topic, with which headers, and what happens while rspamd is down.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TOPICS, type PipelineMessage } from '@mailgate/contracts';
import { startService } from '@mailgate/runtime';
import {
  GTUBE,
  observeTopics,
  producePipelineMessages,
  startKafka,
  startRedis,
  startRspamd,
  testPipelineMessage,
  testStageService,
  waitFor,
  type KafkaHandle,
  type RedisHandle,
  type RspamdHandle,
  type TopicObserver,
} from '@mailgate/testkit';
import { createLogger } from '@mailgate/runtime';
import { setupSpamCheck, spamCheckSchema } from '../src/index.js';

const service = testStageService({
  stage: 'spam-check',
  section: 'spamCheck',
  schema: spamCheckSchema,
  setup: setupSpamCheck,
});
const log = createLogger('spam-check-test', 'warn');

function mail(subject: string, body: string, extra: string[] = [], withIds = true): string {
  return [
    'From: Alice Example <alice@partner.test>',
    'To: Bob Example <bob@example.test>',
    `Subject: ${subject}`,
    ...(withIds
      ? [`Message-ID: <${Math.random().toString(36).slice(2)}@partner.test>`, `Date: ${new Date().toUTCString()}`]
      : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...extra,
    '',
    body,
    '',
  ].join('\r\n');
}
const CLEAN =
  'Hi Bob,\r\n\r\nplease find the figures for the third quarter in the shared folder. Let us meet on Thursday at ' +
  'ten to go through them with the team.\r\n\r\nRegards,\r\nAlice';
const msg = (raw: string) =>
  testPipelineMessage(raw, {
    mailFrom: 'alice@partner.test',
    rcptTo: ['bob@example.test'],
    session: { clientIp: '192.0.2.10', helo: 'mx.partner.test' },
  });
const head = (m: PipelineMessage) => m.raw.toString('latin1').split('\r\n\r\n')[0]!;

describe('spam-check with a real rspamd', () => {
  let kafka: KafkaHandle;
  let redis: RedisHandle;
  let rspamd: RspamdHandle;
  let svc: { http: { port: number }; stop(): Promise<void> };
  let observer: TopicObserver<PipelineMessage>;
  const metrics = async () => (await fetch(`http://127.0.0.1:${svc.http.port}/metrics`)).text();

  before(async () => {
    // rspamd's first start on a machine compiles its hyperscan cache (tens of seconds): once per file.
    [kafka, redis] = await Promise.all([startKafka(), startRedis()]);
    rspamd = await startRspamd({ redis: { host: redis.host, port: redis.port } });
    svc = await startService(service, {
      configDocument: {
        gateway: { hostname: 'mx.test' },
        kafka: { brokers: [kafka.brokers], topics: { partitions: 1 } },
        spamCheck: {
          bus: { concurrency: 4, retry: { initialMs: 200, maxMs: 500 } },
          rspamd: {
            worker: { host: rspamd.host, port: rspamd.port },
            controller: { host: rspamd.host, port: rspamd.controllerPort },
            password: rspamd.password,
            timeoutMs: 5000,
            connectTimeoutMs: 500,
          },
          // A message without Message-ID and Date scores MISSING_MID + MISSING_DATE (≈3.5): the grey zone here.
          thresholds: { tag: 3, quarantine: 10, reject: 15 },
          subjectPrefix: '[SPAM] ',
        },
      },
      httpPort: 0,
      log,
    });
    observer = await observeTopics(kafka.brokers, [TOPICS.deliverable, TOPICS.quarantine]);
  });
  after(async () => {
    await observer?.stop();
    await svc?.stop();
    await rspamd?.stop();
    await redis?.stop();
    await kafka?.close();
  });

  const run = async (m: PipelineMessage) => {
    await producePipelineMessages(kafka.brokers, TOPICS.policyChecked, [m]);
    await waitFor(() => observer.of(m.envelope.id).length === 1, { timeoutMs: 30_000, message: 'verdict' });
    return observer.of(m.envelope.id)[0]!;
  };

  test('GTUBE → reject verdict, quarantined (never delivered), SCL 9, GTUBE in the reason', async () => {
    const r = await run(msg(mail('hello', `Some text ${GTUBE} more text`)));
    assert.equal(r.topic, TOPICS.quarantine);
    const v = r.value.envelope.verdicts.at(-1)!;
    assert.equal(v.stage, 'spam-check');
    assert.equal(v.verdict.kind, 'reject');
    assert.match((v.verdict as { reason: string }).reason, /GTUBE/);
    assert.equal(v.details?.['scl'], 9);
  });

  test('clean business message → delivered with X-Spam-Status: No and a low score, body untouched', async () => {
    const m = msg(mail('Quarterly figures', CLEAN));
    const r = await run(m);
    assert.equal(r.topic, TOPICS.deliverable);
    const v = r.value.envelope.verdicts.at(-1)!;
    assert.ok((v.details?.['score'] as number) < 3, JSON.stringify(v.details));
    assert.match(head(r.value), /^X-Spam-Status: No, score=/m);
    assert.doesNotMatch(head(r.value), /^X-Spam-Flag:/m);
    assert.ok(r.value.raw.toString('latin1').endsWith(m.raw.toString('latin1')));
  });

  test('grey message (around tag) → delivered, tagged and subject-prefixed', async () => {
    const r = await run(msg(mail('Quarterly figures', CLEAN, [], false)));
    assert.equal(r.topic, TOPICS.deliverable, JSON.stringify(r.value.envelope.verdicts.at(-1)?.details));
    assert.match(head(r.value), /^X-Spam-Flag: YES$/m);
    assert.match(head(r.value), /^Subject: \[SPAM\] Quarterly figures$/m);
    assert.match(head(r.value), /^X-Spam-Symbols: .*MISSING_MID/m);
  });

  test('rspamd stopped → held (not ready, errors counted); restarted → delivered once, nothing lost', async () => {
    await rspamd.halt();
    await waitFor(async () => (await fetch(`http://127.0.0.1:${svc.http.port}/readyz`)).status === 503, {
      timeoutMs: 20_000,
      message: 'not ready without rspamd',
    });
    const m = msg(mail('Quarterly figures', CLEAN));
    await producePipelineMessages(kafka.brokers, TOPICS.policyChecked, [m]);
    // Positive signal that the stage tried and held: the rspamd error and retry counters move.
    await waitFor(async () => /mailgate_rspamd_errors_total\{[^}]*kind="connect"[^}]*\} [2-9]/.test(await metrics()), {
      timeoutMs: 20_000,
      message: 'rspamd errors counted',
    });
    assert.deepEqual(observer.of(m.envelope.id), [], 'held: not passed on unchecked');
    await rspamd.restart();
    await waitFor(() => observer.of(m.envelope.id).length === 1, {
      timeoutMs: 60_000,
      message: 'delivered after restart',
    });
    assert.equal(observer.of(m.envelope.id)[0]!.topic, TOPICS.deliverable);
    assert.match(await metrics(), /mailgate_spam_actions_total\{[^}]*action="pass"/);
  });
});
