export * from './backoff.js';
export * from './crc32c.js';
export * from './kafka.js';
export * from './producer.js';
export * from './runner.js';
export * from './stage.js';
export * from './stage-service.js';
export * from './topics.js';
