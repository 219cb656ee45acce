import { after, type TestContext } from 'node:test';
import {
  encodeEvent,
  newEnvelope,
  newMessageId,
  RECORD_HEADERS,
  TOPICS,
  type Envelope,
  type PipelineMessage,
  type StageVerdict,
  type TrackingEvent,
} from '@mailgate/contracts';
import { startBroker } from '@mailgate/kafka-lite';
import { createLogger, startService } from '@mailgate/runtime';
import { isolatedRedisPrefix, pipelineRecord, readTopic, waitFor } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners, type KafkaMessage, type Message } from 'kafkajs';
import { createAdminService } from '../src/index.js';

process.env['KAFKAJS_NO_PARTITIONER_WARNING'] = '1';

export const log = createLogger('admin', (process.env['TEST_LOG_LEVEL'] ?? 'silent') as 'silent');
export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const ADMIN_TOKEN = 'alice-admin-token-0123456789';
export const READ_TOKEN = 'bob-readonly-token-0123456789';
export const TRACE_UI = 'http://jaeger.test:16686';

export interface AdminEnv {
  readonly url: string;
  readonly keyPrefix: string;
  readonly brokers: string;
  /** fetch with the admin token (or `token: null` for none). */
  api(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  produce(topic: string, records: Message[]): Promise<void>;
  events(events: TrackingEvent[]): Promise<void>;
  /** Produce a message to the quarantine topic as the runner does after `stage` quarantined it. */
  quarantine(msg: PipelineMessage, sourceTopic: string): Promise<void>;
  /** Every record of `topic` from the beginning until `count` arrived (own throwaway group). */
  readTopic(topic: string, count: number, timeoutMs?: number): Promise<KafkaMessage[]>;
}

/**
 * A describe()'s teardown: one after() hook of the suite runs what `after` added, newest first (servers before the
 * broker they talk to), then what `last` added; a failing step does not stop the others. Pass it where a test
 * context is wanted (startAdminEnv's `t`).
 */
export function suiteTeardown(): { after(fn: () => Promise<void>): void; last(fn: () => Promise<void>): void } {
  const steps: (() => Promise<void>)[] = [];
  after(async () => {
    for (const fn of steps) await fn().catch(() => undefined);
  });
  return { after: (fn) => void steps.unshift(fn), last: (fn) => void steps.push(fn) };
}

/**
 * kafka-lite on a free port, the shared Redis with a unique key prefix (removed afterwards) and the admin service
 * with two tokens: alice (admin) and bob (read-only).
 */
export async function startAdminEnv(
  t: TestContext | { after: (fn: () => Promise<void>) => void },
  /** Extra `admin:` config keys (merged over the defaults below). */
  admin: Record<string, unknown> = {},
  /** Share another env's Redis key prefix (a second replica of the same deployment). */
  opts: { keyPrefix?: string } = {},
): Promise<AdminEnv> {
  // node:test runs a context's after-hooks in the order they were added; teardown must run in reverse (admin and
  // producer before the broker), or kafkajs keeps retrying a closed broker and the test file never exits.
  const cleanups: (() => Promise<void> | void)[] = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  });
  t = { after: (fn: () => Promise<void>) => void cleanups.push(fn) };
  const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
  t.after(() => broker.close());
  const keyPrefix = opts.keyPrefix ?? isolatedRedisPrefix('mgadmin');
  t.after(async () => {
    const r = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await r.unlink(...keys);
    } while (cursor !== '0');
    r.disconnect();
  });
  const s = await startService(createAdminService({ sessionTimeoutMs: 6000 }), {
    configDocument: {
      gateway: { instance: 'admin-0' },
      kafka: { brokers: [broker.brokers], topics: { partitions: 1 } },
      redis: { url: REDIS_URL, keyPrefix },
      admin: {
        http: { host: '127.0.0.1' },
        tokens: [
          { name: 'alice', token: ADMIN_TOKEN, role: 'admin' },
          { name: 'bob', token: READ_TOKEN, role: 'read' },
        ],
        traceUiUrl: TRACE_UI,
        // Tests that try wrong tokens on purpose must not lock the shared client address out of later tests.
        authFailures: { max: 100 },
        ...admin,
      },
    },
    httpPort: 0,
    log,
  });
  t.after(() => s.stop());
  const url = `http://127.0.0.1:${s.http.port}`;
  const client = new Kafka({ brokers: [broker.brokers], logLevel: logLevel.NOTHING });
  const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  t.after(() => producer.disconnect());
  const produce: AdminEnv['produce'] = async (topic, records) => {
    await producer.send({ topic, acks: -1, messages: records });
  };
  return {
    url,
    keyPrefix,
    brokers: broker.brokers,
    api: (path, init = {}) => {
      const { token = ADMIN_TOKEN, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token !== null) headers.set('authorization', `Bearer ${token}`);
      if (rest.body && !headers.has('content-type')) headers.set('content-type', 'application/json');
      return fetch(url + path, { ...rest, headers });
    },
    produce,
    events: (evs) =>
      produce(
        TOPICS.events,
        evs.map((e) => ({ key: e.messageId, value: encodeEvent(e) })),
      ),
    quarantine: (msg, sourceTopic) =>
      produce(TOPICS.quarantine, [pipelineRecord(msg, { [RECORD_HEADERS.sourceTopic]: sourceTopic })]),
    readTopic: (topic, count, timeoutMs) => readTopic(broker.brokers, topic, count, { timeoutMs }),
  };
}

