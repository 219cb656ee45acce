import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
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

/** A TCP server on loopback that accepts connections and never answers (a hung rspamd). */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
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

  it('an SMTPUTF8 envelope (UTF-8 addresses) is scanned, not refused by the HTTP client', async () => {
    const r = await client.check(message('Quarterly figures', CLEAN_BODY), {
      ...env,
      from: '用户@例子.广告',
      rcpt: ['bob@example.test', 'jörg@example.test'],
    });
    assert.equal(typeof r.score, 'number');
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
    const { port, close } = await silentServer();
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
      await close();
    }
  });

  it('ping', async () => {
    assert.equal(await client.ping(), true);
  });

  it('rspamd closes every connection after its reply, even one that asks for keep-alive (why there is no agent)', async () => {
    const raw = message('keep-alive probe', CLEAN_BODY);
    const sock = net.connect(rspamd.port, rspamd.host);
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.write(
      `POST /checkv2 HTTP/1.1\r\nHost: ${rspamd.host}\r\nConnection: keep-alive\r\nContent-Length: ${raw.length}\r\n\r\n`,
    );
    sock.write(raw);
    // The positive signal: rspamd hangs up by itself (we never close); its reply said so beforehand.
    await closed;
    const head = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')[0]!;
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.match(head, /\r\nConnection: close\r\n/i);
  });

  it('maxSockets bounds the connections open at once; requests beyond it wait their turn and all get answers', async () => {
    // Every TCP client socket this process creates (only the client's, during these checks), until it has closed.
    let open = 0;
    let peak = 0;
    let total = 0;
    const onSocket = ({ socket }: { socket: net.Socket }) => {
      open++;
      total++;
      peak = Math.max(peak, open);
      socket.once('close', () => open--);
    };
    const channel = diagnostics_channel.channel('net.client.socket');
    channel.subscribe(onSocket as (m: unknown) => void);
    const c = new RspamdClient({ worker: { host: rspamd.host, port: rspamd.port }, maxSockets: 2, timeoutMs: 30_000 });
    try {
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          c.check(i % 3 === 0 ? message('gtube', GTUBE) : message(`clean ${i}`, CLEAN_BODY), env),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.skipped),
        results.map((_, i) => i % 3 === 0),
      );
      assert.equal(total, 12, 'one connection per request');
      assert.ok(peak <= 2, `at most maxSockets connections at once (saw ${peak})`);
    } finally {
      channel.unsubscribe(onSocket as (m: unknown) => void);
      c.close();
    }
  });

  it('a request waiting for a connection keeps its deadline and its abort; close() ends the rest', async () => {
    const { port, close } = await silentServer();
    const c = new RspamdClient({ worker: { host: '127.0.0.1', port }, timeoutMs: 300, maxSockets: 1 });
    try {
      // The first holds the only connection (never answered); the second waits, then times out all the same.
      const kinds = await Promise.all(
        [0, 1].map((i) =>
          c.check(message(`x${i}`, 'y'), env).then(
            () => 'answered',
            (e: RspamdUnavailableError) => e.kind,
          ),
        ),
      );
      assert.deepEqual(kinds, ['timeout', 'timeout']);
      const ac = new AbortController();
      const first = c.check(message('a', 'y'), env).then(
        () => 'answered',
        (e: RspamdUnavailableError) => e.kind,
      );
      const waiting = c.check(message('b', 'y'), env, ac.signal).then(
        () => 'answered',
        (e: RspamdUnavailableError) => e.message,
      );
      ac.abort();
      assert.match(await waiting, /aborted/);
      c.close();
      assert.equal(await first, 'closed');
      await assert.rejects(c.check(message('c', 'y'), env), /client closed/);
    } finally {
      c.close();
      await close();
    }
  });
});
