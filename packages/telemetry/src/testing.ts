import assert from 'node:assert/strict';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** The service a span belongs to: its `mailgate.service` attribute, else its tracer name, else the resource's. */
export function serviceOfSpan(s: ReadableSpan): string {
  const attr = s.attributes['mailgate.service'];
  if (typeof attr === 'string') return attr;
  return s.instrumentationScope.name || String(s.resource.attributes['service.name'] ?? '');
}

function parentIdOf(s: ReadableSpan): string | undefined {
  // sdk-trace 2.x: parentSpanContext; 1.x: parentSpanId.
  const x = s as ReadableSpan & { parentSpanId?: string; parentSpanContext?: { spanId: string } };
  return x.parentSpanContext?.spanId ?? x.parentSpanId;
}

export interface OneTrace {
  readonly traceId: string;
  /** The spans of the trace, parents before children. */
  readonly spans: ReadableSpan[];
  /** For each service asked about: its first span. */
  readonly byService: Map<string, ReadableSpan>;
}

/**
 * Assert that `spans` (from an in-memory exporter, possibly with unrelated spans) hold ONE trace in which every
 * service of `serviceNames` has a span, in that order along the parent chain: the span of service i+1 descends
 * from the span of service i (directly or through spans in between, e.g. an SMTP transaction span under the
 * session span, a Redis call under a stage span). The trace is the one containing the first service's span
 * (pass `traceId` to pick it). Every span of the trace must have its parent inside the trace, except the root.
 * Returns the trace for further assertions (attributes, verdicts).
 */
export function assertOneTrace(
  spans: readonly ReadableSpan[],
  serviceNames: readonly string[],
  traceId?: string,
): OneTrace {
  assert.ok(serviceNames.length > 0, 'assertOneTrace: name at least one service');
  const first = spans.find(
    (s) => serviceOfSpan(s) === serviceNames[0] && (!traceId || s.spanContext().traceId === traceId),
  );
  assert.ok(
    first,
    `no span from ${serviceNames[0]}${traceId ? ` in trace ${traceId}` : ''}; services seen: ${[...new Set(spans.map(serviceOfSpan))].join(', ') || 'none'}`,
  );
  const tid = first.spanContext().traceId;
  const inTrace = spans.filter((s) => s.spanContext().traceId === tid);
  const byId = new Map(inTrace.map((s) => [s.spanContext().spanId, s]));
  const roots = inTrace.filter((s) => !parentIdOf(s) || !byId.has(parentIdOf(s)!));
  assert.equal(
    roots.length,
    1,
    `trace ${tid} should have one root span, has ${roots.length}: ${roots.map((r) => `${serviceOfSpan(r)}/${r.name}`).join(', ')} (a broken parent link means the context was not propagated)`,
  );
  const ancestors = (s: ReadableSpan): Set<string> => {
    const out = new Set<string>();
    for (let p = parentIdOf(s); p && byId.has(p) && !out.has(p); p = parentIdOf(byId.get(p)!)) out.add(p);
    return out;
  };
  const byService = new Map<string, ReadableSpan>();
  let prev: ReadableSpan | undefined;
  for (const name of serviceNames) {
    const candidates = inTrace.filter((s) => serviceOfSpan(s) === name);
    assert.ok(
      candidates.length > 0,
      `trace ${tid} has no span from ${name}; it has: ${[...new Set(inTrace.map(serviceOfSpan))].join(', ')} (spans of ${name} in other traces: ${spans.filter((s) => serviceOfSpan(s) === name).length})`,
    );
    const chosen = prev ? candidates.find((c) => ancestors(c).has(prev!.spanContext().spanId)) : candidates[0];
    if (!chosen)
      assert.fail(
        `no span of ${name} descends from the span of ${serviceOfSpan(prev!)} ('${prev!.name}') in trace ${tid}`,
      );
    byService.set(name, chosen);
    prev = chosen;
  }
  const depth = (s: ReadableSpan) => ancestors(s).size;
  return { traceId: tid, spans: [...inTrace].sort((a, b) => depth(a) - depth(b)), byService };
}
