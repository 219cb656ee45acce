import { existsSync } from 'node:fs';
import type { Logger } from '@mailgate/runtime';
import { tcpOpen } from './tcp-open.js';

/**
 * `mailgate dev`'s directory (dev.ldap): the LDAP sources of ingress.recipients point at a seeded Debian slapd
 * (the devstack slapd harness, AD-like proxyAddresses schema) when the configured directory does not answer, so a fresh
 * machine shows recipient validation working: the dev users below are accepted, anyone else gets 550 5.1.1.
 * Without slapd the same users become a static source of the same name (a warning says so): mail still flows,
 * but no LDAP is involved.
 */

/** Mailboxes of every domain checked against a dev directory source; `aliases` are proxyAddresses (smtp:). */
export const DEV_DIRECTORY_USERS: readonly { uid: string; aliases: readonly string[] }[] = [
  { uid: 'user', aliases: [] },
  { uid: 'alice', aliases: ['a.smith'] },
  { uid: 'bob', aliases: [] },
  { uid: 'postmaster', aliases: ['abuse'] },
];

export type SpawnMode = 'auto' | 'always' | 'never';

interface LdapSourceShape {
  type?: string;
  url?: string;
  baseDn?: string;
  bindPassword?: string;
}

interface RecipientsShape {
  sources?: Record<string, LdapSourceShape>;
  domains?: { domain?: string; sources?: string[] }[];
}

/** The first URL of an ldap(s):// list as host and port. */
function firstUrl(url: string | undefined): { host: string; port: number; ldaps: boolean } | null {
  try {
    const u = new URL((url ?? '').split(',')[0]!.trim());
    const ldaps = u.protocol === 'ldaps:';
    return { host: u.hostname, port: Number(u.port || (ldaps ? 636 : 389)), ldaps };
  } catch {
    return null;
  }
}

/** Whether the first URL of an ldap(s):// list accepts TCP connections. */
async function answers(url: string | undefined): Promise<boolean> {
  const u = firstUrl(url);
  return u ? tcpOpen(u.host, u.port) : false;
}

/** The env segment that addresses a source name (config keys match ignoring case, `_` and `-`). */
const envName = (source: string) =>
  `MAILGATE__INGRESS__RECIPIENTS__SOURCES__${source.toUpperCase().replace(/-/g, '_')}`;

/** dc=… components of a base DN: the suffix the seeded directory is created with. */
function suffixOf(baseDn: string | undefined): string {
  const dcs = (baseDn ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => /^dc=/i.test(p));
  return dcs.length > 0 ? dcs.join(',') : 'dc=example,dc=test';
}

/**
 * Start the dev directory if ingress.recipients has LDAP sources that need it, and point them at it through
 * `childEnv` (url, bindDn, bindPassword; StartTLS off: the dev slapd speaks plain LDAP on loopback).
 * Returns the cleanup (stop slapd), or null when nothing was started.
 */
