// @mailgate/dnsbl — DNS block list lookups shared by ingress-smtp (connect filter) and the dnsbl-check stage.
export * from './config.js';
export * from './codes.js';
export * from './ip.js';
export * from './names.js';
export { DnsClient, LazyResolver, type RawAnswer, type DnsClientOptions } from './resolver.js';
export { RedisAnswerCache, MemoryAnswerCache, type AnswerCache, type CachedAnswer } from './cache.js';
export { ZoneHealth, type ZoneHealthState } from './health.js';
export * from './checker.js';
export * from './connect.js';
