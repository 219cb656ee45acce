export * from './sdk.js';
export * from './propagation.js';
export * from './instrumentations.js';
export { mailgateSampler } from './sampler.js';
export { runInSpan } from './spans.js';
export { scrapeGauges } from './scrape-gauges.js';
export { gatewayVersion, serviceVersion } from './version.js';
