import { defineStageService, type StageServiceDefinition } from '@mailgate/bus';
import { RspamdClient } from '@mailgate/rspamd';
import { spamCheckSchema } from './config.js';
import { createSpamMetrics } from './metrics.js';
import { createSpamCheckStage } from './stage.js';

type Definition = StageServiceDefinition<'spamCheck', typeof spamCheckSchema>;

/** Builds the rspamd client and the stage function (shared by `service` and tests that tune the runner). */
export const setupSpamCheck: Definition['setup'] = async ({ config, log, telemetry }) => {
  const cfg = config.spamCheck;
  const metrics = createSpamMetrics(telemetry.meter('mailgate.spam-check'));
  const client = new RspamdClient({
    worker: cfg.rspamd.worker,
    controller: cfg.rspamd.controller,
    ...(cfg.rspamd.password ? { password: cfg.rspamd.password } : {}),
    timeoutMs: cfg.rspamd.timeoutMs,
    connectTimeoutMs: cfg.rspamd.connectTimeoutMs,
    maxSockets: cfg.rspamd.maxSockets,
  });
  log.info(
    {
      rspamd: client.workerEndpoint,
      thresholds: cfg.thresholds,
      domains: Object.keys(cfg.domains),
      dryRun: cfg.dryRun,
    },
    'spam check configured',
  );
  if (cfg.failOpen) log.warn('spamCheck.failOpen is ON: when rspamd does not answer, mail is passed UNCHECKED');
  const { fn, hooks } = createSpamCheckStage({ config: cfg, scanner: client, metrics });
  return { fn, hooks, checks: { rspamd: () => client.ping() }, close: async () => client.close() };
};

/** `mailgate spam-check`: policy-checked → deliverable (or quarantine), by rspamd's score. */
export const service = defineStageService({
  stage: 'spam-check',
  section: 'spamCheck',
  schema: spamCheckSchema,
  setup: setupSpamCheck,
});
