// Sender authentication inside the SMTP transaction: the real ingress service (kafka-lite, Redis) with its
// senderAuth DNS questions answered by rbldnsd on loopback (SPF, DMARC and DKIM key TXT records), messages signed
// by dkimpy (an independent DKIM implementation).
//   127.0.0.1  an Internet client: permitted by good.test's SPF, not by bank.test's or quar.test's
//   127.0.0.2  ingress.trustedNetworks (an internal relay): not checked
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { StageVerdict } from '@mailgate/contracts';
import { dkimDnsRecord } from '@mailgate/sender-auth';
import {
  dkimpySign,
  freeUdpPort,
  startKafka,
  startRbldnsd,
  startRedis,
  waitFor,
  type KafkaHandle,
  type RbldnsdHandle,
  type RedisHandle,
} from '@mailgate/testkit';
import { TopicReader, deliver, queuedId } from './helpers.js';
import { ACCEPTED, startIngress, type StartedIngress } from './setup.js';

// Ed25519 keeps the key record within one TXT string (rbldnsd serves at most 255 bytes per record).
const key = generateKeyPairSync('ed25519').privateKey;
const dkimpyKey = key.export({ type: 'pkcs8', format: 'der' }).subarray(16).toString('base64');

let kafka: KafkaHandle;
let redis: RedisHandle;
let dns: RbldnsdHandle;
let reader: TopicReader;
const gws: StartedIngress[] = [];

const ZONE = [
  '$TTL 60',
  'good TXT "v=spf1 ip4:127.0.0.1 -all"',
  '_dmarc.good TXT "v=DMARC1; p=reject"',
  `s1._domainkey.good TXT "${dkimDnsRecord(key)}"`,
  'bank TXT "v=spf1 ip4:127.0.0.30 -all"',
  '_dmarc.bank TXT "v=DMARC1; p=reject"',
  'quar TXT "v=spf1 ip4:127.0.0.30 -all"',
  '_dmarc.quar TXT "v=DMARC1; p=quarantine"',
];

async function gateway(senderAuth: Record<string, unknown> = {}, dnsServer?: string): Promise<StartedIngress> {
  const gw = await startIngress({
    brokers: kafka.brokers,
    redisUrl: redis.url,
    ingress: {
      acceptedDomains: ACCEPTED,
      trustedNetworks: ['127.0.0.2/32'],
      limits: { pregreetDelayMs: 0, messageRate: { max: 10_000 } },
    },
    senderAuth: {
      authservId: 'gw.test',
      // A dead resolver (the DNS-down cases) answers nothing: a short timeout keeps those fast. The live test
      // server gets a generous one: on a loaded 2-core CI machine a 300 ms deadline turned passes into 451s.
      dns: dnsServer
        ? { resolvers: [dnsServer], timeoutMs: 300, tries: 1 }
        : { resolvers: [dns.server], timeoutMs: 3000, tries: 2 },
      ...senderAuth,
    },
  });
  gws.push(gw);
  return gw;
}

function message(from: string, extra: string[] = []): Buffer {
  return Buffer.from(
    [
      ...extra,
      `From: ${from}`,
      'To: alice@ours.test',
      'Subject: quarterly numbers',
      'Date: Sat, 05 Dec 2026 10:00:00 +0000',
      `Message-ID: <${Math.random().toString(36).slice(2)}@client.test>`,
      '',
      'Hello Alice,',
      '',
      'the numbers are attached.',
      '',
    ].join('\r\n'),
  );
}

const FORGED_AR = 'Authentication-Results: gw.test; spf=pass smtp.mailfrom=bank.test; dmarc=pass header.from=bank.test';

let gwA: StartedIngress;

before(async () => {
  [kafka, redis, dns] = await Promise.all([
    startKafka({ port: 0 }),
    startRedis(),
    startRbldnsd([{ name: 'test', type: 'generic', lines: ZONE }]),
  ]);
  gwA = await gateway();
  reader = await TopicReader.start(kafka.brokers);
});

after(async () => {
  for (const gw of gws) await gw.running.stop();
  await reader?.stop();
  await Promise.all([kafka?.close(), redis?.stop(), dns?.stop()]);
});

