export { service, setupVirusScan } from './service.js';
export { createVirusScanStage, type VirusScanStageOptions, type ScanOutcome } from './stage.js';
export { virusScanSchema, type VirusScanConfig, type VirusScanInput } from './config.js';
export { createScanMetrics, noMetrics, signatureFamily, type ScanMetrics } from './metrics.js';
export { prependHeader } from '@mailgate/mail';
export { stripHeader } from './stage.js';
export { decodedAttachments, type DecodedAttachment } from './attachments.js';
export { ClamdPool, type ClamdPoolOptions, type ScanResult, type Scanner, type WaitBudget } from './clamd/pool.js';
export { clamdRequest, endpointName, type ClamdEndpoint, type RequestOptions } from './clamd/endpoint.js';
export { ClamdError, ClamdUnavailableError, type ClamdFailureKind } from './clamd/errors.js';
export {
  instreamFrames,
  parseInstreamReply,
  parseVersion,
  parseClamdSize,
  type InstreamReply,
  type ClamdVersion,
} from './clamd/protocol.js';
