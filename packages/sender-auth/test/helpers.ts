// Shared fixtures for the sender-auth tests: keys, DNS records, messages, a verifier on a loopback DNS server.
import type { DnsRecord, DnsServerHandle } from '@mailgate/testkit';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimDnsRecord, SenderAuth, senderAuthConfig, type SenderAuthConfig } from '../src/index.js';

export interface TestKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM (what a Kubernetes Secret would hold). */
  readonly pem: string;
  /** What dkimpy takes: PEM for RSA, the base64 seed for Ed25519. */
  readonly dkimpy: string;
  /** `v=DKIM1; k=…; p=…` */
  readonly record: string;
}

function toTestKey(privateKey: KeyObject): TestKey {
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const dkimpy =
    privateKey.asymmetricKeyType === 'ed25519'
      ? privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(16).toString('base64')
      : (privateKey.export({ type: 'pkcs1', format: 'pem' }) as string);
  return { privateKey, pem, dkimpy, record: dkimDnsRecord(privateKey) };
}

const cache = new Map<string, TestKey>();
/** One key per name per process (RSA generation is the slow part of these tests). */
export function testKey(name: string, type: 'rsa' | 'ed25519' = 'rsa', bits = 2048): TestKey {
  const k = `${name}/${type}/${bits}`;
  let key = cache.get(k);
  if (!key) {
    const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: bits }) : generateKeyPairSync('ed25519');
    key = toTestKey(pair.privateKey);
    cache.set(k, key);
  }
  return key;
}

export const txt = (name: string, text: string | string[]): DnsRecord => ({ name, type: 'TXT', text });
export const keyRecord = (selector: string, domain: string, key: TestKey): DnsRecord =>
  txt(`${selector}._domainkey.${domain}`, key.record);

/** An RFC 5322 message with CRLF line ends (From and Date present: libopendkim refuses messages without Date). */
export function message(
  o: {
    from?: string;
    to?: string;
    subject?: string;
    body?: string;
    extraHeaders?: string[];
  } = {},
): Buffer {
  const lines = [
    `From: ${o.from ?? 'Alice <alice@example.test>'}`,
    `To: ${o.to ?? 'bob@dest.test'}`,
    `Subject: ${o.subject ?? 'quarterly numbers'}`,
    'Date: Sat, 05 Dec 2026 10:00:00 +0000',
    `Message-ID: <${Math.random().toString(36).slice(2)}@example.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...(o.extraHeaders ?? []),
  ];
  const body = o.body ?? 'Hello Bob,\r\n\r\nthe numbers  are\tattached.  \r\n\r\nAlice\r\n';
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** A verifier whose DNS questions go to `dns` (no retries, short timeouts, no cache unless asked). */
export function verifierFor(
  dns: DnsServerHandle,
  overrides: Record<string, unknown> = {},
  opts: { cache?: boolean; timeoutMs?: number } = {},
): SenderAuth {
  const base = {
    authservId: 'mx.gateway.test',
    dns: {
      resolvers: [dns.server],
      timeoutMs: opts.timeoutMs ?? 400,
      tries: 1,
      cache: { maxEntries: opts.cache ? 1000 : 0 },
    },
  };
  const cfg: SenderAuthConfig = senderAuthConfig(deepMerge(base, overrides));
  return new SenderAuth(cfg, { hostname: 'mx.gateway.test' });
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
