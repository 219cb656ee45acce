import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { startKafka, startRedis, type KafkaHandle, type RedisHandle } from '@mailgate/testkit';
import {
  assertSmtpServerInternals,
  installedSmtpServerVersion,
  missingSmtpServerInternals,
  sessionId,
  SMTP_SERVER_PINNED,
} from '../src/smtp-guard.js';
import { SmtpClient } from './helpers.js';
import { ACCEPTED, startIngress, type StartedIngress } from './setup.js';

/**
 * smtp-guard.ts overrides private smtp-server methods. These tests pin that down: the version is exact, the
 * start-up self-check names what is missing, and each protection the overrides provide is exercised over TCP.
 */

describe('smtp-server pin and start-up self-check', () => {
  it('package.json pins exactly the version the guards were written for, and that version is installed', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.equal(pkg.dependencies['smtp-server'], SMTP_SERVER_PINNED);
    assert.equal(installedSmtpServerVersion(), SMTP_SERVER_PINNED);
  });

  it('the installed smtp-server has every overridden or called internal', () => {
    assert.deepEqual(missingSmtpServerInternals(), []);
    assertSmtpServerInternals();
  });

  it("session ids (pooled) have the library's format and do not repeat", () => {
    const ids = Array.from({ length: 10_000 }, () => sessionId());
    for (const id of ids) assert.match(id, /^[0-9a-v]{16}$/);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(new Set(ids.flatMap((id) => [...id])).size, 32, 'every digit of the alphabet occurs');
  });

  it('a missing internal stops start-up with an error naming the method and the versions', () => {
    const without = (proto: object, name: string) =>
      Object.assign(Object.create(proto) as object, { [name]: undefined });
    const protos = {
      SMTPConnection: without((SMTPConnection as unknown as { prototype: object }).prototype, '_onCommand'),
      SMTPServer: (SMTPServer as unknown as { prototype: object }).prototype,
      SMTPStream: without((SMTPStream as unknown as { prototype: object }).prototype, 'startDataMode'),
    };
    assert.deepEqual(missingSmtpServerInternals(protos), [
      'SMTPConnection.prototype._onCommand',
      'SMTPStream.prototype.startDataMode',
    ]);
    assert.throws(
      () => assertSmtpServerInternals(protos, '3.99.0'),
      (err: Error) =>
        err.message.includes('smtp-server 3.99.0 lacks SMTPConnection.prototype._onCommand') &&
        err.message.includes(`written for smtp-server ${SMTP_SERVER_PINNED}`),
    );
  });
});

describe('protections installed by smtp-guard', () => {
  let kafka: KafkaHandle;
  let redis: RedisHandle;
  let gw: StartedIngress;

  before(async () => {
    [kafka, redis] = await Promise.all([startKafka({ port: 0 }), startRedis()]);
    gw = await startIngress({
      brokers: kafka.brokers,
      redisUrl: redis.url,
      ingress: {
        acceptedDomains: ACCEPTED,
        // Ranges, not single addresses: the library itself only matches exact addresses.
        proxy: { trusted: ['127.0.1.0/29'] },
        xclient: { trusted: ['127.0.2.0/29'] },
        limits: { maxConnections: 2, pregreetDelayMs: 0, maxConnectionsPerIp: 10 },
      },
    });
  });

  after(async () => {
    await gw?.running.stop();
    await Promise.all([kafka?.close(), redis?.stop()]);
  });

  it('a bare CR inside a command line (not only a bare LF ending one) is refused 521 5.5.2 and closed', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    c.write('NOOP\rRSET\r\n');
    assert.match((await c.reply()).text, /^521 5\.5\.2 /);
    await c.closedPromise;
  });

  it('replies that carry an enhanced status code are sent once, not re-prefixed by the library', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    await c.cmd('MAIL FROM:<a@remote.test>');
    const r = await c.cmd('RCPT TO:<v@foreign.test>');
    assert.match(r.text, /^550 5\.7\.1 /);
    assert.doesNotMatch(r.text, /^\d{3} \d\.\d{1,3}\.\d{1,3} \d\.\d{1,3}\.\d{1,3}/);
    await c.close();
  });

  it('PROXY is trusted by CIDR: a proxy inside the range sets the client IP', async () => {
    const c = await SmtpClient.connect(gw.mx, '127.0.1.5');
    c.write('PROXY TCP4 198.51.100.8 127.0.0.1 40000 25\r\n');
    await c.expect(220);
    const e = await c.cmd('EHLO p.test');
    assert.match(e.lines[0] ?? '', /198\.51\.100\.8/);
    await c.close();
  });

  it('XCLIENT is trusted by CIDR: offered and honoured inside the range, refused outside it', async () => {
    const t = await SmtpClient.connect(gw.mx, '127.0.2.6');
    await t.expect(220);
    assert.ok((await t.cmd('EHLO tool.test')).lines.some((l) => l.startsWith('XCLIENT')));
    assert.equal((await t.cmd('XCLIENT ADDR=203.0.113.10')).code, 220);
    await t.close();
    const u = await SmtpClient.connect(gw.mx, '127.0.2.9');
    await u.expect(220);
    assert.ok(!(await u.cmd('EHLO x.test')).lines.some((l) => l.startsWith('XCLIENT')));
    assert.equal((await u.cmd('XCLIENT ADDR=203.0.113.10')).code, 550);
    await u.close();
  });

  it('beyond limits.maxConnections a new client gets 421 4.7.0 and is closed', async () => {
    const one = await SmtpClient.connect(gw.mx, '127.0.3.1');
    const two = await SmtpClient.connect(gw.mx, '127.0.3.2');
    await Promise.all([one.expect(220), two.expect(220)]);
    const three = await SmtpClient.connect(gw.mx, '127.0.3.3');
    assert.match((await three.reply()).text, /^421 4\.7\.0 .*Too many connected clients/);
    await three.closedPromise;
    await Promise.all([one.close(), two.close()]);
  });
});
