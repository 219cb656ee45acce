import { readFileSync, statSync } from 'node:fs';
import { connectBus, DurableProducer } from '@mailgate/bus';
import { createConnectFilter, dnsblSchema } from '@mailgate/dnsbl';
import { createRedis, redisReachable, type ServiceDefinition } from '@mailgate/runtime';
import { senderAuthSchema } from '@mailgate/sender-auth';
import { ingressSchema } from './config.js';
import type { ConnectFilter } from './connect-filter.js';
import { createIngress, type Ingress } from './ingress.js';
import { createListPhase } from './list-phase.js';
import { createRecipientPhase } from './recipient-phase.js';
import { createSenderAuthPhase } from './sender-auth-phase.js';
import { loadUsers } from './users.js';
import { createRefusalRecorder, type RefusalRecorder } from './refusals.js';

/**
 * ingress-smtp as a service: not a Kafka consumer, so it uses the runtime's startService directly with the bus's
 * DurableProducer (connectBus). Readiness = producer connected && a broker reachable (&& Redis, when limits use it).
 * Shutdown: stop-intake closes the listeners (new commands get 421), drain waits for sessions in DATA,
 * flush waits for the producer, close disconnects.
 */

export interface IngressServiceOptions {
  /** Called once the listeners are up (tests and the benchmark read the bound ports and stats). */
  onStarted?: (ingress: Ingress) => void;
  /** A connection-time filter. Default: packages/dnsbl's, from the `dnsbl:` section, when it has `ip` zones. */
  connectFilter?: ConnectFilter | null;
}

// `dnsbl:` is owned by packages/dnsbl (shared with the dnsbl-check stage); ingress reads its zones and atConnect.
// `senderAuth:` is owned by packages/sender-auth (shared with delivery's signing).
const sections = { ingress: ingressSchema, dnsbl: dnsblSchema, senderAuth: senderAuthSchema };

