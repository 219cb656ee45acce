import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Telemetry } from '@mailgate/telemetry';

/** A readiness check: resolves true when the dependency can do its job right now. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

export interface HealthServerOptions {
  host: string;
  port: number;
  service: string;
  log: Logger;
  telemetry?: Telemetry;
  /** Per-check timeout; a check that does not answer in time counts as not ready. */
  checkTimeoutMs?: number;
}

export interface HealthServer {
  readonly app: FastifyInstance;
  /** Register a named readiness dependency (broker, redis, clamd…). */
  addCheck(name: string, check: ReadinessCheck): void;
  /** Force readiness off (shutdown) or back on. */
  setAccepting(on: boolean): void;
  listen(): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

/**
 * The HTTP surface every service has:
 *   /healthz  liveness — the process answers; never tied to Kafka/Redis/clamd (a restart would not fix them).
 *   /readyz   readiness — every registered dependency answers and the service is not draining (503 + JSON otherwise).
 *   /metrics  Prometheus text from the OpenTelemetry meter.
 */
export function createHealthServer(opts: HealthServerOptions): HealthServer {
  const app = Fastify({ logger: false });
  const checks = new Map<string, ReadinessCheck>();
  let accepting = true;
  const timeoutMs = opts.checkTimeoutMs ?? 2000;

  const runCheck = async (check: ReadinessCheck): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(check),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
    } catch {
      return false;
    } finally {
      if (timer) clearTimeout(timer);
    }
  };

  app.get('/healthz', async () => ({ status: 'ok', service: opts.service }));
  app.get('/readyz', async (_req, reply) => {
    const results: Record<string, boolean> = {};
    await Promise.all([...checks].map(async ([name, c]) => (results[name] = await runCheck(c))));
    const ready = accepting && Object.values(results).every(Boolean);
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not-ready', service: opts.service, draining: !accepting, checks: results });
  });
  app.get('/metrics', (req, reply) => {
    if (!opts.telemetry) return reply.code(404).send({ error: 'metrics not enabled' });
    reply.hijack();
    opts.telemetry.handlePrometheus(req.raw, reply.raw);
  });

  return {
    app,
    addCheck: (name, check) => void checks.set(name, check),
    setAccepting: (on) => void (accepting = on),
    async listen() {
      await app.listen({ host: opts.host, port: opts.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      opts.log.info({ host: opts.host, port }, 'http health server listening');
      return { host: opts.host, port };
    },
    close: () => app.close(),
  };
}
