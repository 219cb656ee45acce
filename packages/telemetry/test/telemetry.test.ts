import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  contextFromTraceparent,
  extractTraceContext,
  gatewayVersion,
  injectTraceHeaders,
  instrumentationsFromEnv,
  startTelemetry,
  traceparentOf,
} from '../src/index.js';

test('MAILGATE_OTEL_INSTRUMENTATIONS: default set, all, none, list; unknown names are a clear error', () => {
  assert.deepEqual(instrumentationsFromEnv({}), ['http', 'net', 'dns']);
  assert.equal(instrumentationsFromEnv({ MAILGATE_OTEL_INSTRUMENTATIONS: 'all' }), true);
  assert.equal(instrumentationsFromEnv({ MAILGATE_OTEL_INSTRUMENTATIONS: 'none' }), false);
  assert.deepEqual(instrumentationsFromEnv({ MAILGATE_OTEL_INSTRUMENTATIONS: 'dns, ioredis' }), ['dns', 'ioredis']);
  assert.throws(
    () => instrumentationsFromEnv({ MAILGATE_OTEL_INSTRUMENTATIONS: 'dns,kafka' }),
    /unknown instrumentation kafka/,
  );
});

test('spans: recorded, propagated through record headers, root connects dropped; SDK restarts in one process', async () => {
  for (const round of [1, 2]) {
    const t = startTelemetry({ serviceName: `svc-${round}`, instrumentations: false });
    const mem = new InMemorySpanExporter();
    const p = new SimpleSpanProcessor(mem);
    t.addSpanProcessor(p);
    const parent = t.tracer().startSpan('smtp transaction');
    const headers = injectTraceHeaders(trace.setSpan(context.active(), parent));
    assert.equal(headers['traceparent'], traceparentOf(parent));
    const child = t.tracer('stage').startSpan('stage process', {}, extractTraceContext(headers, ROOT_CONTEXT));
    child.end();
    const fromEnvelope = t.tracer('stage').startSpan('later', {}, contextFromTraceparent(traceparentOf(parent)));
    fromEnvelope.end();
    t.tracer().startSpan('tcp.connect').end(); // a reconnect outside any message: not recorded
    t.tracer().startSpan('dns.lookup', {}, trace.setSpan(context.active(), parent)).end(); // inside: recorded
    parent.end();
    await p.forceFlush();
    const spans = mem.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => s.name).sort(),
      ['dns.lookup', 'later', 'smtp transaction', 'stage process'],
      `round ${round}`,
    );
    assert.ok(spans.every((s) => s.spanContext().traceId === parent.spanContext().traceId));
    assert.ok(
      spans.every((s) => s.resource.attributes['service.version'] === ROOT_VERSION),
      'service.version',
    );
    await t.shutdown();
  }
});

const ROOT_VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

test('service.version is the root package.json version, found by walking up from the module', () => {
  assert.match(ROOT_VERSION, /^\d+\.\d+\.\d+/);
  const dir = mkdtempSync(join(tmpdir(), 'mg-version-'));
  try {
    // An installed layout: root package.json, workspace package.json (another name) in between.
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'mailgate', version: '7.8.9' }));
    mkdirSync(join(dir, 'packages/telemetry/dist'), { recursive: true });
    writeFileSync(
      join(dir, 'packages/telemetry/package.json'),
      JSON.stringify({ name: '@mailgate/telemetry', version: '0.1.0' }),
    );
    assert.equal(gatewayVersion(join(dir, 'packages/telemetry/dist')), '7.8.9');
    assert.equal(gatewayVersion(tmpdir()), 'unknown');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
