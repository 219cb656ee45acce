// How long live mail waits behind a slow record: a paced stream through one stage replica (12 partitions,
// `bus.inFlight` 96 as delivery runs) where every K-th record is held H ms (a slow SMTP server), the others decided
// at once. Prints, for the fast records, the delay from their produce to the start of their stage function: with
// the window inside its fetched batch a held record kept the replica's next fetch waiting (kafkajs fetches again
// only after every batch of the last fetch returned), so everything produced meanwhile waited for it.
// Run: npm run bench:slow-record [-- RATE SECONDS K HOLD_MS]; MG_BUS='{"slidingWindow":false}' overrides the bus config.
import { startBroker } from '@mailgate/kafka-lite';
import { busSchema, createLogger, kafkaSchema } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import { newRecord, pass } from '@mailgate/contracts';
import { createKafka, DurableProducer, StageRunner } from '@mailgate/bus';
import { testPipelineMessage } from '@mailgate/testkit';

const RATE = Number(process.argv[2] ?? 100);
const SECONDS = Number(process.argv[3] ?? 20);
const K = Number(process.argv[4] ?? 50);
const HOLD_MS = Number(process.argv[5] ?? 3000);
const N = RATE * SECONDS;
const PARTITIONS = 12;

const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
const cfg = kafkaSchema.parse({ brokers: [broker.brokers] });
const topic = 'bench.slow.in';
const kafka = createKafka(cfg, 'bench');
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
await admin.disconnect();

const sentAt = new Map<string, number>();
const slow = new Set<string>();
const delays: number[] = [];
let decided = 0;
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const producer = new DurableProducer(kafka, cfg);
await producer.connect();
const bus = busSchema.parse({ inFlight: 96, ...(process.env['MG_BUS'] ? JSON.parse(process.env['MG_BUS']) : {}) });
const runner = new StageRunner({
  stage: 'virus-scan',
  kafka,
  producer,
  fn: async (m) => {
    const id = m.envelope.id;
    if (slow.has(id)) await new Promise((r) => setTimeout(r, HOLD_MS));
    else delays.push(performance.now() - sentAt.get(id)!);
    if (++decided === N) setImmediate(done);
    return { verdict: pass() };
  },
  bus,
  log: createLogger('bench', 'silent'),
  telemetry: startTelemetry({ serviceName: 'bench', sampleRatio: 0 }),
  host: 'bench',
  topic,
  groupId: 'bench-slow',
});
await runner.start();

const feeder = new DurableProducer(createKafka(cfg, 'feeder'), cfg);
await feeder.connect();
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const due = t0 + (i * 1000) / RATE;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const m = testPipelineMessage(Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`));
  if (i % K === K - 1) slow.add(m.envelope.id);
  sentAt.set(m.envelope.id, performance.now());
  void feeder.send([newRecord(topic, m)]);
}
await feeder.drain();
await finished;
const wall = (performance.now() - t0) / 1000;
await runner.stop();
delays.sort((a, b) => a - b);
const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))]!.toFixed(0);
console.log(
  `slow record: ${N} records at ${RATE}/s over ${PARTITIONS} partitions, every ${K}th held ${HOLD_MS} ms ` +
    `(inFlight ${bus.inFlight}, slidingWindow ${bus.slidingWindow}); fast records, produce → stage start: ` +
    `p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms; ` +
    `over ${(HOLD_MS / 2).toFixed(0)} ms: ${delays.filter((d) => d > HOLD_MS / 2).length} of ${delays.length}; ` +
    `all decided ${wall.toFixed(1)} s after the first produce`,
);
await producer.disconnect();
await feeder.disconnect();
await broker.close();
process.exit(0);
