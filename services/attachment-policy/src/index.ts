export { service, setupAttachmentPolicy } from './service.js';
export { createPolicyStage, evaluateMessage, type PolicyResult, type PartReport, type InnerReport } from './stage.js';
export {
  attachmentPolicySchema,
  policyConfig,
  DEFAULT_RULES,
  ACTIONS,
  type Action,
  type AttachmentPolicyConfig,
  type Rule,
  type Match,
} from './config.js';
export { inspectArchive, type ArchiveReport, type ArchiveLimits, type InnerFile } from './archive.js';
export { detectTrueType, findMismatch, type TrueType } from './truetype.js';