const record = (id: string) => waitFor(() => reader.messages.get(id), { timeoutMs: 10_000, message: `record ${id}` });
const receivedEvent = (id: string) =>
  waitFor(() => reader.events.find((e) => e.messageId === id && e.type === 'received'), { timeoutMs: 10_000 });

describe('sender authentication at ingress (default policy)', () => {
  it('a message forged from a p=reject domain is refused at end of DATA with 550 5.7.1', async () => {
    const r = await deliver(gwA.mx, {
      from: 'security@bank.test',
      to: ['alice@ours.test'],
      body: message('Security <security@bank.test>'),
    });
    assert.equal(r.code, 550, r.text);
    assert.match(r.text, /^550 5\.7\.1 Message rejected: bank\.test DMARC policy/);
    const metrics = await (await fetch(`http://127.0.0.1:${gwA.http}/metrics`)).text();
    assert.match(metrics, /mailgate_auth_results_total\{[^}]*method="dmarc"[^}]*result="fail"[^}]*\} [1-9]/);
    assert.match(metrics, /mailgate_ingress_refused_total\{[^}]*reason="sender-auth"/);
  });

  it('a dkimpy-signed message passes: our Authentication-Results, the forged one with our id removed', async () => {
    const signed = await dkimpySign(message('Bob <bob@good.test>'), {
      domain: 'good.test',
      selector: 's1',
      key: dkimpyKey,
      algorithm: 'ed25519-sha256',
    });
    // A forged A-R claiming our authserv-id, and one from someone else (kept), above the signature.
    const raw = Buffer.concat([
      Buffer.from(`${FORGED_AR}\r\nAuthentication-Results: other.test; spf=none\r\n`),
      signed,
    ]);
    const r = await deliver(gwA.mx, {
      from: 'bob@good.test',
      to: ['alice@ours.test'],
      body: raw,
      helo: 'mail.good.test',
    });
    const id = queuedId(r);
    const { msg } = await record(id);
    const text = msg.raw.toString('latin1');
    const ours = text.match(/^Authentication-Results: gw\.test;[^\r]*(\r\n[ \t][^\r]*)*/gm) ?? [];
    assert.equal(ours.length, 1, 'exactly one A-R with our id: ours');
    assert.match(
      ours[0]!,
      /^Authentication-Results: gw\.test;\r\n\tspf=pass [^\r]*smtp\.mailfrom=bob@good\.test;\r\n\tdkim=pass [^\r]*header\.d=good\.test header\.s=s1 header\.a=ed25519-sha256[^\r]*;\r\n\tdmarc=pass \(p=REJECT\) header\.from=good\.test/,
    );
    assert.doesNotMatch(text, /dmarc=pass header\.from=bank\.test/, 'the forged claim is gone');
    assert.match(text, /^Authentication-Results: other\.test; spf=none\r\n/m, 'other ids are kept');
    assert.ok(msg.raw.subarray(msg.raw.length - signed.length).equals(signed), 'the signed message follows unchanged');
    const v = msg.envelope.verdicts[0] as StageVerdict;
    assert.equal(v.stage, 'ingress-smtp');
    assert.equal(v.verdict.kind, 'pass');
    const ev = await receivedEvent(id);
    assert.deepEqual(
      Object.fromEntries(
        Object.entries((ev.details as { auth: Record<string, unknown> }).auth).filter(([k]) =>
          ['spf', 'dkim', 'dmarc', 'action'].includes(k),
        ),
      ),
      { spf: 'pass', dkim: 'pass', dmarc: 'pass', action: 'accept' },
    );
  });

  it('p=quarantine forgery: 250, but the record goes to the quarantine topic with the reason', async () => {
    const r = await deliver(gwA.mx, { from: 'x@quar.test', to: ['alice@ours.test'], body: message('x@quar.test') });
    const id = queuedId(r);
    const q = await waitFor(() => reader.quarantined.get(id), { timeoutMs: 10_000 });
    const v = q.msg.envelope.verdicts[0]!;
    assert.equal(v.stage, 'ingress-smtp');
    assert.equal(v.verdict.kind, 'quarantine');
    assert.match((v.verdict as { reason: string }).reason, /DMARC/i);
    assert.equal(q.headers['mailgate-source-topic'], 'mailgate.inbound');
    await waitFor(() => reader.events.find((e) => e.messageId === id && e.type === 'quarantined'));
    assert.equal(reader.messages.has(id), false, 'not on the way to delivery');
  });

  it('SPF fail alone is tagged, not refused (default spf.onFail: tag)', async () => {
    // Mail from bank.test's envelope but From a domain without DMARC: SPF fail, no DMARC verdict to enforce.
    const r = await deliver(gwA.mx, { from: 'a@bank.test', to: ['alice@ours.test'], body: message('a@nodmarc.test') });
    const { msg } = await record(queuedId(r));
    assert.match(msg.raw.toString('latin1'), /^X-Mailgate-Auth: [^\r]*spf/im);
    assert.match(msg.raw.toString('latin1'), /spf=fail/);
  });

  it('a trusted network is not checked, but a forged A-R with our id is still removed', async () => {
    const r = await deliver(gwA.mx, {
      from: 'security@bank.test',
      to: ['alice@ours.test'],
      body: message('security@bank.test', [FORGED_AR]),
      localAddress: '127.0.0.2',
    });
    const { msg } = await record(queuedId(r));
    assert.doesNotMatch(msg.raw.toString('latin1'), /^Authentication-Results:/m);
    assert.match(JSON.stringify(msg.envelope.verdicts[0]?.details), /exempt: trusted network/);
  });
});

