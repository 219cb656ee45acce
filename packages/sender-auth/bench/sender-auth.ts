// Sender-authentication latency per check against a loopback DNS server: cold (no in-process cache: every
// check asks DNS) and cached (warm in-process cache), plus CPU per message and outbound signing cost.
// npm run bench:sender-auth [-- --n 2000] [--only <label substring>]
// The unsigned 10 KiB rows are ingress's common case in the e2e benchmark: no DKIM signature, and a sender domain
// that publishes no SPF or DMARC record (answered from cached negative answers when cached).
// Loopback DNS answers in ~0.1 ms; on the Internet add your resolver's latency for each cold lookup (SPF with an
// include: 2–3 sequential lookups; DKIM: 1 per signature; DMARC: 1, 2 for subdomains without a record).
import { startDnsServer } from '@mailgate/testkit';
import { generateKeyPairSync } from 'node:crypto';
import {
  dkimDnsRecord,
  loadSigningKeys,
  SenderAuth,
  senderAuthConfig,
  signMessage,
  type SigningKeys,
} from '../src/index.js';

const argN = process.argv.indexOf('--n');
const N = argN > 0 ? Number(process.argv[argN + 1]) : 1000;
const argOnly = process.argv.indexOf('--only');
const ONLY = argOnly > 0 ? process.argv[argOnly + 1] : undefined;
const IP = '192.0.2.25';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const dns = await startDnsServer({
  records: [
    { name: 'example.test', type: 'TXT', text: 'v=spf1 include:_spf.provider.test ip4:203.0.113.0/24 -all' },
    { name: '_spf.provider.test', type: 'TXT', text: 'v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.0/24 ~all' },
    { name: '_dmarc.example.test', type: 'TXT', text: 'v=DMARC1; p=reject; rua=mailto:d@example.test' },
    { name: 'r1._domainkey.example.test', type: 'TXT', text: dkimDnsRecord(rsa) },
    { name: 'e1._domainkey.example.test', type: 'TXT', text: dkimDnsRecord(ed) },
  ],
});

