// ApiVersions (18): the version ranges of every API this broker serves (src/apis/index.ts).
// A request for a version above ours is answered by the connection in the v0 layout with UNSUPPORTED_VERSION and
// the same list (KIP-511), so clients retry with the highest version we advertise.
import { defineApi, type Api } from './types.js';

export function apiVersionsBody(apis: Iterable<Api>, errorCode: number): object {
  const apiKeys = [...apis]
    .map((a) => ({ apiKey: a.key, minVersion: a.min, maxVersion: a.max }))
    .sort((a, b) => a.apiKey - b.apiKey);
  return { errorCode, apiKeys, throttleTimeMs: 0 };
}

export const apiVersions = defineApi<{ clientSoftwareName: string; clientSoftwareVersion: string }>({
  name: 'ApiVersions',
  versions: [0, 3],
  handle: (_req, { broker }) => apiVersionsBody(broker.apis.values(), 0),
});
