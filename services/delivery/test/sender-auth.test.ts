// Outbound DKIM signing and ARC sealing by the delivery stage, over a real SMTP sink, checked by independent
// implementations: dkimpy (python3-dkim) for DKIM and ARC, OpenDKIM's opendkim-testmsg for DKIM.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { SenderAuth, dkimDnsRecord, senderAuthConfig, type SenderAuthConfig } from '@mailgate/sender-auth';
import {
  dkimpyArcSign,
  dkimpyArcVerify,
  dkimpySign,
  dkimpyVerify,
  makeTempDir,
  opendkimVerify,
  removeTempDir,
  startDnsServer,
  startRedis,
  startSmtpSink,
  type DnsRecord,
  type DnsServerHandle,
  type RedisHandle,
  type Sink,
} from '@mailgate/testkit';
import type { DeliveryComponents } from '../src/components.js';
import { components, message, stageCtx } from './helpers.js';

let redis: RedisHandle;
let dns: DnsServerHandle;
let sink: Sink;
let dir: string;
const built: DeliveryComponents[] = [];
let n = 0;

const keys = {
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ed: generateKeyPairSync('ed25519').privateKey,
  arc: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  sender: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  list: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
};
const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const pkcs1 = (k: KeyObject) => k.export({ type: 'pkcs1', format: 'pem' }) as string;

const records = (): DnsRecord[] => [
  { name: 'rsa1._domainkey.corp.test', type: 'TXT', text: dkimDnsRecord(keys.rsa) },
  { name: 'ed1._domainkey.corp.test', type: 'TXT', text: dkimDnsRecord(keys.ed) },
  { name: 'arc1._domainkey.gw.test', type: 'TXT', text: dkimDnsRecord(keys.arc) },
  { name: 's1._domainkey.orig.test', type: 'TXT', text: dkimDnsRecord(keys.sender) },
  { name: 'l1._domainkey.lists.test', type: 'TXT', text: dkimDnsRecord(keys.list) },
  { name: 'orig.test', type: 'TXT', text: 'v=spf1 ip4:203.0.113.5 -all' },
  { name: '_dmarc.orig.test', type: 'TXT', text: 'v=DMARC1; p=reject' },
  { name: 'lists.test', type: 'TXT', text: 'v=spf1 ip4:198.51.100.7 -all' },
];

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The delivery stage with `senderAuth` as configured; every domain is routed to the sink. */
function delivery(senderAuth: SenderAuthConfig): DeliveryComponents {
  const c = components(
    redis.url,
    `dsa${++n}:`,
    {
      routes: [{ domains: ['.test'], hosts: [`127.0.0.1:${sink.port}`], tls: 'none' }],
      dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1 },
      timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
      limits: { connectionIdleMs: 100 },
    },
    { hostname: 'mx.gw.test', senderAuth },
  );
  built.push(c);
  return c;
}

const signing = (over: Record<string, unknown> = {}) => ({
  enabled: true,
  domains: [
    {
      domain: 'corp.test',
      keys: [
        { selector: 'rsa1', keyFile: file('rsa1.pem', pem(keys.rsa)) },
        { selector: 'ed1', keyFile: file('ed1.pem', pem(keys.ed)) },
      ],
    },
  ],
  ...over,
});
const arcSeal = () => ({
  enabled: true,
  domain: 'gw.test',
  selector: 'arc1',
  keyFile: file('arc1.pem', pem(keys.arc)),
});