export function createIngressService(opts: IngressServiceOptions = {}): ServiceDefinition<typeof sections> {
  return {
    name: 'ingress-smtp',
    sections,
    http: (config) => config.ingress.http,
    async start(ctx) {
      const { config, log, lifecycle, health, telemetry } = ctx;
      const cfg = config.ingress;

      const readTls = () =>
        cfg.tls ? { key: readFileSync(cfg.tls.keyFile), cert: readFileSync(cfg.tls.certFile) } : null;
      let tls: ReturnType<typeof readTls>;
      try {
        tls = readTls();
      } catch (err) {
        throw new Error(`ingress.tls: cannot read certificate/key: ${(err as Error).message}`);
      }
      const users = await loadUsers(cfg.auth.users, cfg.auth.usersFile);
      if (cfg.listeners.submission.enabled && users.size === 0) {
        log.warn('submission listener enabled but ingress.auth has no users: nobody can authenticate');
      }

      const { kafka, producer } = await connectBus(config.kafka, ctx, {
        clientId: 'ingress-smtp',
        produceTimeoutMs: cfg.acceptTimeoutMs,
      });

      // Refusal events get their own producer: a refusal flood or a failed events produce never touches the
      // produce requests that carry accepted mail (refusals.ts).
      let refusals: RefusalRecorder | null = null;
      if (cfg.trackRefusals) {
        const refusalProducer = new DurableProducer(kafka, { produceTimeoutMs: cfg.acceptTimeoutMs }, log);
        const dropped = telemetry.meter('ingress-smtp').createCounter('mailgate_ingress_refusal_events_dropped', {
          description: 'refused tracking events dropped (buffer full or produce failed); the refusals are counted',
        });
        // Connected in the background: ingress must not wait for it, and a refusal before it is up is buffered.
        void refusalProducer.connect().catch((err: Error) => log.warn({ err: err.message }, 'refusal producer'));
        refusals = createRefusalRecorder({
          send: (records) => refusalProducer.send(records),
          instance: config.gateway.instance,
          log,
          onDrop: () => dropped.add(1),
        });
        const r = refusals;
        lifecycle.on('flush', 'refusal-events', () => r.flush());
        lifecycle.on('close', 'refusal-producer', () => refusalProducer.disconnect().catch(() => undefined));
      }

      const dnsblAtConnect =
        opts.connectFilter === undefined &&
        config.dnsbl.atConnect.enabled &&
        config.dnsbl.zones.some((z) => z.type === 'ip');
      // Readiness depends on Redis only where a check cannot work without it; the live lists keep their last
      // snapshot (and the seed) while Redis is away, so they use Redis without making it a readiness condition.
      const redisRequired =
        cfg.limits.messageRate.max > 0 ||
        cfg.auth.failures.max > 0 ||
        dnsblAtConnect ||
        cfg.recipients.domains.length > 0;
      const needsRedis = redisRequired || cfg.lists.enabled;
      const redis = needsRedis ? createRedis(config.redis, { name: 'ingress-smtp' }) : null;
      if (redis) {
        redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis error'));
        lifecycle.on('close', 'redis', () => redis.quit().catch(() => redis.disconnect()));
      }

      // The DNSBL answer cache is the shared Redis one (same keys as the dnsbl-check stage).
      const connectFilter =
        opts.connectFilter !== undefined
          ? opts.connectFilter
          : dnsblAtConnect
            ? createConnectFilter(config.dnsbl, { ...(redis ? { redis } : {}), log })
            : null;
      if (connectFilter) lifecycle.on('close', 'connect-filter', () => connectFilter.close());

      const recipientPhase = createRecipientPhase({
        config: cfg.recipients,
        redis,
        hostname: config.gateway.hostname,
        log,
        meter: telemetry.meter('ingress-smtp'),
      });
      if (recipientPhase) lifecycle.on('close', 'recipients', () => recipientPhase.close());
      const listPhase = redis && cfg.lists.enabled ? await createListPhase({ config: cfg.lists, redis, log }) : null;
      if (listPhase) lifecycle.on('close', 'lists', () => listPhase.close());
      // One verifier per process: it owns the DNS client (senderAuth.dns resolvers) and its cache.
      const senderAuth = config.senderAuth.enabled
        ? createSenderAuthPhase({
            config: config.senderAuth,
            hostname: config.gateway.hostname,
            instance: config.gateway.instance,
            log,
            tracer: telemetry.tracer('ingress-smtp'),
            meter: telemetry.meter('ingress-smtp'),
          })
        : null;
      if (senderAuth) lifecycle.on('close', 'sender-auth', () => senderAuth.close());

      const ingress = createIngress({
        config: cfg,
        hostname: config.gateway.hostname,
        instance: config.gateway.instance,
        product: config.gateway.name,
        log,
        tracer: telemetry.tracer('ingress-smtp'),
        meter: telemetry.meter('ingress-smtp'),
        producer,
        redis,
        connectFilter,
        recipientPhase,
        listPhase,
        users,
        tls,
        senderAuth,
        refusals,
      });
      await ingress.listen();
      lifecycle.on('stop-intake', 'smtp', () => ingress.stopIntake());
      lifecycle.on('drain', 'smtp', () => ingress.drained());

      if (redis && redisRequired) health.addCheck('redis', () => redisReachable(redis));

      if (cfg.tls && cfg.tls.reloadIntervalMs > 0) {
        const files = [cfg.tls.certFile, cfg.tls.keyFile];
        const stamp = () => files.map((f) => statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0).join(':');
        let last = stamp();
        const timer = setInterval(() => {
          const now = stamp();
          if (now === last) return;
          try {
            const next = readTls();
            if (next) ingress.updateTls(next);
            last = now;
            log.info('STARTTLS certificate reloaded');
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'STARTTLS certificate reload failed; keeping the old one');
          }
        }, cfg.tls.reloadIntervalMs);
        timer.unref();
        lifecycle.on('stop-intake', 'tls-reload', () => clearInterval(timer));
      }
      opts.onStarted?.(ingress);
    },
  };
}

export const service = createIngressService();
