import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectBus, type SideConsumer } from '@mailgate/bus';
import { startService, type ServiceDefinition } from '@mailgate/runtime';
import { logProbe } from '@mailgate/testkit';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { broker } from './helpers.js';

test(
  'connectBus: a side consumer crash kafkajs will not restart shuts the service down (no zombie)',
  { timeout: 60_000 },
  async () => {
    const b = await broker();
    const { log, seen: fatal } = logProbe('bus-test', 'fatal: shutting down');
    let side: SideConsumer | undefined;
    const topic = 'test.side.crash';
    const def: ServiceDefinition<Record<never, never>> = {
      name: 'admin',
      sections: {},
      http: () => ({ host: '127.0.0.1', port: 0 }),
      async start(ctx) {
        const bus = await connectBus(ctx.config.kafka, ctx, { clientId: 'side-test' });
        side = bus.consumer({
          name: 'side',
          groupId: 'g-side-crash',
          topics: [topic],
          sessionTimeoutMs: 6000,
          // A TypeError is unrecoverable for kafkajs: the consumer crashes with restart=false.
          eachMessage: async () => {
            throw new TypeError('handler bug');
          },
        });
        await side.start();
      },
    };
    const s = await startService(def, { configDocument: { kafka: { brokers: [b.brokers] } }, httpPort: 0, log });
    const client = new Kafka({ brokers: [b.brokers], logLevel: logLevel.NOTHING });
    const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    try {
      await producer.connect();
      await producer.send({ topic, acks: -1, messages: [{ value: 'poison' }] });
      const { reason } = await fatal;
      assert.match(String(reason), /side consumer crashed: .*handler bug/);
      assert.equal(s.ctx.lifecycle.shuttingDown, true);
      assert.equal(side?.isReady, false);
    } finally {
      await producer.disconnect().catch(() => undefined);
      await s.stop();
      await b.close();
    }
  },
);
