import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The gateway's release version for the `service.version` resource attribute: the `version` of the root
 * package.json (`"name": "mailgate"`), found by walking up from this module — the same from source
 * (packages/telemetry/src) and from the image (/app/packages/telemetry/dist, root package.json kept). A trace must
 * say which release produced it; a hard-coded string would say the same thing for every release.
 */
export function gatewayVersion(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'mailgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

let cached: string | undefined;

/** gatewayVersion() of this installation, read once. */
export function serviceVersion(): string {
  return (cached ??= gatewayVersion());
}
