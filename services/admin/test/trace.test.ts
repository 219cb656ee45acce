// One message = one trace across services: an ingress span, then two real stage services (StageRunner through
// kafka-lite) in one process, with an in-memory exporter. Also: the stage's /metrics shows the runner's counters.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeEvent, newEnvelope, TOPICS, pass, quarantine, type PipelineStage } from '@mailgate/contracts';
import { startBroker } from '@mailgate/kafka-lite';
import { httpSchema, startService, type RunningService } from '@mailgate/runtime';
import { startTelemetry, traceparentOf } from '@mailgate/telemetry';
import { assertOneTrace, serviceOfSpan } from '@mailgate/telemetry/testing';
import { SpanKind } from '@opentelemetry/api';
import { producePipelineMessages, readTopic, testStageService } from '@mailgate/testkit';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { KafkaMessage } from 'kafkajs';
import { z } from 'zod';
import { log } from './helpers.js';

const sectionSchema = z
  .object({ http: httpSchema(0), bus: z.record(z.unknown()).optional() })
  .strict()
  .default({});

/** A stage service as the real ones are composed (defineStageService → StageRunner), with a trivial check. */
function stageService(stage: PipelineStage, section: 'dnsbl' | 'virusScan') {
  return testStageService({
    stage,
    section,
    schema: sectionSchema,
    setup: async () => ({
      fn: async (msg, ctx) => {
        ctx.span.setAttribute('mailgate.test.seen_by', stage);
        return msg.envelope.mailFrom.startsWith('virus') && stage === 'virus-scan'
          ? { verdict: quarantine('virus found: Eicar-Signature'), details: { signature: 'Eicar-Signature' } }
          : { verdict: pass(), details: { checked: true } };
      },
    }),
  });
}

describe('tracing across services', () => {
  const mem = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor(mem);
  // Held for the whole suite so the SDK (shared by the services in this process) stays up between them.
  const telemetry = startTelemetry({ serviceName: 'trace-test' });
  telemetry.addSpanProcessor(processor);
  let brokers = '';
  const services: RunningService<unknown>[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
    closers.push(() => broker.close());
    brokers = broker.brokers;
    const doc = {
      kafka: { brokers: [brokers], topics: { partitions: 1 } },
      dnsbl: { http: { host: '127.0.0.1' } },
      virusScan: { http: { host: '127.0.0.1' } },
    };
    for (const [stage, section] of [
      ['dnsbl-check', 'dnsbl'],
      ['virus-scan', 'virusScan'],
    ] as const) {
      services.push(
        (await startService(stageService(stage, section), {
          configDocument: doc,
          httpPort: 0,
          log,
        })) as RunningService<unknown>,
      );
    }
  });
  after(async () => {
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await telemetry.shutdown();
  });

  /** What ingress does: a span for the SMTP transaction, its traceparent in the envelope and the record headers. */
  async function ingress(mailFrom: string) {
    const span = telemetry.tracer('ingress-smtp').startSpan('smtp transaction', {
      kind: SpanKind.SERVER,
      attributes: { 'mailgate.service': 'ingress-smtp' },
    });
    const traceparent = traceparentOf(span);
    const traceId = span.spanContext().traceId;
    const raw = Buffer.from(`From: ${mailFrom}\r\nTo: u@example.test\r\nSubject: t\r\n\r\nhello\r\n`);
    const envelope = newEnvelope({
      mailFrom,
      rcptTo: ['u@example.test'],
      size: raw.length,
      trace: { traceparent, traceId },
    });
    span.setAttribute('mailgate.message_id', envelope.id);
    await producePipelineMessages(brokers, TOPICS.inbound, [{ envelope, raw }]);
    span.end();
    return { id: envelope.id, traceId };
  }

  const readUntil = (topic: string, pred: (m: KafkaMessage) => boolean) => readTopic(brokers, topic, pred);

  test('ingress → dnsbl-check → virus-scan spans share one trace id, in parent/child order, with verdicts', async () => {
    const { id, traceId } = await ingress('alice@partner.test');
    const recs = await readUntil(TOPICS.scanned, (m) => m.key?.toString() === id);
    const out = recs.find((m) => m.key?.toString() === id)!;
    assert.equal(
      out.headers?.['traceparent']?.toString().split('-')[1],
      traceId,
      'the output record carries the trace',
    );
    await processor.forceFlush();
    const t = assertOneTrace(mem.getFinishedSpans(), ['ingress-smtp', 'dnsbl-check', 'virus-scan'], traceId);
    assert.equal(t.traceId, traceId);
    const dnsbl = t.byService.get('dnsbl-check')!;
    const scan = t.byService.get('virus-scan')!;
    assert.equal(dnsbl.attributes['mailgate.verdict'], 'pass');
    assert.equal(dnsbl.attributes['mailgate.message_id'], id);
    assert.equal(scan.attributes['mailgate.verdict'], 'pass');
    assert.equal(scan.attributes['messaging.destination.name'], TOPICS.dnsblChecked);
    assert.equal(
      scan.attributes['mailgate.test.seen_by'],
      'virus-scan',
      'the stage function ran inside the stage span',
    );
    assert.equal(serviceOfSpan(t.spans[0]!), 'ingress-smtp', 'ingress is the root');

    // Every tracking event of the message carries the same trace id.
    const evs = (
      await readUntil(TOPICS.events, (m) => m.key?.toString() === id && decodeEvent(m.value).service === 'virus-scan')
    )
      .map((m) => decodeEvent(m.value))
      .filter((e) => e.messageId === id);
    assert.ok(evs.length >= 2);
    assert.ok(evs.every((e) => e.traceId === traceId));
  });

  test('a quarantine verdict is on the span; assertOneTrace names the broken link when the chain is cut', async () => {
    const { id, traceId } = await ingress('virus@partner.test');
    await readUntil(TOPICS.quarantine, (m) => m.key?.toString() === id);
    await processor.forceFlush();
    const t = assertOneTrace(mem.getFinishedSpans(), ['ingress-smtp', 'dnsbl-check', 'virus-scan'], traceId);
    const scan = t.byService.get('virus-scan')!;
    assert.equal(scan.attributes['mailgate.verdict'], 'quarantine');
    assert.equal(scan.attributes['mailgate.reason'], 'virus found: Eicar-Signature');
    // Without the dnsbl span the virus-scan span hangs off a parent that is not there: two roots, not one trace.
    const cut = mem
      .getFinishedSpans()
      .filter((s) => !(s.spanContext().traceId === traceId && serviceOfSpan(s) === 'dnsbl-check'));
    assert.throws(() => assertOneTrace(cut, ['ingress-smtp', 'virus-scan'], traceId), /one root span/);
    assert.throws(
      () => assertOneTrace(mem.getFinishedSpans(), ['ingress-smtp', 'delivery'], traceId),
      /no span from delivery/,
    );
  });

  test("a stage's /metrics shows the runner's counters and latency histogram", async () => {
    const port = services[1]!.http.port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(text, /mailgate_stage_messages_total\{[^}]*stage="virus-scan"[^}]*verdict="pass"[^}]*\} [1-9]/);
    assert.match(text, /mailgate_stage_messages_total\{[^}]*stage="virus-scan"[^}]*verdict="quarantine"[^}]*\} [1-9]/);
    assert.match(text, /mailgate_stage_duration_seconds_bucket\{[^}]*stage="dnsbl-check"/);
  });
});
