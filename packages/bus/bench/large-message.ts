// How large messages travel: measures one 50 MiB (and 10 MiB) message produced durably (acks=-1) into kafka-lite and
// consumed back by a stage runner, inline in one record — the number behind docs/architecture.md's decision — and
// what gzip would cost on a typical (base64 attachment) body. Run: npm run bench:large-message
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { startBroker } from '@mailgate/kafka-lite';
import { encodeMessage, newEnvelope, pass, TOPICS } from '@mailgate/contracts';
import { busSchema, createLogger, kafkaSchema } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import { createKafka, DurableProducer, StageRunner } from '@mailgate/bus';

function message(bytes: number) {
  // A realistic body: base64 of incompressible data (an attachment), 76-char lines.
  const b64 = randomBytes(Math.ceil((bytes * 3) / 4))
    .toString('base64')
    .replace(/(.{76})/g, '$1\r\n');
  const raw = Buffer.from(`From: a@b.test\r\nTo: u@example.test\r\nSubject: big\r\n\r\n${b64}`.slice(0, bytes));
  return { envelope: newEnvelope({ mailFrom: 'a@b.test', rcptTo: ['u@example.test'], size: raw.length }), raw };
}

const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
const cfg = kafkaSchema.parse({ brokers: [broker.brokers], produceTimeoutMs: 60_000 });
const log = createLogger('bench', 'silent');
const telemetry = startTelemetry({ serviceName: 'bench' });
const kafka = createKafka(cfg, 'bench');
const producer = new DurableProducer(kafka, cfg);
await producer.connect();

console.log('size      produce(acks=-1)  stage hop (consume→produce→commit)  gzip time  gzip ratio');
for (const mib of [1, 10, 50]) {
  const msg = message(mib * 1024 * 1024);
  const value = encodeMessage(msg);
  const topic = `bench.large.${mib}`;
  let t = performance.now();
  await producer.send([{ topic, key: msg.envelope.id, value }]);
  const produceMs = performance.now() - t;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const runner = new StageRunner({
    stage: 'virus-scan',
    kafka,
    producer,
    fn: async () => {
      return { verdict: pass() };
    },
    bus: busSchema.parse({ concurrency: 1 }),
    log,
    telemetry,
    host: 'bench',
    topic,
    groupId: `bench-${mib}`,
    sessionTimeoutMs: 6000,
    heartbeatIntervalMs: 500,
    faults: { afterProduce: () => resolveDone() },
  });
  t = performance.now();
  await runner.start();
  await done;
  const hopMs = performance.now() - t;
  await runner.stop();
  t = performance.now();
  const gz = gzipSync(msg.raw);
  const gzMs = performance.now() - t;
  console.log(
    `${String(mib).padStart(3)} MiB   ${produceMs.toFixed(0).padStart(8)} ms   ${hopMs.toFixed(0).padStart(12)} ms (incl. group join)   ${gzMs.toFixed(0).padStart(6)} ms   ${(gz.length / msg.raw.length).toFixed(2)}`,
  );
}
console.log(`(output topic ${TOPICS.scanned}; record = envelope + raw bytes inline)`);
await producer.disconnect();
await telemetry.shutdown();
await broker.close();
