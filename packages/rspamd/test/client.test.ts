import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startRedis, startRspamd, GTUBE, textMessage, type RedisHandle, type RspamdHandle } from '@mailgate/testkit';
import {
  RspamdClient,
  RspamdNotLearnedError,
  RspamdRequestError,
  RspamdUnavailableError,
  topSymbols,
} from '@mailgate/rspamd';

function message(subject: string, body: string, id = `${Date.now()}.${Math.random()}@partner.test`): Buffer {
  return Buffer.from(
    textMessage({
      from: 'Alice Example <alice@partner.test>',
      to: 'Bob Example <bob@example.test>',
      subject,
      messageId: id,
      body,
    }),
  );
}

const CLEAN_BODY =
  'Hi Bob,\r\n\r\nplease find the figures for the third quarter attached to the shared folder. ' +
  'Let us meet on Thursday at ten to go through them with the team.\r\n\r\nRegards,\r\nAlice';

const env = { from: 'alice@partner.test', rcpt: ['bob@example.test'], ip: '192.0.2.10', helo: 'mx.partner.test' };

describe('RspamdClient against a real rspamd', () => {
  let redis: RedisHandle;
  let rspamd: RspamdHandle;
  let client: RspamdClient;

  before(async () => {
    redis = await startRedis();
    rspamd = await startRspamd({ redis: { host: redis.host, port: redis.port } });
    client = new RspamdClient({
      worker: { host: rspamd.host, port: rspamd.port },
      controller: { host: rspamd.host, port: rspamd.controllerPort },
      password: rspamd.password,
      timeoutMs: 10_000,
    });
  });
  after(async () => {
    client?.close();
    await rspamd?.stop();
    await redis?.stop();
  });

  it('GTUBE: rspamd says reject, skipped, with the GTUBE symbol', async () => {
    const r = await client.check(message('hello', `text ${GTUBE} text`), env);
    assert.equal(r.action, 'reject');
    assert.ok(r.score >= 15, `score ${r.score}`);
    assert.equal(r.skipped, true);
    assert.deepEqual(
      topSymbols(r).map((s) => s.name),
      ['GTUBE'],
    );
  });

  it('a clean business message scores low, and the envelope reaches rspamd', async () => {
    const r = await client.check(message('Quarterly figures', CLEAN_BODY), { ...env, queueId: 'MG-test-1' });
    assert.ok(r.score < 4, `score ${r.score}: ${JSON.stringify(r.symbols)}`);
    // From the envelope headers: rspamd compared MAIL FROM with From: and RCPT TO with To:.
    const names = r.symbols.map((s) => s.name);
    assert.ok(names.includes('FROM_EQ_ENVFROM'), names.join(','));
    assert.ok(names.includes('TO_MATCH_ENVRCPT_ALL'), names.join(','));
  });

  it('an authenticated user is passed as User (rspamd treats the message as outbound)', async () => {
    const r = await client.check(message('Quarterly figures', CLEAN_BODY), { ...env, user: 'alice' });
    assert.equal(typeof r.score, 'number');
  });

  it('learn_ham changes the Bayes statistics; learning the same message again is "already learned"', async () => {
    const before = await client.stat();
    const m = message('Quarterly figures', CLEAN_BODY + '\r\n\r\nP.S. The budget review moved to Friday.');
    const r1 = await client.learnHam(m);
    assert.deepEqual([r1.learned, r1.alreadyLearned], [true, false]);
    // `learned` counts at once; the per-statfile counts are refreshed from Redis on rspamd's own timer.
    const after = await client.stat();
    assert.equal(after.learned, before.learned + 1);
    const r2 = await client.learnHam(m);
    assert.deepEqual([r2.learned, r2.alreadyLearned], [false, true]);
    // rspamc agrees (the statistics an operator looks at).
    assert.match(await rspamd.rspamc(['stat']), new RegExp(`Messages learned: ${after.learned}\\b`));
  });

  it('rspamd declining to learn (its 204 with a body): RspamdNotLearnedError with its words (HTTP 422)', async () => {
    // Too little text: "contains less tokens than required for bayes classifier".
    await assert.rejects(client.learnHam(message('hi', 'hi')), (e: unknown) => {
      assert.ok(e instanceof RspamdNotLearnedError, String(e));
      assert.equal(e.reason, 'too-few-tokens');
      assert.match(e.message, /less tokens than required/);
      assert.equal(e.http, 422);
      return true;
    });
    // Bayes already sure: after a few spam lessons (and a ham, so Bayes classifies at all) the same kind of text is
    // refused with "all learn conditions denied".
    const spam = (n: number) =>
      message(
        `You WON ${n}`,
        `CONGRATULATIONS!!! You have WON a FREE prize. Claim your cash reward now, limited offer, act today: click ` +
          `here to get cheap pills, casino bonus and guaranteed income from home!!! ${n}`,
      );
    await client.learnHam(message('Quarterly figures', CLEAN_BODY + '\r\n\r\nP.S. Lunch is on me.'));
    let refused: RspamdNotLearnedError | undefined;
    for (let n = 0; n < 10 && !refused; n++) {
      try {
        await client.learnSpam(spam(n));
      } catch (e) {
        if (!(e instanceof RspamdNotLearnedError)) throw e;
        refused = e;
      }
    }
    assert.ok(refused, 'rspamd refused to learn more of the same spam');
    assert.equal(refused.reason, 'conditions-denied');
    assert.match(refused.message, /all learn conditions denied/);
    // The connection that carried the malformed 204 was dropped, not reused: the controller client still works.
    assert.ok((await client.stat()).learned >= 3);
  });

  it('learn_spam with a wrong password: RspamdRequestError 401 (HTTP 502)', async () => {
    const bad = new RspamdClient({
      worker: { host: rspamd.host, port: rspamd.port },
      controller: { host: rspamd.host, port: rspamd.controllerPort },
      password: 'wrong',
    });
    try {
      await assert.rejects(bad.learnSpam(message('x', CLEAN_BODY)), (e: unknown) => {
        assert.ok(e instanceof RspamdRequestError);
        assert.equal(e.status, 401);
        assert.equal(e.http, 502);
        return true;
      });
    } finally {
      bad.close();
    }
  });

  it('nothing listening: RspamdUnavailableError kind connect (451 4.3.0)', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const c = new RspamdClient({ worker: { host: '127.0.0.1', port } });
    try {
      await assert.rejects(c.check(message('x', 'y'), env), (e: unknown) => {
        assert.ok(e instanceof RspamdUnavailableError);
        assert.equal(e.kind, 'connect');
        assert.deepEqual(e.smtp, { code: 451, status: '4.3.0' });
        return true;
      });
    } finally {
      c.close();
    }
  });

  it('a server that accepts and never answers: kind timeout after timeoutMs', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const c = new RspamdClient({ worker: { host: '127.0.0.1', port }, timeoutMs: 300 });
    try {
      const t0 = Date.now();
      await assert.rejects(c.check(message('x', 'y'), env), (e: unknown) => {
        assert.ok(e instanceof RspamdUnavailableError);
        assert.equal(e.kind, 'timeout');
        return true;
      });
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      c.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('ping', async () => {
    assert.equal(await client.ping(), true);
  });
});
