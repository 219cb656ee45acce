import type { Instrumentation } from '@opentelemetry/instrumentation';
import { DnsInstrumentation } from '@opentelemetry/instrumentation-dns';
import { FastifyInstrumentation } from '@opentelemetry/instrumentation-fastify';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { NetInstrumentation } from '@opentelemetry/instrumentation-net';

export const INSTRUMENTATION_NAMES = ['http', 'net', 'dns', 'ioredis', 'fastify'] as const;
export type InstrumentationName = (typeof INSTRUMENTATION_NAMES)[number];
export type InstrumentationChoice = boolean | readonly InstrumentationName[] | undefined;

/**
 * What runs by default: the Node built-ins (they produce spans once any CommonJS module requires them after the
 * SDK started). ioredis and fastify are available by name but produce no spans in our ESM processes, with or
 * without the import-in-the-middle hook (measured with bench/instrumentation-probe.ts).
 */
export const DEFAULT_INSTRUMENTATIONS: readonly InstrumentationName[] = ['http', 'net', 'dns'];

/** `MAILGATE_OTEL_INSTRUMENTATIONS`: `none`, `all`, or a comma list (`http,dns`). Unset: the default set. */
export function instrumentationsFromEnv(env: NodeJS.ProcessEnv = process.env): InstrumentationChoice {
  const v = env['MAILGATE_OTEL_INSTRUMENTATIONS']?.trim().toLowerCase();
  if (v === undefined || v === '') return DEFAULT_INSTRUMENTATIONS;
  if (v === 'none' || v === 'false' || v === '0') return false;
  if (v === 'all' || v === 'true') return true;
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(INSTRUMENTATION_NAMES as readonly string[]).includes(n));
  if (bad.length) {
    throw new Error(
      `MAILGATE_OTEL_INSTRUMENTATIONS: unknown instrumentation ${bad.join(', ')} (known: ${INSTRUMENTATION_NAMES.join(', ')}, all, none)`,
    );
  }
  return names as InstrumentationName[];
}

/** Probe and scrape endpoints: a span per Kubernetes probe or Prometheus scrape would drown the message traces. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The auto-instrumentations, configured so they add detail to message traces rather than start traces of their
 * own: Redis commands, outgoing HTTP and DNS lookups are recorded only inside a span (a stage's processing, an
 * API request), so background chatter (reconnects, pings, probes) does not create thousands of one-span traces.
 */
export function createInstrumentations(choice: InstrumentationChoice): Instrumentation[] {
  if (!choice) return [];
  const want = new Set<InstrumentationName>(choice === true ? INSTRUMENTATION_NAMES : choice);
  const out: Instrumentation[] = [];
  if (want.has('http')) {
    out.push(
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => QUIET_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
        requireParentforOutgoingSpans: true,
      }),
    );
  }
  if (want.has('net')) out.push(new NetInstrumentation());
  if (want.has('dns')) out.push(new DnsInstrumentation({ ignoreHostnames: ['localhost'] }));
  if (want.has('ioredis')) out.push(new IORedisInstrumentation({ requireParentSpan: true }));
  if (want.has('fastify')) out.push(new FastifyInstrumentation());
  return out;
}
