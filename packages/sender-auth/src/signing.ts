import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sealMessage } from 'mailauth';
import { authservIdOf } from './auth-results.js';
import type { SigningConfig } from './config.js';
import { algorithmOf, bodyHash, dkimSignatureHeader, type Canonicalization } from './dkim-sign.js';
import { fromDomains, headerFields, unfold } from './header-bytes.js';
import { domainMatches } from './org-domain.js';

/**
 * Outbound DKIM signing and ARC sealing for delivery. Keys are read from files (a Kubernetes Secret mounted as a
 * volume) once, by `loadSigningKeys`; `signMessage` is then pure apart from the clock.
 */

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
  constructor(
    /** Config path of the offending key, e.g. senderAuth.signing.domains[0].keys[1].keyFile */
    readonly path: string,
    readonly file: string,
    message: string,
  ) {
    super(`${path} (${file}): ${message}`);
  }
}

export interface LoadedKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  readonly active: boolean;
  readonly key: KeyObject;
  /** RSA modulus bits (undefined for Ed25519). */
  readonly bits?: number;
  /** The TXT record to publish at `<selector>._domainkey.<domain>`. */
  readonly dnsRecord: string;
}

export interface SigningKeys {
  readonly config: SigningConfig;
  readonly keys: readonly LoadedKey[];
  readonly arcKey?: { readonly domain: string; readonly selector: string; readonly key: KeyObject };
  /** Non-fatal findings (e.g. an RSA key shorter than 2048 bits). */
  readonly warnings: readonly string[];
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Reads a private key: PEM (PKCS#8, PKCS#1) or a bare base64 32-byte Ed25519 seed (dkimpy, rspamd). */
export function parsePrivateKey(text: string | Buffer): KeyObject {
  const s = text.toString().trim();
  if (!s.includes('-----BEGIN')) {
    const raw = Buffer.from(s.replace(/\s+/g, ''), 'base64');
    if (raw.length === 32) {
      return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
    }
    throw new Error('not a PEM private key or a base64 Ed25519 seed');
  }
  return createPrivateKey(s);
}

/** The DKIM key record (RFC 6376 §3.6.1; Ed25519: the raw 32-byte key, RFC 8463 §4). */
export function dkimDnsRecord(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType === 'ed25519') {
    const der = pub.export({ type: 'spki', format: 'der' });
    return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${pub.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/**
 * Loads and checks every configured key. Throws SigningKeyError naming the config path and the file on an
 * unreadable or unusable key, or when two active keys of one domain share an algorithm.
 */
export function loadSigningKeys(
  config: SigningConfig,
  opts: { readFile?: (file: string) => Buffer; configPath?: string } = {},
): SigningKeys {
  const read = opts.readFile ?? ((f: string) => readFileSync(f));
  const base = opts.configPath ?? 'senderAuth.signing';
  const keys: LoadedKey[] = [];
  const warnings: string[] = [];
  const load = (path: string, file: string): KeyObject => {
    let text: Buffer;
    try {
      text = read(file);
    } catch (err) {
      throw new SigningKeyError(path, file, `cannot read key file: ${(err as Error).message}`);
    }
    try {
      return parsePrivateKey(text);
    } catch (err) {
      throw new SigningKeyError(path, file, `not a usable private key: ${(err as Error).message}`);
    }
  };
  config.domains.forEach((d, di) => {
    const activeAlgs = new Set<string>();
    d.keys.forEach((k, ki) => {
      const path = `${base}.domains[${di}].keys[${ki}].keyFile`;
      const key = load(path, k.keyFile);
      let algorithm: LoadedKey['algorithm'];
      try {
        algorithm = algorithmOf(key);
      } catch (err) {
        throw new SigningKeyError(path, k.keyFile, (err as Error).message);
      }
      const bits = key.asymmetricKeyDetails?.modulusLength;
      if (algorithm === 'rsa-sha256' && bits !== undefined) {
        if (bits < 1024)
          throw new SigningKeyError(
            path,
            k.keyFile,
            `RSA key has ${bits} bits; at least 1024 (RFC 8301), 2048 recommended`,
          );
        if (bits < 2048) warnings.push(`${path}: RSA key has ${bits} bits; 2048 is recommended`);
      }
      if (k.active) {
        if (activeAlgs.has(algorithm)) {
          throw new SigningKeyError(
            path,
            k.keyFile,
            `two active ${algorithm} keys for ${d.domain}: activate one, keep the other published for the rotation`,
          );
        }
        activeAlgs.add(algorithm);
      }
      keys.push({
        domain: d.domain,
        selector: k.selector,
        algorithm,
        active: k.active,
        key,
        ...(bits !== undefined ? { bits } : {}),
        dnsRecord: dkimDnsRecord(key),
      });
    });
  });
  let arcKey: SigningKeys['arcKey'];
  const a = config.arcSeal;
  if (a.enabled && a.domain && a.selector && a.keyFile) {
    const key = load(`${base}.arcSeal.keyFile`, a.keyFile);
    if (key.asymmetricKeyType !== 'rsa') {
      throw new SigningKeyError(`${base}.arcSeal.keyFile`, a.keyFile, 'ARC sealing needs an RSA key (rsa-sha256)');
    }
    arcKey = { domain: a.domain, selector: a.selector, key };
  }
  return { config, keys, ...(arcKey ? { arcKey } : {}), warnings };
}

export interface SignOptions {
  /** Signature time (tests); default now. */
  readonly time?: Date;
  /**
   * ARC-seal the message (it is being forwarded): needs `signing.arcSeal` and our own Authentication-Results in
   * the message (authserv-id `authservId`), which become the ARC-Authentication-Results.
   */
  readonly arcSeal?: { readonly authservId: string };
}

export interface SignResult {
  /** The message with the new header fields prepended (the input bytes follow unchanged). */
  readonly raw: Buffer;
  /** d=/s=/a= of each signature added. */
  readonly signatures: readonly { domain: string; selector: string; algorithm: string }[];
  /** ARC instance added, if sealed. */
  readonly arcInstance?: number;
  /** Why nothing (or not everything) was added. */
  readonly skipped?: string;
}

/** The configured signing domain for a From domain: exact, then parent domains that allow subdomains. */
function signingDomainFor(config: SigningConfig, from: string): string | undefined {
  const exact = config.domains.find((d) => d.domain === from);
  if (exact) return exact.domain;
  const parent = config.domains.filter((d) => d.subdomains && domainMatches(from, [d.domain]));
  parent.sort((a, b) => b.domain.length - a.domain.length);
  return parent[0]?.domain;
}

/**
 * Signs `raw` with every active key of the From domain's signing domain (one RSA and/or one Ed25519 signature;
 * RFC 8463 recommends both while Ed25519 support is not universal), and ARC-seals it first when asked. Call it
 * after the last header change: anything added later must not be a signed header field.
 */
export async function signMessage(raw: Buffer, keys: SigningKeys, opts: SignOptions = {}): Promise<SignResult> {
  const cfg = keys.config;
  const section = headerFields(raw);
  const froms = fromDomains(section);
  let domain: string | undefined;
  for (const f of froms) {
    domain = signingDomainFor(cfg, f);
    if (domain) break;
  }
  let skipped: string | undefined;
  if (!domain && cfg.fallbackDomain) domain = cfg.fallbackDomain;
  if (!domain) skipped = froms.length ? `no signing key for ${froms.join(', ')}` : 'no From address';

  const headers: string[] = [];
  const signatures: { domain: string; selector: string; algorithm: string }[] = [];
  if (domain) {
    const canon = cfg.canonicalization as Canonicalization;
    const bh = bodyHash(raw, canon.split('/')[1] as 'simple' | 'relaxed');
    for (const k of keys.keys.filter((x) => x.domain === domain && x.active)) {
      headers.push(
        dkimSignatureHeader(raw, {
          domain,
          selector: k.selector,
          key: k.key,
          canonicalization: canon,
          bodyHash: bh,
          headers: cfg.headers,
          oversign: cfg.oversign,
          ...(opts.time ? { time: opts.time } : {}),
          expireSec: cfg.expireSec,
        }),
      );
      signatures.push({ domain, selector: k.selector, algorithm: k.algorithm });
    }
  }
  let signed = headers.length ? Buffer.concat([Buffer.from(headers.join(''), 'latin1'), raw]) : raw;

  let arcInstance: number | undefined;
  if (opts.arcSeal) {
    const sealed = await arcSealMessage(signed, keys, opts.arcSeal.authservId, opts.time);
    if ('raw' in sealed) {
      signed = sealed.raw;
      arcInstance = sealed.instance;
    } else {
      skipped = skipped ? `${skipped}; ${sealed.skipped}` : sealed.skipped;
    }
  }
  return { raw: signed, signatures, ...(arcInstance ? { arcInstance } : {}), ...(skipped ? { skipped } : {}) };
}

/**
 * ARC-seals a message mailgate forwards without DKIM-signing it (delivery: inbound mail relayed to the next hop,
 * whose From domain is not ours to sign). Same rules as `signMessage`'s `arcSeal` option.
 */
export async function arcSeal(
  raw: Buffer,
  keys: SigningKeys,
  opts: { readonly authservId: string; readonly time?: Date },
): Promise<{ raw: Buffer; arcInstance?: number; skipped?: string }> {
  const sealed = await arcSealMessage(raw, keys, opts.authservId, opts.time);
  return 'raw' in sealed ? { raw: sealed.raw, arcInstance: sealed.instance } : { raw, skipped: sealed.skipped };
}

function wholeSecond(t: Date): Date {
  return new Date(Math.floor(t.getTime() / 1000) * 1000);
}

/**
 * Adds an ARC set (RFC 8617): AAR = our Authentication-Results (found by authserv-id), cv = its arc= result
 * (none when the message had no chain). Sealed on top of our DKIM signature so the AMS covers it.
 */
async function arcSealMessage(
  raw: Buffer,
  keys: SigningKeys,
  authservId: string,
  time?: Date,
): Promise<{ raw: Buffer; instance: number } | { skipped: string }> {
  if (!keys.arcKey) return { skipped: 'ARC sealing is not configured' };
  const section = headerFields(raw);
  const id = authservId.toLowerCase();
  const ours = section.fields.find((f) => f.key === 'authentication-results' && authservIdOf(f.rawValue) === id);
  if (!ours) return { skipped: `no Authentication-Results from ${authservId} to seal` };
  const value = unfold(ours.rawValue)
    .replace(/\r?\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  const arcWord = /(?:^|;)\s*arc=(pass|fail|none)\b/i.exec(value)?.[1]?.toLowerCase();
  const hasChain = section.fields.some((f) => f.key === 'arc-seal');
  if (hasChain && arcWord !== 'pass' && arcWord !== 'fail') {
    return { skipped: 'incoming ARC chain was not validated (no arc= result): not sealing' };
  }
  const cv = hasChain ? arcWord! : 'none';
  const instance =
    section.fields
      .filter((f) => f.key === 'arc-seal')
      .map((f) => Number(/(?:^|;)\s*i\s*=\s*(\d+)/.exec(unfold(f.rawValue))?.[1] ?? 0))
      .reduce((a, b) => Math.max(a, b), 0) + 1;
  if (instance > 50) return { skipped: 'ARC chain already has 50 sets' };
  const { domain, selector, key } = keys.arcKey;
  const headers = await sealMessage(raw, {
    signingDomain: domain,
    selector,
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }),
    algorithm: 'rsa-sha256',
    // One signTime for the whole set, always: without it mailauth reads the clock once for the AMS it hashes and
    // again for the AMS it writes, and a second boundary between the two gives a t= that was not signed (a seal
    // that fails everywhere, ~1 in 300 on an idle machine, more under load). Whole seconds, because mailauth
    // rounds the time for the AS but truncates it for the AMS: a signTime of x.5 s or later gave the two
    // headers of one set different t= values.
    ...({ authResults: value, cv, signTime: wholeSecond(time ?? new Date()) } as object),
  });
  if (headers.length === 0) return { skipped: 'ARC sealing produced no headers' };
  return { raw: Buffer.concat([headers, raw]), instance };
}
