import type { Attributes, Context, Link, SpanKind } from '@opentelemetry/api';
import {
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace-base';

/** Span names of auto-instrumented client operations (net, dns): recorded inside a trace, never as a root. */
const CLIENT_NOISE = /^(tcp|tls|ipc)\.connect$|^dns\.(lookup|lookupService|resolve\w*)$/;

/**
 * Root sampler: a message trace (or an API request) is sampled at `ratio` (default 1 — each message is an
 * audit record); a connect or DNS lookup with no parent (Kafka/Redis reconnects, background probes) is dropped, so
 * the tracing backend holds message traces, not thousands of one-span connection traces.
 */
class MailgateRootSampler implements Sampler {
  private readonly ratio: Sampler;
  constructor(ratio: number) {
    this.ratio = new TraceIdRatioBasedSampler(ratio);
  }
  shouldSample(
    ctx: Context,
    traceId: string,
    name: string,
    kind: SpanKind,
    attrs: Attributes,
    links: Link[],
  ): SamplingResult {
    if (CLIENT_NOISE.test(name)) return { decision: SamplingDecision.NOT_RECORD };
    return this.ratio.shouldSample(ctx, traceId, name, kind, attrs, links);
  }
  toString(): string {
    return `MailgateRootSampler{${this.ratio.toString()}}`;
  }
}

/** Parent-based (a stage continues the message's trace decision), with the root rule above. */
export function mailgateSampler(ratio: number): Sampler {
  return new ParentBasedSampler({ root: new MailgateRootSampler(ratio) });
}
