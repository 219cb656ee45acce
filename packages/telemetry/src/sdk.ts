import { context, metrics, propagation, trace, type Meter, type Tracer } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { startProcessMetrics } from './process-metrics.js';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createInstrumentations, instrumentationsFromEnv, type InstrumentationChoice } from './instrumentations.js';
import { installResolveMemo } from './require-memo.js';
import { mailgateSampler } from './sampler.js';
import { serviceVersion } from './version.js';

export interface TelemetryOptions {
  serviceName: string;
  /** Default: the root package.json version (version.ts). */
  serviceVersion?: string;
  /** OTLP/HTTP endpoint base (e.g. http://jaeger:4318); unset = spans are not exported. */
  otlpEndpoint?: string | undefined;
  /** Head sampling ratio for new traces (1 = every message). */
  sampleRatio?: number;
  /** Extra span processors (tests attach an in-memory exporter here). */
  spanProcessors?: SpanProcessor[];
  /**
   * Auto-instrumentations (http, net, dns, ioredis, fastify): `true` = all, or a list of names, default none.
   * Under ESM most of them only patch modules loaded AFTER the SDK started — see docs/observability.md
   * ("Auto-instrumentation under ESM") and instrumentations.ts for what works without a loader hook.
   * Unset: env MAILGATE_OTEL_INSTRUMENTATIONS, else http, net and dns.
   */
  instrumentations?: InstrumentationChoice;
}

export interface Telemetry {
  readonly serviceName: string;
  tracer(name?: string): Tracer;
  meter(name?: string): Meter;
  /** Serve Prometheus text exposition for everything recorded through `meter()`. */
  handlePrometheus(req: IncomingMessage, res: ServerResponse): void;
  /** Attach a span processor to the running SDK (tests: an in-memory exporter). */
  addSpanProcessor(p: SpanProcessor): void;
  shutdown(): Promise<void>;
}

/**
 * A span processor whose targets can be added after the SDK started (tests attach an in-memory exporter; the
 * SDK only installs a tracer provider when it has at least one processor, and then never takes new ones).
 */
class DynamicSpanProcessor implements SpanProcessor {
  readonly targets: SpanProcessor[] = [];
  onStart(span: Parameters<SpanProcessor['onStart']>[0], ctx: Parameters<SpanProcessor['onStart']>[1]): void {
    for (const t of this.targets) t.onStart(span, ctx);
  }
  onEnd(span: Parameters<SpanProcessor['onEnd']>[0]): void {
    for (const t of this.targets) t.onEnd(span);
  }
  async forceFlush(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.forceFlush()));
  }
  async shutdown(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.shutdown()));
  }
}

let active: {
  sdk: NodeSDK;
  prometheus: PrometheusExporter;
  dynamic: DynamicSpanProcessor;
  serviceName: string;
  refs: number;
  stopProcessMetrics: () => void;
} | null = null;

/**
 * Start the OpenTelemetry SDK once per process (call it before creating clients). Later calls in the same
 * process (several services in one test process) share the first SDK; spans still name their service through
 * the tracer name and the `mailgate.service` attribute.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  if (!active) {
    // No otel_scope_name/version label on every series (Prometheus conventions; names are unique already).
    const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    const dynamic = new DynamicSpanProcessor();
    dynamic.targets.push(...(opts.spanProcessors ?? []));
    const spanProcessors: SpanProcessor[] = [dynamic];
    if (opts.otlpEndpoint) {
      const url = opts.otlpEndpoint.replace(/\/$/, '') + '/v1/traces';
      spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
    }
    const k8s: Record<string, string> = {};
    for (const [env, attr] of [
      ['POD_NAME', 'k8s.pod.name'],
      ['POD_NAMESPACE', 'k8s.namespace.name'],
      ['NODE_NAME', 'k8s.node.name'],
    ] as const) {
      const v = process.env[env];
      if (v) k8s[attr] = v;
    }
    const sdk = new NodeSDK({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: opts.serviceName,
        [ATTR_SERVICE_VERSION]: opts.serviceVersion ?? serviceVersion(),
        'service.namespace': 'mailgate',
        ...k8s,
      }),
      sampler: mailgateSampler(opts.sampleRatio ?? 1),
      spanProcessors,
      metricReaders: [prometheus],
      instrumentations: createInstrumentations(
        opts.instrumentations === undefined ? instrumentationsFromEnv() : opts.instrumentations,
      ),
    });
    sdk.start();
    // The instrumentations' require hook resolves every require() call; libraries that require lazily per request
    // (kafkajs) would pay a file-system walk each time (require-memo.ts).
    installResolveMemo();
    const stopProcessMetrics = startProcessMetrics(metrics.getMeter('mailgate.process'));
    active = { sdk, prometheus, dynamic, serviceName: opts.serviceName, refs: 0, stopProcessMetrics };
  }
  const a = active;
  a.refs++;
  let closed = false;
  return {
    serviceName: opts.serviceName,
    tracer: (name = opts.serviceName) => trace.getTracer(name),
    meter: (name = opts.serviceName) => metrics.getMeter(name),
    handlePrometheus: (req, res) => a.prometheus.getMetricsRequestHandler(req, res),
    addSpanProcessor: (p) => void a.dynamic.targets.push(p),
    shutdown: async () => {
      if (closed) return;
      closed = true;
      a.refs--;
      if (a.refs === 0 && active === a) {
        active = null;
        a.stopProcessMetrics();
        await a.sdk.shutdown().catch(() => undefined);
        // Unregister the globals too: otherwise a later start in the same process (tests run services one after
        // another) cannot register its providers and every span and metric goes to the shut-down ones.
        trace.disable();
        metrics.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
}