function keys(selectors: ('r1' | 'e1')[], arcSeal = false, domain = 'example.test'): SigningKeys {
  const files: Record<string, string> = {
    r1: rsa.export({ type: 'pkcs8', format: 'pem' }) as string,
    e1: ed.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
  return loadSigningKeys(
    senderAuthConfig({
      signing: {
        enabled: true,
        domains: [{ domain, keys: selectors.map((s) => ({ selector: s, keyFile: s })) }],
        ...(arcSeal ? { arcSeal: { enabled: true, domain: 'example.test', selector: 'r1', keyFile: 'r1' } } : {}),
      },
    }).signing,
    { readFile: (f) => Buffer.from(files[f]!) },
  );
}

const body = Array.from(
  { length: 60 },
  (_, i) => `Line ${i} of a typical business message, nothing special here.`,
).join('\r\n');
const plain = Buffer.from(
  'From: Alice <alice@example.test>\r\nTo: bob@dest.test\r\nSubject: bench\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n' +
    `Message-ID: <bench@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${body}\r\n`,
);
const signedRsa = (await signMessage(plain, keys(['r1']))).raw;
const signedBoth = (await signMessage(plain, keys(['r1', 'e1']))).raw;
// Forwarded once: a forwarder recorded its results and sealed (i=1), as a mailing list would.
const forwarded = (
  await signMessage(
    Buffer.concat([
      Buffer.from(
        'Authentication-Results: fwd.bench; dkim=pass header.d=example.test; dmarc=pass header.from=example.test\r\n',
      ),
      signedRsa,
    ]),
    keys(['r1'], true, 'unrelated.test'), // ARC seal only: the From domain has no DKIM key here
    { arcSeal: { authservId: 'fwd.bench' } },
  )
).raw;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (ms: number) => `${ms.toFixed(2).padStart(7)} ms`;

interface Row {
  spf: number[];
  dkim: number[];
  arc: number[];
  dmarc: number[];
  total: number[];
  cpuUs: number;
}

/** A 10 KiB unsigned message from a domain without SPF or DMARC records. */
const unsigned10k = Buffer.from(
  'From: Load <load@norecords.test>\r\nTo: inbox@dest.test\r\nSubject: bench\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n' +
    `Message-ID: <bench10k@norecords.test>\r\n\r\n${'x'.repeat(78)}\r\n`.padEnd(10 * 1024, `${'y'.repeat(78)}\r\n`),
);

async function run(
  label: string,
  raw: Buffer,
  cached: boolean,
  o: { mailFrom?: string; dmarc?: string } = {},
): Promise<void> {
  if (ONLY && !label.includes(ONLY)) return;
  const mailFrom = o.mailFrom ?? 'alice@example.test';
  const v = new SenderAuth(
    senderAuthConfig({
      authservId: 'mx.bench.test',
      dns: { resolvers: [dns.server], timeoutMs: 1000, tries: 1, cache: { maxEntries: cached ? 10000 : 0 } },
    }),
    { hostname: 'mx.bench.test' },
  );
  const row: Row = { spf: [], dkim: [], arc: [], dmarc: [], total: [], cpuUs: 0 };
  const once = async () => {
    const t0 = performance.now();
    const spf = await v.checkSpf({ ip: IP, helo: 'mail.example.test', mailFrom });
    const r = await v.verifyMessage({ raw, ip: IP, helo: 'mail.example.test', mailFrom, spf });
    const d = v.decide(r, { phase: 'data', clientIp: IP });
    v.headers(r, d);
    return { t: performance.now() - t0, r };
  };
  for (let i = 0; i < Math.min(200, N / 5); i++) await once(); // warm-up (JIT; the cache when cached)
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const { t, r } = await once();
    row.total.push(t);
    row.spf.push(r.spf!.durationMs);
    row.dkim.push(r.dkim!.durationMs);
    row.arc.push(r.arc!.durationMs);
    row.dmarc.push(r.dmarc!.durationMs);
    if (r.dmarc!.result !== (o.dmarc ?? 'pass')) throw new Error(`unexpected DMARC result: ${JSON.stringify(r)}`);
  }
  const cpu = process.cpuUsage(cpu0);
  row.cpuUs = (cpu.user + cpu.system) / N;
  v.close();
  console.log(`\n${label} — ${cached ? 'cached (warm in-process cache)' : 'cold (every lookup to DNS)'}, n=${N}`);
  console.log(`  check        p50         p99`);
  for (const k of ['spf', 'dkim', 'arc', 'dmarc', 'total'] as const) {
    console.log(`  ${k.padEnd(8)} ${fmt(pct(row[k], 50))} ${fmt(pct(row[k], 99))}`);
  }
  console.log(`  CPU per message: ${(row.cpuUs / 1000).toFixed(2)} ms (this process: verifier + loopback DNS server)`);
}

console.log(`sender-auth bench: ${plain.length}-byte message, SPF with one include, DMARC p=reject, loopback DNS`);
await run('1 DKIM signature (rsa-sha256 2048)', signedRsa, false);
await run('1 DKIM signature (rsa-sha256 2048)', signedRsa, true);
await run('2 DKIM signatures (rsa-sha256 + ed25519-sha256)', signedBoth, true);
await run('1 DKIM signature + an ARC set (i=1)', forwarded, false);
await run('1 DKIM signature + an ARC set (i=1)', forwarded, true);
const noRecords = { mailFrom: 'load@norecords.test', dmarc: 'none' };
await run('unsigned 10 KiB, no SPF/DMARC records', unsigned10k, false, noRecords);
await run('unsigned 10 KiB, no SPF/DMARC records', unsigned10k, true, noRecords);

// Outbound signing.
for (const [label, k] of ONLY
  ? []
  : ([
      ['rsa-sha256 2048', keys(['r1'])],
      ['ed25519-sha256', keys(['e1'])],
      ['rsa + ed25519', keys(['r1', 'e1'])],
    ] as const)) {
  const ts: number[] = [];
  for (let i = 0; i < Math.min(N, 500); i++) {
    const t0 = performance.now();
    await signMessage(plain, k);
    ts.push(performance.now() - t0);
  }
  console.log(`sign ${label.padEnd(16)} p50 ${fmt(pct(ts, 50))}  p99 ${fmt(pct(ts, 99))}`);
}
await dns.close();
