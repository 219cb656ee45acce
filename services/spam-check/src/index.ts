export { service, setupSpamCheck } from './service.js';
export {
  createSpamCheckStage,
  sclOf,
  actionOf,
  SPAM_HEADERS,
  type SpamScanner,
  type SpamAction,
  type SpamCheckStageOptions,
} from './stage.js';
export { spamCheckSchema, type SpamCheckConfig, type SpamCheckInput, type Thresholds } from './config.js';
export { stripHeaders, prependHeaders, prefixSubject } from './headers.js';
export { createSpamMetrics, noMetrics, type SpamMetrics } from './metrics.js';
