import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { makeTempDir, removeTempDir, startKafka, startKafkaProcess } from '../src/index.js';

const kafkaLiteSrc = new URL('../../kafka-lite/src/index.ts', import.meta.url);
const skip = existsSync(kafkaLiteSrc) ? false : 'packages/kafka-lite/src/index.ts does not exist yet';

async function roundTrip(brokers: string, topic: string, value: string): Promise<string[]> {
  const kafka = new Kafka({
    clientId: 'testkit',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 },
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }).catch(() => false);
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ value }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `g-${topic}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 10 s')), 10_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value?.toString() ?? '');
        clearTimeout(timer);
        resolve();
      },
    });
  });
  await consumer.disconnect();
  return seen;
}

test('startKafka (in-process kafka-lite) round-trips a message', { skip }, async (t) => {
  const k = await startKafka({ autoCreateTopics: true });
  t.after(() => k.close());
  assert.match(k.brokers, /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(await roundTrip(k.brokers, 'testkit-a', 'hello'), ['hello']);
});

test('startKafkaProcess survives kill -9 + restart with its dataDir', { skip }, async (t) => {
  const dataDir = makeTempDir('kafka-data');
  t.after(() => removeTempDir(dataDir));
  const k = await startKafkaProcess({ dataDir, autoCreateTopics: true });
  t.after(() => k.stop());
  assert.deepEqual(await roundTrip(k.brokers, 'testkit-b', 'before'), ['before']);
  await k.kill();
  await k.restart();
  const kafka = new Kafka({ brokers: [k.brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets('testkit-b');
  await admin.disconnect();
  assert.equal(offsets[0]?.high, '1');
});
