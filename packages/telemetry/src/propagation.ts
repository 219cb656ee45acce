import {
  context,
  propagation,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

/**
 * Trace context across Kafka hops: the W3C `traceparent` travels in record headers, so one message is one
 * trace from the SMTP connect to the remote server's reply. Explicit W3C propagator (not the global one) so
 * propagation works even when the SDK is not started (tests, tools).
 */
const w3c = new W3CTraceContextPropagator();

/** Kafka headers as kafkajs hands them over: values may be Buffer, string, arrays or undefined. */
export type RecordHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

const getter: TextMapGetter<RecordHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const v = carrier[key];
    if (v === undefined) return undefined;
    const one = Array.isArray(v) ? v[0] : v;
    return one === undefined ? undefined : one.toString();
  },
};

const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Headers (`traceparent`, `tracestate`) for the given context (default: active). */
export function injectTraceHeaders(ctx: Context = context.active()): Record<string, string> {
  const out: Record<string, string> = {};
  w3c.inject(ctx, out, setter);
  return out;
}

/** A context whose parent is the span named by the record's `traceparent` header (or root when absent). */
export function extractTraceContext(headers: RecordHeaders | undefined, base: Context = context.active()): Context {
  if (!headers) return base;
  return w3c.extract(base, headers, getter);
}

/** Context from a stored `traceparent` string (e.g. the envelope's trace facts). */
export function contextFromTraceparent(traceparent: string | undefined, tracestate?: string): Context {
  if (!traceparent) return context.active();
  const h: RecordHeaders = { traceparent };
  if (tracestate) h['tracestate'] = tracestate;
  return extractTraceContext(h, context.active());
}

/** The W3C traceparent string of a span. */
export function traceparentOf(span: Span): string {
  const sc = span.spanContext();
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1).toString(16).padStart(2, '0')}`;
}

export function traceIdOf(span: Span): string {
  return span.spanContext().traceId;
}

export { propagation, context, trace };
