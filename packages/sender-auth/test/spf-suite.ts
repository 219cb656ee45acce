// Runs the openspf.org RFC 7208 test suite (testdata/rfc7208-tests.yml, vendored from pyspf with its licence)
// through mailgate's SPF path: every scenario's zone data is served by the testkit DNS server on loopback, every
// case goes through SenderAuth.checkSpf. Used by `npm run spf-suite` (prints) and spf-suite.test.ts (a floor).
import { startDnsServer, type DnsRecord, type DnsRecordType } from '@mailgate/testkit';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { SenderAuth, senderAuthConfig } from '../src/index.js';

export const SUITE_FILE = new URL('../testdata/rfc7208-tests.yml', import.meta.url);

interface SuiteCase {
  helo: string;
  host: string;
  mailfrom: string;
  result: string | string[];
  description?: string;
  spec?: string;
}
interface Scenario {
  description: string;
  tests: Record<string, SuiteCase>;
  zonedata: Record<string, (string | Record<string, unknown>)[]>;
}

export interface SuiteOutcome {
  readonly scenario: string;
  readonly name: string;
  readonly spec?: string;
  readonly expected: readonly string[];
  readonly got: string;
  readonly ok: boolean;
}

const TYPES: DnsRecordType[] = ['A', 'AAAA', 'MX', 'TXT', 'PTR', 'CNAME'];

/** The zone data of a scenario as DNS records and per-type timeouts, as pyspf's test driver interprets it. */
export function zoneOf(s: Scenario): { records: DnsRecord[]; timeouts: [string, DnsRecordType][] } {
  const records: DnsRecord[] = [];
  const timeouts: [string, DnsRecordType][] = [];
  for (const [rawName, entries] of Object.entries(s.zonedata ?? {})) {
    const name = rawName.toLowerCase().replace(/\.$/, '');
    const seen = new Set<string>();
    const spf: string[][] = [];
    let hasTxt = false;
    for (const e of entries ?? []) {
      if (e === 'TIMEOUT') {
        // Types with no record before TIMEOUT time out (testspf.py DNSLookup).
        for (const t of TYPES) if (!seen.has(t)) timeouts.push([name, t]);
        break;
      }
      if (typeof e !== 'object' || e === null) continue;
      for (const [type, value] of Object.entries(e)) {
        // A TXT record with no character-string cannot be put on the wire (RFC 1035 §3.3.14 needs one or
        // more); the closest valid record is one empty string.
        const strings = (v: unknown): string[] => (Array.isArray(v) ? (v.length ? v.map(String) : ['']) : [String(v)]);
        switch (type) {
          case 'SPF':
            // RFC 7208 dropped the SPF RR type; the driver copies SPF data to TXT unless the name has TXT.
            seen.add('SPF');
            spf.push(strings(value));
            break;
          case 'TXT':
            hasTxt = true;
            // "TXT: NONE" = no TXT data (and no copy of the SPF data); it does not count as an answer before TIMEOUT.
            if (!(typeof value === 'string' && value === 'NONE')) {
              seen.add('TXT');
              records.push({ name, type: 'TXT', text: strings(value) });
            }
            break;
          case 'A':
          case 'AAAA':
            seen.add(type);
            records.push({ name, type, address: String(value) });
            break;
          case 'MX': {
            seen.add('MX');
            const [prio, host] = value as [number, string];
            records.push({
              name,
              type: 'MX',
              priority: Number(prio),
              exchange: String(host).replace(/\.$/, '') || '.',
            });
            break;
          }
          case 'PTR':
          case 'CNAME':
            seen.add(type);
            records.push({ name, type, target: String(value).replace(/\.$/, '') });
            break;
        }
      }
    }
    if (!hasTxt) for (const text of spf) records.push({ name, type: 'TXT', text });
  }
  return { records, timeouts };
}

/** Loads the suite: one entry per scenario (YAML document). */
export function loadSuite(file: URL = SUITE_FILE): Scenario[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Scenario | null)
    .filter((s): s is Scenario => !!s && !!s.tests);
}

/** Runs every case; DNS timeouts of the suite cost `timeoutMs` each. */
export async function runSpfSuite(opts: { timeoutMs?: number } = {}): Promise<SuiteOutcome[]> {
  const dns = await startDnsServer();
  const v = new SenderAuth(
    senderAuthConfig({
      dns: { resolvers: [dns.server], timeoutMs: opts.timeoutMs ?? 300, tries: 1, cache: { maxEntries: 0 } },
    }),
    { hostname: 'receiver.example.net' },
  );
  const out: SuiteOutcome[] = [];
  try {
    for (const s of loadSuite()) {
      const zone = zoneOf(s);
      const good: DnsRecord[] = [];
      for (const r of zone.records) {
        try {
          dns.setRecords([r]); // validates (e.g. labels over 63 octets cannot be encoded)
          good.push(r);
        } catch {
          /* a record our server cannot encode: left out, as a resolver would never see it */
        }
      }
      dns.setRecords(good);
      dns.clearFaults();
      for (const [name, type] of zone.timeouts) dns.setFault(name, 'timeout', type);
      for (const [name, c] of Object.entries(s.tests)) {
        const expected = (Array.isArray(c.result) ? c.result : [c.result]).map((x) => String(x).toLowerCase());
        let got: string;
        try {
          got = (
            await v.checkSpf({ ip: String(c.host), helo: String(c.helo ?? ''), mailFrom: String(c.mailfrom ?? '') })
          ).result;
        } catch (err) {
          got = `exception: ${(err as Error).message}`;
        }
        out.push({
          scenario: s.description,
          name,
          ...(c.spec ? { spec: String(c.spec) } : {}),
          expected,
          got,
          ok: expected.includes(got),
        });
      }
    }
  } finally {
    v.close();
    await dns.close();
  }
  return out;
}
