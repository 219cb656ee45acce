import { defineStageService, type StageServiceDefinition } from '@mailgate/bus';
import { attachmentPolicySchema } from './config.js';
import { createPolicyStage } from './stage.js';

type Definition = StageServiceDefinition<'attachmentPolicy', typeof attachmentPolicySchema>;

/** Builds the stage function from the `attachmentPolicy` section (no external dependencies to watch). */
export const setupAttachmentPolicy: Definition['setup'] = async ({ config, log }) => {
  const cfg = config.attachmentPolicy;
  const dry = cfg.rules.filter((r) => r.dryRun).map((r) => r.name);
  log.info(
    { mode: cfg.mode, rules: cfg.rules.length, dryRunRules: dry, unlisted: cfg.unlisted.action },
    'attachment policy loaded',
  );
  if (cfg.malformed.outcome === 'pass') {
    log.warn('attachmentPolicy.malformed.outcome is pass: messages the MIME walk cannot read pass UNCHECKED');
  }
  return { fn: createPolicyStage(cfg) };
};

/** `mailgate attachment-policy`: scanned → deliverable (or quarantine), per the attachment policy. */
export const service = defineStageService({
  stage: 'attachment-policy',
  section: 'attachmentPolicy',
  schema: attachmentPolicySchema,
  setup: setupAttachmentPolicy,
});
