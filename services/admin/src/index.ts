export { service, createAdminService, type AdminServiceOptions } from './service.js';
export { adminSchema, type AdminConfig } from './config.js';
export { TrackingStore, type MessageSummary, type SearchQuery } from './tracking-store.js';
export { QuarantineStore, type QuarantineEntry } from './quarantine-store.js';
export { releaseFromQuarantine, deleteFromQuarantine, NotFoundError, ConflictError } from './release.js';
export { AuditLog, type AuditEntry } from './audit.js';
export type { DeferredQueue, DeferredItem } from './api.js';
export { PipelineStats, type StageStats } from './stats.js';
