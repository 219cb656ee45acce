// Throughput of one stage hop (consume → pass-through stage → durable produce → commit) through kafka-lite, the
// per-message cost every pipeline stage pays on top of its own check.
// Run: npm run bench:stage-hop [-- N SIZE RATE]; RATE msg/s = live trickle (0: backlog). MG_BUS='{"fetchMinBytes":1}'
// overrides the bus config; MG_NOSTAGE=1 measures the feeder alone (subtract it in trickle mode); MG_SAMPLE=0..1 is
// the trace sampling ratio (default 1, as deployed: one trace per message) to measure what tracing costs per hop.
import { startBroker } from '@mailgate/kafka-lite';
import { busSchema, createLogger, kafkaSchema } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import { pass, TOPICS } from '@mailgate/contracts';
import { createKafka, DurableProducer, StageRunner } from '@mailgate/bus';
import { producePipelineMessages, testPipelineMessage } from '@mailgate/testkit';

const N = Number(process.argv[2] ?? 5000);
const SIZE = Number(process.argv[3] ?? 10240);
/** Messages per second arriving while the stage runs (0 = all queued before it starts: batch mode). */
const RATE = Number(process.argv[4] ?? 0);
const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
const cfg = kafkaSchema.parse({ brokers: [broker.brokers] });
const topic = 'bench.hop.in';
const body = 'x'.repeat(SIZE);
const msgs = Array.from({ length: N }, () => testPipelineMessage(Buffer.from(`Subject: b\r\n\r\n${body}`)));
if (!RATE)
  for (let i = 0; i < N; i += 500) await producePipelineMessages(broker.brokers, topic, msgs.slice(i, i + 500));

const kafka = createKafka(cfg, 'bench');
const producer = new DurableProducer(kafka, cfg);
await producer.connect();
let seen = 0;
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const runner = new StageRunner({
  stage: 'virus-scan',
  kafka,
  producer,
  fn: async () => {
    if (++seen === N) setImmediate(done);
    return { verdict: pass() };
  },
  bus: busSchema.parse(process.env['MG_BUS'] ? JSON.parse(process.env['MG_BUS']) : {}),
  log: createLogger('bench', 'silent'),
  telemetry: startTelemetry({ serviceName: 'bench', sampleRatio: Number(process.env['MG_SAMPLE'] ?? 1) }),
  host: 'bench',
  topic,
  groupId: 'bench-hop',
});
const cpu0 = process.cpuUsage();
const t0 = performance.now();
if (!process.env['MG_NOSTAGE']) await runner.start();
if (RATE) {
  // Trickle: one message at a time at RATE/s, as live traffic arrives (from a separate producer client).
  const feeder = new DurableProducer(createKafka(cfg, 'feeder'), cfg);
  await feeder.connect();
  const { newRecord } = await import('@mailgate/contracts');
  for (let i = 0; i < N; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const m = msgs[i]!;
    void feeder.send([newRecord(topic, m)]);
  }
  await feeder.drain();
  if (process.env['MG_NOSTAGE']) done();
}
await finished;
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await runner.stop();
console.log(
  `stage hop: ${N} × ${SIZE} B in ${ms.toFixed(0)} ms = ${((N * 1000) / ms).toFixed(0)} msg/s; ` +
    `process CPU (client + broker) ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms/msg; ` +
    `sampling ${process.env['MG_SAMPLE'] ?? 1}; output → ${TOPICS.scanned}`,
);
await producer.disconnect();
await broker.close();
process.exit(0);
