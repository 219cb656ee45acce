// Moved to @mailgate/runtime (shared with the admin service's trusted proxies).
export { isCidr, networkMatcher, normalizeIp, parseCidr, type NetworkMatcher } from '@mailgate/runtime';
