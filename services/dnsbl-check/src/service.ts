import { defineStageService, type StageServiceDefinition } from '@mailgate/bus';
import { createRedis } from '@mailgate/runtime';
import { DnsblChecker } from '@mailgate/dnsbl';
import { dnsblCheckSchema } from './config.js';
import { createDnsblStage } from './stage.js';

/**
 * dnsbl-check as a pipeline stage: consumes mailgate.inbound, produces mailgate.dnsbl-checked (pass) or
 * quarantine (reject/quarantine). Readiness: at least one zone passes its RFC 5782 health check (so the
 * resolver answers).
 */
export function dnsblCheckService(
  opts: { runner?: StageServiceDefinition<'dnsbl', typeof dnsblCheckSchema>['runner'] } = {},
) {
  return defineStageService({
    stage: 'dnsbl-check',
    ...(opts.runner ? { runner: opts.runner } : {}),
    section: 'dnsbl',
    schema: dnsblCheckSchema,
    async setup({ config, log }) {
      const cfg = config.dnsbl;
      const redis = cfg.cache.enabled ? createRedis(config.redis, { name: 'dnsbl-check' }) : undefined;
      const checker = new DnsblChecker(cfg, { log, ...(redis ? { redis } : {}) });
      await checker.start();
      for (const s of checker.zoneStates()) {
        if (s.up === false) log.warn({ zone: s.zone, reason: s.reason }, 'dnsbl zone disabled at start-up');
      }
      return {
        fn: createDnsblStage({ checker, cfg }),
        // Redis is not a readiness dependency: the cache is bypassed when it is down.
        checks: { dnsbl: () => checker.ready() },
        async close() {
          await checker.close();
          if (redis) await redis.quit().catch(() => redis.disconnect());
        },
      };
    },
  });
}

export const service = dnsblCheckService();