function raw(from: string, to: string, extra = ''): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: quarterly numbers\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n` +
      `Message-ID: <${Math.random().toString(36).slice(2)}@test>\r\nMIME-Version: 1.0\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\n${extra}\r\nHello Bob,\r\n\r\nthe numbers  are\tattached.  \r\n.dot line\r\n`,
  );
}

/** What ingress does at end of DATA: verify, then prepend our Authentication-Results (authserv-id mx.gw.test). */
async function ingressVerified(msg: Buffer, ip: string, mailFrom: string): Promise<Buffer> {
  const auth = new SenderAuth(
    senderAuthConfig({
      dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1, cache: { maxEntries: 0 } },
      // The list changed the Subject (DKIM of orig.test breaks, DMARC fails); its ARC seal vouches for it.
      arc: { trustedSealers: ['lists.test'] },
    }),
    { hostname: 'mx.gw.test' },
  );
  try {
    const spf = await auth.checkSpf({ ip, helo: 'mail.sender.test', mailFrom });
    const r = await auth.atEndOfData({ raw: msg, ip, helo: 'mail.sender.test', mailFrom, spf });
    assert.equal(r.decision.action, 'accept', r.decision.reason);
    return r.raw;
  } finally {
    auth.close();
  }
}

before(async () => {
  dir = makeTempDir('delivery-sa');
  redis = await startRedis();
  dns = await startDnsServer({ records: records() });
  sink = await startSmtpSink();
});

after(async () => {
  for (const c of built) await c.close();
  await sink?.close();
  await dns?.close();
  await redis?.stop();
  await removeTempDir(dir);
});

beforeEach(() => sink.clear());

test('outbound mail leaves DKIM-signed (rsa-sha256 + ed25519); dkimpy and opendkim-testmsg verify the bytes the next hop received', async () => {
  const c = delivery(senderAuthConfig({ signing: signing() }));
  const body = raw('Alice <alice@corp.test>', 'bob@dest.test');
  const msg = message({ from: 'alice@corp.test', to: ['bob@dest.test'], raw: body });
  const out = await c.stage({ ...msg, envelope: { ...msg.envelope, direction: 'outbound' } }, stageCtx());
  assert.equal(out.verdict.kind, 'pass');
  assert.deepEqual(out.details!['dkim'], ['corp.test/rsa1/rsa-sha256', 'corp.test/ed1/ed25519-sha256']);
  const [got] = await sink.waitFor(1);
  const data = got!.data;
  assert.ok(data.subarray(data.length - body.length).equals(body), 'the original bytes follow the signatures');
  const verdicts = await dkimpyVerify(data, dns);
  assert.equal(verdicts.length, 2);
  for (const v of verdicts) assert.equal(v.ok, true, JSON.stringify(v));
  assert.deepEqual(verdicts.map((v) => v.selector).sort(), ['ed1', 'rsa1']);
  // libopendkim 2.11 knows rsa-sha256 only: verify the RSA signature alone with it.
  const rsaOnly = Buffer.from(
    data.toString('latin1').replace(/^DKIM-Signature:[^\r\n]*a=ed25519-sha256[^]*?\r\n(?=[^ \t])/m, ''),
    'latin1',
  );
  const od = await opendkimVerify(rsaOnly, records());
  assert.equal(od.ok, true, od.output);

  // Changed in transit after signing → dkimpy says no (the signatures really cover the body).
  const tampered = Buffer.from(data.toString('latin1').replace('numbers', 'Numbers'), 'latin1');
  for (const v of await dkimpyVerify(tampered, dns)) assert.equal(v.ok, false);

  // Inbound mail is never DKIM-signed, even with a From in a signing domain.
  sink.clear();
  const inbound = message({ from: 'alice@corp.test', to: ['bob@dest.test'], raw: body });
  const out2 = await c.stage(inbound, stageCtx());
  assert.equal(out2.details!['dkim'], undefined);
  const [plain] = await sink.waitFor(1);
  assert.ok(plain!.data.equals(body));
});

test('ARC sealing of forwarded inbound mail: the chain the next hop receives is validated by dkimpy arc_verify', async () => {
  // Sealing only (no outbound DKIM signing configured).
  const c = delivery(senderAuthConfig({ signing: { enabled: false, arcSeal: arcSeal() } }));

  // 1. A new chain: a dkimpy-signed message from orig.test, verified by ingress (our A-R), sealed by delivery.
  const signed = await dkimpySign(raw('A <a@orig.test>', 'bob@corp.test'), {
    domain: 'orig.test',
    selector: 's1',
    key: pkcs1(keys.sender),
  });
  const inbound = await ingressVerified(signed, '203.0.113.5', 'a@orig.test');
  assert.match(inbound.toString('latin1'), /^Authentication-Results: mx\.gw\.test;[^]*dmarc=pass/);
  const out = await c.stage(message({ from: 'a@orig.test', to: ['bob@corp.test'], raw: inbound }), stageCtx());
  assert.equal(out.verdict.kind, 'pass');
  assert.equal(out.details!['arc'], 1);
  assert.equal(out.details!['dkim'], undefined, 'inbound mail is sealed, not DKIM-signed');
  const [got] = await sink.waitFor(1);
  const text = got!.data.toString('latin1');
  assert.match(text, /^ARC-Seal: i=1; a=rsa-sha256;[^]*cv=none/);
  assert.match(text, /ARC-Authentication-Results: i=1; mx\.gw\.test;[^]*dmarc=pass/);
  assert.deepEqual(await dkimpyArcVerify(got!.data, dns), { cv: 'pass', comment: 'success' });
  // The original DKIM signature still verifies too (sealing only prepends).
  assert.equal(
    (await dkimpyVerify(got!.data, dns)).every((v) => v.ok),
    true,
  );

  // 2. A continued chain: a mailing list (dkimpy) sealed i=1; we verify (arc=pass) and seal i=2.
  sink.clear();
  const listed = await dkimpyArcSign(
    Buffer.concat([
      Buffer.from(
        'Authentication-Results: lists.test; dkim=pass header.d=orig.test; dmarc=pass header.from=orig.test\r\n',
      ),
      Buffer.from(signed.toString('latin1').replace('quarterly numbers', '[team] quarterly numbers'), 'latin1'),
    ]),
    { domain: 'lists.test', selector: 'l1', key: pkcs1(keys.list), srvId: 'lists.test' },
  );
  const fromList = await ingressVerified(listed, '198.51.100.7', 'team-bounces@lists.test');
  assert.match(fromList.toString('latin1'), /^Authentication-Results: mx\.gw\.test;[^]*dmarc=fail[^]*arc=pass/);
  const out2 = await c.stage(
    message({ from: 'team-bounces@lists.test', to: ['bob@corp.test'], raw: fromList }),
    stageCtx(),
  );
  assert.equal(out2.details!['arc'], 2);
  const [got2] = await sink.waitFor(1);
  assert.match(got2!.data.toString('latin1'), /^ARC-Seal: i=2; a=rsa-sha256;[^]*cv=pass/);
  assert.deepEqual(await dkimpyArcVerify(got2!.data, dns), { cv: 'pass', comment: 'success' });
  // Modified after our seal → the chain fails for the next hop.
  const broken = Buffer.from(got2!.data.toString('latin1').replace('Hello Bob', 'Hello Eve'), 'latin1');
  assert.equal((await dkimpyArcVerify(broken, dns)).cv, 'fail');

  // 3. Inbound mail ingress did not check (no A-R of ours): delivered unchanged, not sealed.
  sink.clear();
  const bare = raw('A <a@orig.test>', 'bob@corp.test');
  const out3 = await c.stage(message({ from: 'a@orig.test', to: ['bob@corp.test'], raw: bare }), stageCtx());
  assert.equal(out3.details!['arc'], undefined);
  assert.ok((await sink.waitFor(1))[0]!.data.equals(bare));

  // 4. Outbound mail is not sealed (it is ours, not forwarded).
  sink.clear();
  const ob = message({ from: 'alice@corp.test', to: ['x@dest.test'], raw: inbound });
  const out4 = await c.stage({ ...ob, envelope: { ...ob.envelope, direction: 'outbound' } }, stageCtx());
  assert.equal(out4.details!['arc'], undefined);
  assert.ok((await sink.waitFor(1))[0]!.data.equals(inbound));
});

test('signing and sealing together: outbound signed, inbound sealed, by one stage', async () => {
  const c = delivery(senderAuthConfig({ signing: signing({ arcSeal: arcSeal() }) }));
  const signed = await dkimpySign(raw('A <a@orig.test>', 'bob@corp.test'), {
    domain: 'orig.test',
    selector: 's1',
    key: pkcs1(keys.sender),
  });
  const inbound = await ingressVerified(signed, '203.0.113.5', 'a@orig.test');
  const out = await c.stage(message({ from: 'a@orig.test', to: ['bob@corp.test'], raw: inbound }), stageCtx());
  assert.equal(out.details!['arc'], 1);
  assert.deepEqual(await dkimpyArcVerify((await sink.waitFor(1))[0]!.data, dns), { cv: 'pass', comment: 'success' });
});