export async function startDevDirectory(opts: {
  spawn: SpawnMode;
  /** The `ingress` section as loaded (file + environment), not yet validated by this process. */
  ingress: unknown;
  childEnv: NodeJS.ProcessEnv;
  log: Logger;
  /** Default: Debian's /usr/sbin/slapd (tests name a missing one to see the fallback). */
  slapdBinary?: string;
}): Promise<(() => Promise<void>) | null> {
  const recipients = (opts.ingress as { recipients?: RecipientsShape } | undefined)?.recipients;
  const ldapSources = Object.entries(recipients?.sources ?? {}).filter(([, s]) => s?.type === 'ldap');
  if (ldapSources.length === 0 || opts.spawn === 'never') return null;
  const needed: [string, LdapSourceShape][] = [];
  for (const [name, s] of ldapSources) {
    if (opts.spawn === 'always' || !(await answers(s.url))) needed.push([name, s]);
  }
  if (needed.length === 0) return null;

  // Users in every (non-wildcard) domain checked against one of these sources.
  const names = new Set(needed.map(([n]) => n));
  const domains = [
    ...new Set(
      (recipients?.domains ?? [])
        .filter((d) => d.domain && !d.domain.startsWith('*.') && d.sources?.some((s) => names.has(s)))
        .map((d) => d.domain!.toLowerCase()),
    ),
  ];
  const addresses = domains.flatMap((d) =>
    DEV_DIRECTORY_USERS.flatMap((u) => [u.uid, ...u.aliases].map((l) => `${l}@${d}`)),
  );

  const staticFallback = (why: string, err?: string): null => {
    for (const [name] of needed) {
      // The whole source is replaced: LDAP keys set in the environment (…__URL) would be unknown to a static one.
      for (const k of Object.keys(opts.childEnv)) if (k.startsWith(`${envName(name)}__`)) delete opts.childEnv[k];
      opts.childEnv[envName(name)] = `{type: static, addresses: [${addresses.map((a) => `'${a}'`).join(', ')}]}`;
    }
    opts.log.warn(
      { sources: [...names], addresses, ...(err ? { err } : {}) },
      `${why}: recipient validation uses a static list of the dev users instead of LDAP`,
    );
    return null;
  };

  const devstack = await import('@mailgate/devstack');
  const binary = opts.slapdBinary ?? devstack.SLAPD_BINARY;
  if (!existsSync(binary)) return staticFallback(`${binary} not found (install slapd)`);

  const firstSource = needed[0]![1];
  // On the configured loopback port when it is free (auto, nothing answered there), so the configured url is true
  // for every process reading the same file (a second ingress replica, `mailgate lists`); else any free port.
  const wanted = firstUrl(firstSource.url);
  const samePort =
    opts.spawn === 'auto' && wanted && !wanted.ldaps && ['127.0.0.1', 'localhost'].includes(wanted.host)
      ? wanted.port
      : undefined;
  let slapd: Awaited<ReturnType<typeof devstack.startSlapd>>;
  try {
    slapd = await devstack.startSlapd({
      ...(samePort ? { port: samePort } : {}),
      suffix: suffixOf(firstSource.baseDn),
      ...(firstSource.bindPassword ? { servicePassword: firstSource.bindPassword } : {}),
      users: DEV_DIRECTORY_USERS.map((u) => {
        const [primary, ...others] = domains;
        return {
          uid: u.uid,
          ...(primary ? { mail: `${u.uid}@${primary}` } : {}),
          proxyAddresses: [
            ...others.map((d) => `smtp:${u.uid}@${d}`),
            ...u.aliases.flatMap((a) => domains.map((d) => `smtp:${a}@${d}`)),
          ],
        };
      }),
    });
  } catch (e) {
    return staticFallback('could not start slapd', (e as Error).message.split('\n')[0]);
  }
  for (const [name, source] of needed) {
    opts.childEnv[`${envName(name)}__URL`] = slapd.url;
    opts.childEnv[`${envName(name)}__BIND_DN`] = slapd.bindDn;
    opts.childEnv[`${envName(name)}__BIND_PASSWORD`] = slapd.bindPassword;
    opts.childEnv[`${envName(name)}__START_TLS`] = 'false';
    // The seeded entries live under ou=people,<suffix>: a base DN elsewhere in the tree would find none of them.
    const base = (source.baseDn ?? '').toLowerCase().replace(/\s+/g, '');
    if (base !== slapd.suffix.toLowerCase() && base !== `ou=people,${slapd.suffix}`.toLowerCase()) {
      opts.childEnv[`${envName(name)}__BASE_DN`] = slapd.suffix;
    }
  }
  opts.log.info(
    { url: slapd.url, suffix: slapd.suffix, sources: [...names], users: addresses },
    'seeded slapd started (dev directory): these recipients are accepted, others get 550 5.1.1',
  );
  return () => slapd.stop();
}