describe('sender authentication: configured policies', () => {
  it('spf.onFail: reject refuses at MAIL FROM with 550 5.7.23', async () => {
    const gw = await gateway({ spf: { onFail: 'reject' } });
    const r = await deliver(gw.mx, {
      from: 'security@bank.test',
      to: ['alice@ours.test'],
      body: message('x@bank.test'),
    });
    assert.equal(r.code, 550);
    assert.match(r.text, /^550 5\.7\.23 SPF validation failed: bank\.test does not permit 127\.0\.0\.1/);
  });

  it('null sender: SPF checks the HELO identity', async () => {
    const gw = gws.find((g) => g !== gwA)!; // spf.onFail: reject
    const bad = await deliver(gw.mx, {
      from: '',
      to: ['alice@ours.test'],
      body: message('x@good.test'),
      helo: 'bank.test',
    });
    assert.match(bad.text, /^550 5\.7\.23 .*bank\.test/);
    const ok = await deliver(gw.mx, {
      from: '',
      to: ['alice@ours.test'],
      body: message('Bob <bob@good.test>'),
      helo: 'good.test',
    });
    assert.equal(ok.code, 250, ok.text);
  });

  it('dryRun: the forgery is accepted and the would-be decision recorded', async () => {
    const gw = await gateway({ dryRun: true });
    const r = await deliver(gw.mx, {
      from: 'security@bank.test',
      to: ['alice@ours.test'],
      body: message('s@bank.test'),
    });
    const id = queuedId(r);
    const { msg } = await record(id);
    assert.match(msg.raw.toString('latin1'), /dmarc=fail \(p=REJECT dis=NONE/);
    const auth = ((await receivedEvent(id)).details as { auth: Record<string, unknown> }).auth;
    assert.equal(auth['action'], 'accept');
    assert.equal(auth['wouldBe'], 'reject');
  });

  it('DNS down: 451 4.7.5 (fail closed); temperror.failOpen lets it through, marked', async () => {
    const dead = `127.0.0.1:${await freeUdpPort()}`;
    const closed = await gateway({}, dead);
    const r = await deliver(closed.mx, {
      from: 'bob@good.test',
      to: ['alice@ours.test'],
      body: message('bob@good.test'),
    });
    assert.equal(r.code, 451, r.text);
    assert.match(r.text, /^451 4\.7\.5 /);
    const open = await gateway({ temperror: { failOpen: ['spf', 'dkim', 'dmarc', 'arc'] } }, dead);
    const r2 = await deliver(open.mx, {
      from: 'bob@good.test',
      to: ['alice@ours.test'],
      body: message('bob@good.test'),
    });
    const { msg } = await record(queuedId(r2));
    assert.equal(msg.envelope.verdicts[0]?.failedOpen, true);
    assert.match(msg.raw.toString('latin1'), /dmarc=temperror/);
  });
});
