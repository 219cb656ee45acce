// The native CRC-32C swapped into kafkajs (packages/bus/src/crc32c.ts): kafkajs really uses it, and the checksums
// it writes are right — kafka-lite verifies every produced batch's CRC-32C and answers CORRUPT_MESSAGE otherwise,
// and librdkafka-compatible check values hold.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import { createKafka, installNativeCrc32c, kafkaCrc32cIsNative } from '@mailgate/bus';
import { startKafka, type KafkaHandle } from '@mailgate/testkit';
import { kafkaCfg } from './helpers.js';

describe('native CRC-32C for kafkajs', () => {
  let k: KafkaHandle;
  before(async () => {
    k = await startKafka();
  });
  after(async () => {
    await k.close();
  });

  test('createKafka installs it and kafkajs resolves its checksum module to it', () => {
    createKafka(kafkaCfg(k.brokers), 'crc-test');
    assert.equal(installNativeCrc32c(), true, 'kafkajs 2.2.x keeps its checksum module where the swap expects it');
    assert.equal(kafkaCrc32cIsNative(), true);
    const crc = createRequire(import.meta.url)('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (
      b: Buffer,
    ) => number;
    assert.equal(crc(Buffer.from('123456789')), 0xe3069283, 'the CRC-32C check value');
    assert.equal(crc(Buffer.alloc(0)), 0);
  });

  test('batches produced with it are accepted by a broker that verifies checksums, and read back intact', async () => {
    const kafka = createKafka(kafkaCfg(k.brokers), 'crc-test');
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const topic = 'crc.check';
    const values = [0, 1, 7, 8, 9, 1000, 100 * 1024].map((n, i) => Buffer.alloc(n, i + 1));
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ key: 'one-partition', value })) });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: 'crc-check' });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: Buffer[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value!);
          if (got.length === values.length) resolve();
        },
      });
    });
    await consumer.disconnect();
    assert.deepEqual(
      got.map((b) => b.length),
      values.map((b) => b.length),
    );
    assert.ok(got.every((b, i) => b.equals(values[i]!)));
  });
});
