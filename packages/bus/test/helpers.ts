import { startBroker } from '@mailgate/kafka-lite';
import { decodeMessage, newEnvelope, type PipelineMessage } from '@mailgate/contracts';
import { busSchema, createLogger, kafkaSchema, type BusConfig } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { producePipelineMessages } from '@mailgate/testkit';
import {
  createKafka,
  DurableProducer,
  StageRunner,
  type StageFn,
  type StageRunnerOptions,
  type StageRunnerSteps,
  type StageStep,
} from '@mailgate/bus';

export const log = createLogger('bus-test', process.env['TEST_LOG_LEVEL'] ?? 'silent');
export const telemetry = startTelemetry({ serviceName: 'bus-test' });

export async function broker() {
  return startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
}

export function kafkaCfg(brokers: string) {
  return kafkaSchema.parse({ brokers: [brokers], produceTimeoutMs: 5000 });
}

export const fastBus = busSchema.parse({
  concurrency: 4,
  maxAttempts: 3,
  retry: { initialMs: 50, maxMs: 200 },
  maxHoldMs: 60_000,
});

export function testMessage(text = 'hello'): PipelineMessage {
  const raw = Buffer.from(`From: a@b.test\r\nTo: u@example.test\r\nSubject: t\r\n\r\n${text}\r\n`);
  return {
    envelope: newEnvelope({
      mailFrom: 'a@b.test',
      rcptTo: ['u@example.test'],
      size: raw.length,
      trace: {
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        traceId: '0af7651916cd43dd8448eb211c80319c',
      },
    }),
    raw,
  };
}

export function decoded(m: KafkaMessage) {
  return decodeMessage(m.value);
}

/**
 * A virus-scan StageRunner on `brokers` with the tests' session timings, started; `stop` stops it and its producer.
 * runner.test.ts runs its stages with it, and so does the crash-runner fixture in a process of its own.
 */
export async function runStage(
  brokers: string,
  fn: StageFn,
  opts: {
    groupId: string;
    topic: string;
    bus?: BusConfig;
    host?: string;
    faults?: StageRunnerOptions['faults'];
  },
) {
  return startRunner(brokers, { stage: 'virus-scan', fn }, opts);
}

/**
 * A StageRunner running `steps` as a stage chain on `brokers` (their real topics from the stage graph, the chain's
 * own group unless `groupId`), started; chain.test.ts and the chain-crash fixture use it.
 */
export async function runChain(
  brokers: string,
  steps: readonly StageStep[],
  opts: { groupId?: string; bus?: BusConfig; host?: string; faults?: StageRunnerOptions['faults'] } = {},
) {
  return startRunner(brokers, { steps }, opts);
}

/** The runner of runStage / runChain: its own client and producer, the tests' session timings, started. */
async function startRunner(
  brokers: string,
  what: StageRunnerSteps,
  opts: { groupId?: string; topic?: string; bus?: BusConfig; host?: string; faults?: StageRunnerOptions['faults'] },
) {
  const cfg = kafkaCfg(brokers);
  const kafka = createKafka(cfg, 'test');
  const producer = new DurableProducer(kafka, cfg);
  await producer.connect();
  const runner = new StageRunner({
    ...what,
    kafka,
    producer,
    bus: opts.bus ?? fastBus,
    log,
    telemetry,
    host: opts.host ?? 'test-host',
    ...(opts.groupId ? { groupId: opts.groupId } : {}),
    ...(opts.topic ? { topic: opts.topic } : {}),
    sessionTimeoutMs: 6000,
    heartbeatIntervalMs: 500,
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  await runner.start();
  return {
    runner,
    stop: async () => {
      await runner.stop();
      await producer.disconnect();
    },
  };
}

/** One partition of `topic` holding `n` test records, produced before the stage starts (one fetched batch). */
export async function onePartitionBacklog(kafka: Kafka, brokers: string, topic: string, n: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  await admin.disconnect();
  await producePipelineMessages(
    brokers,
    topic,
    Array.from({ length: n }, (_, i) => testMessage(`m${i}`)),
  );
}

/** The offsets `groupId` committed on every partition of `topic`, by partition (-1: none yet). */
export async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<number[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return (t?.partitions ?? []).sort((x, y) => x.partition - y.partition).map((p) => Number(p.offset));
  } finally {
    await admin.disconnect();
  }
}

/** The offset `groupId` committed on partition 0 of `topic` (-1: none yet). */
export async function committedOffset(kafka: Kafka, groupId: string, topic: string): Promise<number> {
  return (await committedOffsets(kafka, groupId, topic))[0] ?? -1;
}