/**
 * Seed the tracking store: produce `events` to the events topic and wait until the admin service has ingested them
 * (the message of the last event answers on /api/v1/messages/ID).
 */
export async function ingestEvents(env: AdminEnv, events: TrackingEvent[]): Promise<void> {
  const last = events.at(-1)!.messageId;
  await env.events(events);
  await waitFor(async () => (await env.api(`/api/v1/messages/${last}`)).status === 200, {
    timeoutMs: 20_000,
    message: 'events ingested',
  });
}

/** An event ingress-smtp writes for a seeded search: `seconds` after `t0` (ms), from one client and sender. */
export function ingressEvent(
  type: 'received' | 'refused',
  messageId: string,
  at: { t0: number; seconds: number },
  from: { mailFrom: string; rcptTo: string[]; clientIp: string },
  details: Record<string, unknown>,
): TrackingEvent {
  return {
    type,
    messageId,
    at: new Date(at.t0 + at.seconds * 1000).toISOString(),
    service: 'ingress-smtp',
    host: 'ingress-0',
    ...from,
    details,
  };
}

/** A CLI command (runTrack, runLists, runSpam) against `env` with `token`: its exit code and what it wrote. */
export async function runCli(
  command: (argv: string[], out: { write(s: string): unknown }, err: { write(s: string): unknown }) => Promise<number>,
  env: AdminEnv,
  argv: string[],
  token = READ_TOKEN,
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await command(
    [...argv, '--url', env.url, '--token', token],
    { write: (s: string) => (out += s) },
    { write: (s: string) => (err += s) },
  );
  return { code, out, err };
}

/** The audit log as `who action target` lines, newest first. */
export async function auditLines(env: AdminEnv): Promise<string[]> {
  const audit = (await (await env.api('/api/v1/audit')).json()) as {
    results: { who: string; action: string; target: string }[];
  };
  return audit.results.map((e) => `${e.who} ${e.action} ${e.target}`);
}

let seq = 0;
/** A distinct 32-hex trace id and its traceparent. */
export function newTrace(): { traceId: string; traceparent: string } {
  const traceId = (
    Date.now().toString(16) +
    (++seq).toString(16).padStart(4, '0') +
    Math.random().toString(16).slice(2)
  )
    .padEnd(32, '0')
    .slice(0, 32);
  return { traceId, traceparent: `00-${traceId}-${'b7ad6b7169203331'}-01` };
}

/** The envelope of a test message from `from` to `to`: a fresh id and trace, received from `ip` by ingress-0. */
export function testEnvelope(raw: Buffer, m: { from: string; to: string; ip?: string }): Envelope {
  return newEnvelope({
    id: newMessageId(),
    mailFrom: m.from,
    rcptTo: [m.to],
    size: raw.length,
    session: { clientIp: m.ip ?? '192.0.2.10', ingressHost: 'ingress-0' },
    trace: newTrace(),
  });
}

