import { startBroker } from '@mailgate/kafka-lite';
import { decodeMessage, encodeMessage, newEnvelope, RECORD_HEADERS, type PipelineMessage } from '@mailgate/contracts';
import { busSchema, createLogger, kafkaSchema } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';

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

/** Produce pipeline messages with a traceparent header, as ingress does. */
export async function produce(brokers: string, topic: string, msgs: PipelineMessage[]): Promise<void> {
  const k = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING });
  const p = k.producer();
  await p.connect();
  await p.send({
    topic,
    acks: -1,
    messages: msgs.map((m) => ({
      key: m.envelope.id,
      value: encodeMessage(m),
      headers: { traceparent: m.envelope.trace.traceparent, [RECORD_HEADERS.messageId]: m.envelope.id },
    })),
  });
  await p.disconnect();
}

/** Read every record of a topic from the beginning until `count` arrived (own throwaway group). */
export async function readTopic(brokers: string, topic: string, count: number, timeoutMs = 30_000): Promise<KafkaMessage[]> {
  const k = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING });
  const c = k.consumer({ groupId: `reader-${Math.random()}`, sessionTimeout: 6000, heartbeatInterval: 500 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const out: KafkaMessage[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout: ${out.length}/${count} records on ${topic}`)), timeoutMs);
      void c.run({
        eachMessage: async ({ message }) => {
          out.push(message);
          if (out.length >= count) {
            clearTimeout(t);
            resolve();
          }
        },
      });
    });
  } finally {
    await c.disconnect();
  }
  return out;
}

export function decoded(m: KafkaMessage) {
  return decodeMessage(m.value);
}
