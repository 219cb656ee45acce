import { defineStageService, type StageServiceDefinition } from '@mailgate/bus';
import { ClamdPool } from './clamd/pool.js';
import { virusScanSchema } from './config.js';
import { createScanMetrics } from './metrics.js';
import { createVirusScanStage } from './stage.js';

type Definition = StageServiceDefinition<'virusScan', typeof virusScanSchema>;

/** Builds the clamd pool and the stage function (shared by `service` and tests that tune the runner). */
export const setupVirusScan: Definition['setup'] = async ({ config, log, telemetry }) => {
  const cfg = config.virusScan;
  const metrics = createScanMetrics(telemetry.meter('mailgate.virus-scan'));
  const pool = new ClamdPool({
    endpoints: cfg.clamd.endpoints,
    connectTimeoutMs: cfg.clamd.connectTimeoutMs,
    readTimeoutMs: cfg.clamd.readTimeoutMs,
    chunkBytes: cfg.clamd.chunkBytes,
    sessionsPerEndpoint: cfg.clamd.sessionsPerEndpoint,
    sessionWaitMs: cfg.clamd.sessionWaitMs,
    healthIntervalMs: cfg.clamd.healthIntervalMs,
    log: log.child({ component: 'clamd' }),
    onError: (err) => metrics.clamdError(err),
  });
  pool.start();
  if (cfg.failOpen) {
    log.warn('virusScan.failOpen is ON: when no clamd answers, mail is passed UNSCANNED (with a warning header)');
  }
  const { fn, hooks } = createVirusScanStage({
    config: cfg,
    scanner: pool,
    gateway: { name: config.gateway.name, hostname: config.gateway.hostname },
    metrics,
  });
  return { fn, hooks, checks: { clamd: () => pool.ping() }, close: async () => pool.close() };
};

/** `mailgate virus-scan`: the stage with a pool of clamds; ready when at least one clamd answers PING. */
export const service = defineStageService({
  stage: 'virus-scan',
  section: 'virusScan',
  schema: virusScanSchema,
  setup: setupVirusScan,
});
