export * from './topics.js';
export * from './verdict.js';
export * from './envelope.js';
export * from './codec.js';
export * from './headers.js';
export * from './events.js';
export * from './ids.js';
export * from './build.js';
