export * from './sdk.js';
export * from './propagation.js';
