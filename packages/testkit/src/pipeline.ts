// Pipeline wiring for tests: pipeline messages, records as ingress produces them, reading/observing topics,
// a StageContext for unit tests of a stage function, and stage services with fast group membership.
import { randomBytes } from 'node:crypto';
import {
  decodeMessage,
  newEnvelope,
  newRecord,
  type NewEnvelopeInput,
  type PipelineMessage,
  type PipelineStage,
  type TraceFacts,
} from '@mailgate/contracts';
import { defineStageService, type StageContext, type StageServiceDefinition } from '@mailgate/bus';
import { createLogger, type ServiceDefinition, type ServiceSection } from '@mailgate/runtime';
import { trace } from '@opentelemetry/api';
import { Kafka, logLevel, Partitioners, type KafkaMessage, type Message } from 'kafkajs';
import type { ZodTypeAny } from 'zod';

/** A fresh, valid W3C trace (random trace id, sampled). */
export function testTrace(): TraceFacts {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

/**
 * A pipeline message around `raw` (a string is taken as latin1 bytes). Envelope defaults: from `a@sender.test`
 * to `u@example.test`, size = raw length, a fresh trace; `envelope` overrides any of them.
 */
export function testPipelineMessage(raw: Buffer | string, envelope: Partial<NewEnvelopeInput> = {}): PipelineMessage {
  const buf = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
  return {
    envelope: newEnvelope({
      mailFrom: 'a@sender.test',
      rcptTo: ['u@example.test'],
      size: buf.length,
      trace: testTrace(),
      ...envelope,
    }),
    raw: buf,
  };
}

/** The Kafka record of a pipeline message as ingress and the runner produce it (contracts' newRecord), sans topic. */
export function pipelineRecord(m: PipelineMessage, headers: Record<string, string> = {}): Message {
  const { key, value, headers: h } = newRecord('', m, { headers });
  return { key, value, headers: h };
}

function client(brokers: string): Kafka {
  return new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING });
}

/** Produce pipeline messages (acks=-1) with `pipelineRecord` headers plus `headers`, on a throwaway producer. */
export async function producePipelineMessages(
  brokers: string,
  topic: string,
  msgs: readonly PipelineMessage[],
  headers: Record<string, string> = {},
): Promise<void> {
  const p = client(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await p.connect();
  try {
    await p.send({ topic, acks: -1, messages: msgs.map((m) => pipelineRecord(m, headers)) });
  } finally {
    await p.disconnect();
  }
}

export interface ReadTopicOptions {
  /** Default 30 s. */
  readonly timeoutMs?: number;
}

/**
 * Every record of `topic` from the beginning (own throwaway consumer group) until `until` records arrived, or
 * until a record satisfies `until` when it is a predicate. Rejects with "timeout: n/count records on topic".
 */
export async function readTopic(
  brokers: string,
  topic: string,
  until: number | ((m: KafkaMessage) => boolean),
  opts: ReadTopicOptions = {},
): Promise<KafkaMessage[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const done = typeof until === 'number' ? (out: KafkaMessage[]) => out.length >= until : () => false;
  const c = client(brokers).consumer({
    groupId: `reader-${randomBytes(6).toString('hex')}`,
    sessionTimeout: 6000,
    heartbeatInterval: 300,
  });
  await c.connect();
  const out: KafkaMessage[] = [];
  try {
    await c.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const want = typeof until === 'number' ? `${until}` : 'a matching';
      const t = setTimeout(() => reject(new Error(`timeout: ${out.length}/${want} records on ${topic}`)), timeoutMs);
      c.run({
        eachMessage: async ({ message }) => {
          out.push(message);
          if (done(out) || (typeof until === 'function' && until(message))) {
            clearTimeout(t);
            resolve();
          }
        },
      }).catch(reject);
    });
  } finally {
    await c.disconnect();
  }
  return out;
}

/**
 * True when consumer group `groupId` has committed every record of `topic` (committed offset = end offset on every
 * partition): the positive signal that a stage finished a record (outputs are produced before the commit).
 */
export async function groupCaughtUp(brokers: string, groupId: string, topic: string): Promise<boolean> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends.every((e) => {
      const c = committed?.partitions.find((p) => p.partition === e.partition);
      return Number(e.high) === 0 || (c !== undefined && Number(c.offset) === Number(e.high));
    });
  } finally {
    await admin.disconnect();
  }
}

export interface Observed<T> {
  readonly topic: string;
  readonly partition?: number;
  readonly value: T;
  readonly message: KafkaMessage;
}

export interface TopicObserver<T> {
  /** Everything seen so far, in arrival order. */
  readonly seen: Observed<T>[];
  /** What was seen for one message id (pipeline records and events are keyed by it). */
  of(messageId: string): Observed<T>[];
  /** True once every record now in the observed topics was seen (compare with end offsets). */
  caughtUp(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * A consumer (own group, from the beginning) that keeps every record of `topics` in `seen`, decoded with
 * `decode` (default: a pipeline message). Use with `waitFor` to assert on what a service produced.
 */
export async function observeTopics<T = PipelineMessage>(
  brokers: string,
  topics: readonly string[],
  decode: (value: Buffer | null, topic: string) => T = (v) => decodeMessage(v) as T,
): Promise<TopicObserver<T>> {
  const c = client(brokers).consumer({
    groupId: `observer-${randomBytes(6).toString('hex')}`,
    sessionTimeout: 6000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 200,
  });
  const seen: Observed<T>[] = [];
  await c.connect();
  await c.subscribe({ topics: [...topics], fromBeginning: true });
  await c.run({
    eachMessage: async ({ topic, partition, message }) =>
      void seen.push({ topic, partition, value: decode(message.value, topic), message }),
  });
  return {
    seen,
    of: (id) => seen.filter((x) => x.message.key?.toString() === id),
    async caughtUp() {
      const admin = client(brokers).admin();
      await admin.connect();
      try {
        for (const topic of topics) {
          for (const e of await admin.fetchTopicOffsets(topic)) {
            const high = Number(e.high);
            const seenTo = Math.max(
              -1,
              ...seen
                .filter((x) => x.topic === topic && x.partition === e.partition)
                .map((x) => Number(x.message.offset)),
            );
            if (seenTo + 1 < high) return false;
          }
        }
        return true;
      } finally {
        await admin.disconnect();
      }
    },
    stop: () => c.disconnect(),
  };
}

const testLog = createLogger('test', process.env['TEST_LOG_LEVEL'] ?? 'silent');

/** A StageContext for calling a stage function directly: attempt 1, a silent logger, an unended span. */
export function testStageContext(stage: PipelineStage, overrides: Partial<StageContext> = {}): StageContext {
  return {
    stage,
    attempt: 1,
    firstAttemptAt: Date.now(),
    log: testLog,
    span: trace.getTracer(`${stage}-test`).startSpan('test'),
    signal: new AbortController().signal,
    host: 'test-host',
    ...overrides,
  };
}

/** Group membership fast enough for tests (kafkajs defaults: 30 s session, 3 s heartbeat). */
export const FAST_GROUP = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 300 } as const;

/** `defineStageService` with `FAST_GROUP` membership (the definition's own `runner` options win). */
export function testStageService<K extends ServiceSection, S extends ZodTypeAny>(
  def: StageServiceDefinition<K, S>,
): ServiceDefinition<{ [P in K]: S }> {
  return defineStageService({ ...def, runner: { ...FAST_GROUP, ...def.runner } });
}
