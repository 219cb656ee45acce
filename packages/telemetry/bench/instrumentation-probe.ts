/**
 * Which OpenTelemetry auto-instrumentations actually produce spans in our ESM processes? Prints one line per
 * instrumentation scope that recorded spans. Four ways to run it (see docs/observability.md):
 *   node --import tsx --conditions=mailgate-src packages/telemetry/bench/instrumentation-probe.ts
 *   PROBE_LOAD_FIRST=1 node --import tsx ... (modules loaded before the SDK starts, as in `mailgate <service>`)
 *   node --import @opentelemetry/instrumentation/hook.mjs --import tsx ... (import-in-the-middle loader hook)
 */
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startTelemetry } from '../src/index.js';

const load = async () => ({
  http: (await import('node:http')).default,
  net: (await import('node:net')).default,
  dns: (await import('node:dns')).promises,
  Fastify: (await import('fastify')).default,
  Redis: (await import('ioredis')).Redis,
});
const loadFirst = process.env['PROBE_LOAD_FIRST'] === '1';
const early = loadFirst ? await load() : null;
const mem = new InMemorySpanExporter();
const t = startTelemetry({
  serviceName: 'probe',
  instrumentations: true,
  spanProcessors: [new SimpleSpanProcessor(mem)],
});
const { http, net, dns, Fastify, Redis } = early ?? (await load());

const app = Fastify();
app.get('/x', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as import('node:net').AddressInfo).port;
// Client work inside a parent span: the instrumentations are configured to record only within a trace.
await trace.getTracer('probe').startActiveSpan('probe parent', async (parent) => {
  await new Promise<void>((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}/x`, (res) => res.resume().on('end', resolve)).on('error', reject);
  });
  const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    console.log(`redis unreachable: ${(e as Error).message}`);
  }
  redis.disconnect();
  await dns.lookup('example.invalid').catch(() => undefined);
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end());
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  parent.end();
});
await app.close();
await new Promise((r) => setTimeout(r, 200));

const by = new Map<string, string[]>();
for (const s of mem.getFinishedSpans()) {
  const lib = s.instrumentationScope.name;
  by.set(lib, [...(by.get(lib) ?? []), s.name]);
}
const hook = process.execArgv.some((a) => a.includes('hook.mjs')) ? 'import-in-the-middle hook' : 'no loader hook';
console.log(`${hook}, modules loaded ${loadFirst ? 'BEFORE' : 'after'} the SDK started:`);
for (const [lib, names] of by)
  console.log(`  ${lib}: ${names.length} span(s), e.g. ${[...new Set(names)].slice(0, 4).join(' | ')}`);
await t.shutdown();
