// kafkajs' request queue without its idle 1 ms timer loop (packages/bus/src/request-queue-fix.ts, kafkajs#1556):
// the fix is installed by createKafka, an empty queue arms no timer, and requests held back by throttling or by
// the in-flight limit are still sent — the cases the timer exists for — and a real consumer and producer still work.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { createKafka, installRequestQueueFix, requestQueueFixed } from '@mailgate/bus';
import { startKafka, type KafkaHandle } from '@mailgate/testkit';
import { kafkaCfg } from './helpers.js';

interface Queue {
  pending: unknown[];
  inflight: Map<number, unknown>;
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  push(r: unknown): void;
  fulfillRequest(r: { correlationId: number; payload: Buffer | null; size: number }): void;
  checkPendingRequests(): void;
  maybeThrottle(ms: number): void;
  destroy(): void;
}
type QueueClass = new (o: Record<string, unknown>) => Queue;

const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as QueueClass;
const silent = { debug() {}, info() {}, warn() {}, error() {}, namespace: () => silent };
const queue = (maxInFlightRequests: number | null = null): Queue => {
  installRequestQueueFix(); // idempotent; createKafka does it in a service (first test)
  return new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: 'test',
    broker: 'test:9092',
    logger: silent,
  });
};

/** A request as kafkajs' Connection pushes it; resolves with its correlation id once the queue sends it. */
function request(q: Queue, correlationId: number): Promise<number> {
  return new Promise((resolve) => {
    q.push({
      entry: { correlationId, apiKey: 1, apiName: 'Fetch', apiVersion: 11, resolve() {}, reject() {} },
      expectResponse: true,
      sendRequest: () => resolve(correlationId),
    });
  });
}

describe('kafkajs request queue fix', () => {
  let k: KafkaHandle;
  before(async () => {
    k = await startKafka();
  });
  after(async () => {
    await k.close();
  });

  test('createKafka installs it on kafkajs 2.2.x', () => {
    createKafka(kafkaCfg(k.brokers), 'queue-fix-test');
    assert.equal(installRequestQueueFix(), true, 'kafkajs still has the method the fix replaces');
    assert.equal(requestQueueFixed(), true);
  });

  test('an idle queue arms no timer: checking it with nothing pending leaves no timeout behind', () => {
    const q = queue();
    q.checkPendingRequests();
    assert.equal(q.throttleCheckTimeoutId, null, 'upstream arms a timer here that re-arms itself every millisecond');
    q.destroy();
  });

  test('a request held by client-side throttling is sent once the throttle ends, then the timer is gone', async () => {
    const q = queue();
    q.maybeThrottle(30);
    const sent = request(q, 1);
    assert.equal(q.pending.length, 1, 'throttled: the request waits');
    assert.notEqual(q.throttleCheckTimeoutId, null, 'a check is scheduled for the end of the throttle');
    assert.equal(await sent, 1);
    assert.equal(q.pending.length, 0);
    assert.equal(q.throttleCheckTimeoutId, null);
    q.destroy();
  });

  test('a request held by the in-flight limit is sent when the one in flight is answered', async () => {
    const q = queue(1);
    assert.equal(await request(q, 1), 1);
    const second = request(q, 2);
    assert.equal(q.pending.length, 1, 'one in flight: the second waits');
    q.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    assert.equal(await second, 2);
    assert.equal(q.pending.length, 0);
    q.destroy();
  });

  test('a producer and a consumer on the fixed queues produce and read back through a real broker', async () => {
    const kafka = createKafka(kafkaCfg(k.brokers), 'queue-fix-test');
    const producer = kafka.producer();
    await producer.connect();
    const topic = 'queue.fix';
    const values = Array.from({ length: 50 }, (_, i) => `m${i}`);
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: 'queue-fix', maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: string[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value!.toString());
          if (got.length === values.length) resolve();
        },
      });
    });
    await consumer.disconnect();
    assert.deepEqual(got.sort(), [...values].sort());
  });
});