export interface TestMessage {
  readonly msg: PipelineMessage;
  readonly traceId: string;
}

/** A message as virus-scan quarantines it: EICAR-ish body, dnsbl pass then a virus-scan quarantine verdict. */
export function quarantinedMessage(opts: {
  from: string;
  to: string;
  ip?: string;
  stage?: StageVerdict['stage'];
}): TestMessage {
  const raw = Buffer.from(
    `From: ${opts.from}\r\nTo: ${opts.to}\r\nSubject: invoice\r\n\r\nX5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR\r\n`,
  );
  const base = testEnvelope(raw, opts);
  const now = new Date().toISOString();
  const stage = opts.stage ?? 'virus-scan';
  const envelope = {
    ...base,
    verdicts: [
      { stage: 'dnsbl-check' as const, verdict: { kind: 'pass' as const }, at: now, durationMs: 3, host: 'dnsbl-0' },
      {
        stage,
        verdict: { kind: 'quarantine' as const, reason: 'virus found: Eicar-Signature' },
        at: now,
        durationMs: 12,
        host: 'scan-0',
        details: { signature: 'Eicar-Signature' },
      },
    ],
  };
  return { msg: { envelope, raw }, traceId: base.trace.traceId };
}

/** The tracking events the services emit for a message that was received, checked and quarantined. */
export function eventsFor(m: TestMessage, outcome: 'quarantined' | 'delivered' = 'quarantined'): TrackingEvent[] {
  const e = m.msg.envelope;
  const t0 = Date.parse(e.receivedAt);
  const base = {
    messageId: e.id,
    traceId: m.traceId,
    mailFrom: e.mailFrom,
    rcptTo: e.rcptTo,
    clientIp: e.session.clientIp,
  };
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  const evs: TrackingEvent[] = [
    { ...base, type: 'received', at: at(0), service: 'ingress-smtp', host: 'ingress-0', details: { size: e.size } },
    {
      ...base,
      type: 'stage',
      at: at(5),
      service: 'dnsbl-check',
      host: 'dnsbl-0',
      details: { stage: 'dnsbl-check', verdict: { kind: 'pass' } },
    },
  ];
  const virusScan = (type: 'stage' | 'quarantined', verdict: Record<string, unknown>): TrackingEvent => ({
    ...base,
    type,
    at: at(20),
    service: 'virus-scan',
    host: 'scan-0',
    details: { stage: 'virus-scan', verdict },
  });
  if (outcome === 'quarantined') {
    const v = { kind: 'quarantine', reason: 'virus found: Eicar-Signature' };
    evs.push(virusScan('stage', v), virusScan('quarantined', v));
  } else {
    evs.push(virusScan('stage', { kind: 'pass' }));
    evs.push({
      ...base,
      type: 'delivered',
      at: at(40),
      service: 'delivery',
      host: 'delivery-0',
      details: { rcpt: e.rcptTo[0], mx: 'mx.remote.test', reply: '250 2.0.0 Ok: queued as ABC' },
    });
  }
  return evs;
}

/**
 * Redis clients under isolated key prefixes (call inside a suite): after it, every key under their prefixes is removed
 * and they are closed. `client(name)` makes one; `track(...)` takes clients made elsewhere.
 */
export function isolatedRedisClients(): { client(name: string): Redis; track(...clients: Redis[]): void } {
  const clients: Redis[] = [];
  after(async () => {
    const raw = new Redis(REDIS_URL);
    for (const c of clients) {
      const keys = await raw.keys(`${c.options.keyPrefix}*`);
      if (keys.length) await raw.unlink(...keys);
      c.disconnect();
    }
    raw.disconnect();
  });
  return {
    client(name) {
      const redis = new Redis(REDIS_URL, { keyPrefix: isolatedRedisPrefix(name) });
      clients.push(redis);
      return redis;
    },
    track(...more) {
      clients.push(...more);
    },
  };
}
