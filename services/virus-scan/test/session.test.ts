// clamd IDSESSION reuse in the pool, against a real clamd: several scans per connection, a drop mid-session
// (fail closed, then recovery), clamd's size-limit reply inside a session.
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { describe, test } from 'node:test';
import { EICAR, EICAR_FOUND_NAME, freePort, startClamd } from '@mailgate/testkit';
import { ClamdError } from '../src/clamd/errors.js';
import { ClamdSession } from '../src/clamd/session.js';
import { instreamFrames } from '../src/clamd/protocol.js';
import {
  ClamdPool,
  ClamdUnavailableError,
  createScanMetrics,
  createVirusScanStage,
  endpointName,
  type ClamdEndpoint,
} from '../src/index.js';
import { clamdForFile, config, pipelineMessage, samples, stageContext, testMeter } from './helpers.js';

const gateway = { name: 'mailgate', hostname: 'mx1.example.test' };
const fx = clamdForFile();
const pool = (endpoints: ClamdEndpoint[], sessionsPerEndpoint = 1): ClamdPool =>
  fx.pool(endpoints, { sessionsPerEndpoint });
const eicar = () => Buffer.from(EICAR, 'latin1');

describe('clamd IDSESSION', () => {
  test('one session carries several INSTREAMs, EICAR in the middle found, numbered replies matched', async () => {
    const dead: ClamdSession[] = [];
    const s = await ClamdSession.open(fx.tcp, 1000, (x) => dead.push(x));
    try {
      const replies: string[] = [];
      for (const data of [Buffer.from('hello'), eicar(), Buffer.from('world'), eicar(), Buffer.from('!')]) {
        replies.push(await s.request(instreamFrames(data, 1024), 5000));
      }
      assert.deepEqual(replies, [
        'stream: OK',
        `stream: ${EICAR_FOUND_NAME} FOUND`,
        'stream: OK',
        `stream: ${EICAR_FOUND_NAME} FOUND`,
        'stream: OK',
      ]);
      assert.equal(s.requests, 5);
      assert.equal(dead.length, 0, 'still the same connection');
    } finally {
      s.close();
    }
    assert.equal(dead.length, 1);
  });

  test('the pool reuses its session: clean, clean, EICAR, clean… each verdict right, one session open', async () => {
    for (const ep of [fx.tcp, { socket: fx.clamd.socketPath }]) {
      const p = pool([ep], 2);
      const expect = ['clean', 'clean', 'found', 'clean', 'clean', 'found', 'clean'];
      for (const [i, kind] of expect.entries()) {
        const r = await p.scan(kind === 'found' ? eicar() : Buffer.from(`clean ${i}`));
        assert.equal(r.kind, kind, `scan ${i}`);
        if (r.kind === 'found') assert.deepEqual(r.signatures, [EICAR_FOUND_NAME]);
      }
      // Sequential scans never need a second session; the one in use after a clean verdict stays idle.
      assert.deepEqual(
        p.status().map((s) => [s.sessions, s.idleSessions]),
        [[1, 1]],
      );
      // More scans at once than sessions: the extra ones wait for a session, all verdicts right.
      const batch = Array.from({ length: 8 }, (_, i) => (i % 4 === 1 ? eicar() : Buffer.from(`batch ${i}`)));
      const rs = await Promise.all(batch.map((b) => p.scan(b)));
      assert.deepEqual(
        rs.map((r) => r.kind),
        batch.map((_, i) => (i % 4 === 1 ? 'found' : 'clean')),
      );
      assert.ok(p.status()[0]!.sessions <= 2);
    }
  });

  test("clamd's size-limit reply inside a session → size-limit (never clean), next scans fine", async () => {
    const p = pool([fx.tcp]);
    assert.equal((await p.scan(Buffer.from('warm'))).kind, 'clean');
    assert.equal(p.status()[0]!.idleSessions, 1);
    for (const size of [1_500_000, 8 * 1024 * 1024]) {
      assert.equal((await p.scan(Buffer.alloc(size, 0x41))).kind, 'size-limit', `size ${size}`);
      assert.equal((await p.scan(eicar())).kind, 'found');
      assert.equal((await p.scan(Buffer.from('after'))).kind, 'clean');
    }
    assert.equal(p.status()[0]!.healthy, true);
  });

  test('clamd killed mid-session: the request fails (no verdict), tempfail, then scans again after restart', async () => {
    const c2 = await startClamd();
    try {
      const ep = { host: c2.host, port: c2.port };
      const p = pool([ep]);
      const { fn } = createVirusScanStage({ config: config({}), scanner: p, gateway });
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
      assert.equal(p.status()[0]!.idleSessions, 1);

      // A stream clamd is still waiting on (no end chunk yet) when it dies.
      const raw = await ClamdSession.open(ep, 1000, () => {});
      const frames = instreamFrames(Buffer.from('partial'), 1024);
      // Settled into a value at once: it rejects while we are still awaiting the kill.
      const pending = raw.request(frames.slice(0, -1), 10_000).then(
        (reply) => reply,
        (err: unknown) => err,
      );
      await raw.request([], 10).catch(() => {}); // busy: refused without touching the pending request
      await c2.kill();
      const outcome = await pending;
      assert.ok(outcome instanceof ClamdError && outcome.kind === 'closed', String(outcome));

      // The pool's idle session died with clamd: a scan tempfails, never passes.
      await assert.rejects(p.scan(Buffer.from('x')), ClamdUnavailableError);
      for (const make of [samples.clean, samples.base64]) {
        const out = await fn(pipelineMessage(make()), stageContext());
        assert.equal(out.verdict.kind, 'tempfail');
      }
      assert.equal(p.status()[0]!.sessions, 0);

      await c2.restart();
      assert.equal((await fn(pipelineMessage(samples.base64()), stageContext())).verdict.kind, 'quarantine');
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
      assert.deepEqual(
        p.status().map((s) => [s.healthy, s.sessions]),
        [[true, 1]],
      );
    } finally {
      await c2.stop();
    }
  });

  test('a reused session clamd restarted under: the scan falls back to a fresh connection', async () => {
    const c3 = await startClamd();
    try {
      const p = pool([{ host: c3.host, port: c3.port }]);
      assert.equal((await p.scan(Buffer.from('one'))).kind, 'clean');
      // Restart, then scan at once: whether or not the pool has seen the old session close yet, the verdict
      // comes from the new clamd (fresh session, or the reused one fails and the scan is retried fresh).
      await c3.restart();
      assert.equal((await p.scan(eicar())).kind, 'found');
      assert.equal((await p.scan(Buffer.from('two'))).kind, 'clean');
    } finally {
      await c3.stop();
    }
  });

  test('silence past readTimeoutMs, or an abort, ends the session with an error, never a reply', async () => {
    const frames = instreamFrames(Buffer.from('partial'), 1024).slice(0, -1); // clamd waits for more
    let dead = 0;
    const s1 = await ClamdSession.open(fx.tcp, 1000, () => dead++);
    await assert.rejects(s1.request(frames, 150), (e: unknown) => e instanceof ClamdError && e.kind === 'timeout');
    assert.equal(s1.idle, false);
    const s2 = await ClamdSession.open(fx.tcp, 1000, () => dead++);
    const ac = new AbortController();
    const r = s2.request(frames, 10_000, ac.signal);
    ac.abort();
    await assert.rejects(r, (e: unknown) => e instanceof ClamdError && /aborted/.test(e.message));
    assert.equal(dead, 2);
  });

  test('more scans than sessions wait for one, first come first served, over no other connection', async () => {
    // Every TCP/Unix client socket this process opens while the scans run.
    let opened = 0;
    const onSocket = () => void opened++;
    const channel = diagnostics_channel.channel('net.client.socket');
    channel.subscribe(onSocket);
    try {
      const one = pool([fx.tcp], 1);
      await one.scan(Buffer.from('warm')); // opens the session and reads VERSION (one connection of its own)
      opened = 0;
      const finished: number[] = [];
      const rs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => one.scan(Buffer.from(`fifo ${i}`)).then((r) => (finished.push(i), r.kind))),
      );
      assert.deepEqual(rs, Array(6).fill('clean'));
      assert.deepEqual(finished, [0, 1, 2, 3, 4, 5], 'one session: the scans ran in the order they came');
      assert.equal(opened, 0, 'six scans over the one session already open: no connection of their own');
      assert.deepEqual(
        one.status().map((s) => [s.sessions, s.idleSessions, s.waiting]),
        [[1, 1, 0]],
      );

      // A virus ends its session (never reused after anything but clean): a waiting scan gets a new one.
      const two = pool([fx.tcp], 2);
      await two.scan(Buffer.from('warm'));
      opened = 0;
      const batch = Array.from({ length: 10 }, (_, i) => (i % 3 === 1 ? eicar() : Buffer.from(`batch ${i}`)));
      const kinds = (await Promise.all(batch.map((b) => two.scan(b)))).map((r) => r.kind);
      assert.deepEqual(
        kinds,
        batch.map((_, i) => (i % 3 === 1 ? 'found' : 'clean')),
      );
      // A second session, plus one in place of each session a virus ended.
      assert.ok(opened <= 1 + 3, `connections: ${opened}`);
      assert.ok(two.status()[0]!.sessions <= 2);
      assert.equal(two.status()[0]!.waiting, 0);
    } finally {
      channel.unsubscribe(onSocket);
    }
  });

  test('a wedged clamd (SIGSTOP): the busy session times out and every waiting scan fails with it, at once → tempfail', async () => {
    const c4 = await startClamd();
    try {
      const reported: string[] = [];
      const p = fx.pool([{ host: c4.host, port: c4.port }], {
        sessionsPerEndpoint: 1,
        readTimeoutMs: 400,
        onError: (e) => reported.push(e.kind),
      });
      const { fn } = createVirusScanStage({ config: config({}), scanner: p, gateway });
      assert.equal((await p.scan(Buffer.from('warm'))).kind, 'clean');
      process.kill(c4.pid!, 'SIGSTOP');
      try {
        const t0 = Date.now();
        // One scan on the session, four waiting behind it; clamd accepts (the kernel does) but never answers.
        const outcomes = await Promise.all(
          Array.from({ length: 5 }, () => fn(pipelineMessage(samples.clean()), stageContext())),
        );
        const took = Date.now() - t0;
        assert.deepEqual(
          outcomes.map((o) => o.verdict.kind),
          Array(5).fill('tempfail'),
        );
        // Bounded by one silence limit, not five in a row: the waiters fail with the session (out of rotation).
        assert.ok(took < 4 * 400, `took ${took} ms`);
        assert.deepEqual(
          p.status().map((s) => [s.healthy, s.waiting]),
          [[false, 0]],
        );
        // clamd's failure is counted once (mailgate_clamd_errors_total), not once more per waiting scan; a waiter
        // whose own wait ran out first (same limit here) counts as `busy`.
        assert.deepEqual(
          reported.filter((k) => k !== 'busy'),
          ['timeout'],
        );
      } finally {
        process.kill(c4.pid!, 'SIGCONT');
      }
      // clamd answers again: scanned, not passed blind.
      assert.equal((await fn(pipelineMessage(samples.base64()), stageContext())).verdict.kind, 'quarantine');
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
    } finally {
      await c4.stop();
    }
  });

  test('two clamds, every session busy: a waiting scan takes the first session to free, on either endpoint', async () => {
    const [ca, cb] = await Promise.all([startClamd(), startClamd()]);
    const stopped = new Set<number>();
    const stop = (pid: number) => (process.kill(pid, 'SIGSTOP'), stopped.add(pid));
    const cont = (pid: number) => (process.kill(pid, 'SIGCONT'), stopped.delete(pid));
    try {
      const a = { host: ca.host, port: ca.port };
      const b = { host: cb.host, port: cb.port };
      const reported: string[] = [];
      // Budget and silence limit far beyond the test: only a session coming free ends the wait.
      const p = fx.pool([a, b], {
        sessionsPerEndpoint: 1,
        sessionWaitMs: 120_000,
        readTimeoutMs: 120_000,
        onError: (e) => reported.push(`${e.kind} ${e.endpoint}`),
      });
      // One session each (sequential scans alternate between equally idle endpoints), versions cached.
      const warm = [await p.scan(Buffer.from('warm a')), await p.scan(Buffer.from('warm b'))];
      assert.deepEqual(warm.map((r) => r.endpoint).sort(), [endpointName(a), endpointName(b)].sort());
      assert.deepEqual(
        p.status().map((s) => [s.sessions, s.idleSessions]),
        [
          [1, 1],
          [1, 1],
        ],
      );

      // Both clamds stopped: one scan on each session (clamd gets the stream, never answers), a third waits.
      stop(ca.pid!);
      stop(cb.pid!);
      const first = p.scan(Buffer.from('first'));
      const second = p.scan(Buffer.from('second'));
      const waiting = p.scan(eicar());
      // One waiting scan, queued for both endpoints at once (not for one, then the other).
      assert.deepEqual(
        p.status().map((s) => [s.sessions, s.idleSessions, s.waiting]),
        [
          [1, 0, 1],
          [1, 0, 1],
        ],
      );

      // Only the second clamd answers: its session goes to the waiting scan; the first clamd is still stopped.
      cont(cb.pid!);
      const r = await waiting;
      assert.equal(r.kind, 'found');
      assert.equal(r.endpoint, endpointName(b));
      assert.deepEqual(
        p.status().map((s) => s.waiting),
        [0, 0],
      );

      cont(ca.pid!);
      const rest = await Promise.all([first, second]);
      assert.deepEqual(
        rest.map((x) => x.kind),
        ['clean', 'clean'],
      );
      assert.deepEqual(rest.map((x) => x.endpoint).sort(), [endpointName(a), endpointName(b)].sort());
      assert.deepEqual(reported, [], 'no failure on the way: no busy, nothing out of rotation');
      assert.deepEqual(
        p.status().map((s) => s.healthy),
        [true, true],
      );
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      await Promise.all([ca.stop(), cb.stop()]);
    }
  });

  test('a wait beyond sessionWaitMs (one budget for all endpoints): busy → held as "clamd busy", even with failOpen; counted', async () => {
    const [ca, cb] = await Promise.all([startClamd(), startClamd()]);
    const stopped = new Set<number>();
    try {
      const a = { host: ca.host, port: ca.port };
      const b = { host: cb.host, port: cb.port };
      const m = testMeter();
      const metrics = createScanMetrics(m.meter);
      // The sessions' scans wait far longer than the budget: the wait can only end by running out.
      const p = fx.pool([a, b], {
        sessionsPerEndpoint: 1,
        sessionWaitMs: 300,
        readTimeoutMs: 120_000,
        onError: (e) => metrics.clamdError(e),
      });
      const { fn } = createVirusScanStage({ config: config({ failOpen: true }), scanner: p, gateway, metrics });
      await p.scan(Buffer.from('warm a'));
      await p.scan(Buffer.from('warm b'));

      for (const pid of [ca.pid!, cb.pid!]) {
        process.kill(pid, 'SIGSTOP');
        stopped.add(pid);
      }
      const busyMessages = [fn(pipelineMessage(samples.clean()), stageContext())];
      busyMessages.push(fn(pipelineMessage(samples.clean()), stageContext()));
      const held = fn(pipelineMessage(samples.clean()), stageContext());
      assert.deepEqual(
        p.status().map((s) => s.waiting),
        [1, 1],
        'one waiting scan, queued for both endpoints',
      );

      const out = await held;
      assert.equal(out.verdict.kind, 'tempfail');
      assert.match(
        (out.verdict as { reason: string }).reason,
        /^clamd busy: clamd: busy: .*no free session within the 300 ms wait/,
      );
      assert.equal(out.failedOpen, undefined, 'load is not an outage: never passed unscanned');
      assert.equal(out.raw, undefined);
      assert.equal(out.details?.['result'], 'unscannable');
      // One wait, both endpoints busy through it: one `busy` each, and both stay in rotation.
      assert.equal(await m.value('mailgate_clamd_errors_total', { kind: 'busy', endpoint: endpointName(a) }), 1);
      assert.equal(await m.value('mailgate_clamd_errors_total', { kind: 'busy', endpoint: endpointName(b) }), 1);
      assert.equal(await m.value('mailgate_clamd_errors_total'), 2);
      assert.equal(await m.value('mailgate_virus_scans_total', { result: 'tempfail' }), 1);
      assert.equal(await m.value('mailgate_virus_fail_open_total'), 0);
      assert.deepEqual(
        p.status().map((s) => [s.healthy, s.sessions, s.waiting]),
        [
          [true, 1, 0],
          [true, 1, 0],
        ],
      );

      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      stopped.clear();
      // The two scans on the sessions finish; the held message, retried, is scanned.
      assert.deepEqual(
        (await Promise.all(busyMessages)).map((o) => o.verdict.kind),
        ['pass', 'pass'],
      );
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
      assert.equal(await m.value('mailgate_clamd_errors_total'), 2);
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      await Promise.all([ca.stop(), cb.stop()]);
    }
  });

  test('busy past the budget with another clamd out of rotation: not tried after the wait, its failure reported with the busy one', async () => {
    const dead = { host: '127.0.0.1', port: await freePort() };
    const p = fx.pool([dead, fx.tcp], { sessionsPerEndpoint: 1, sessionWaitMs: 200, readTimeoutMs: 120_000 });
    assert.equal(await p.checkAll(), true); // the PING to the dead one fails: out of rotation
    assert.deepEqual(
      p.status().map((s) => s.healthy),
      [false, true],
    );
    await p.scan(Buffer.from('warm'));
    process.kill(fx.clamd.pid!, 'SIGSTOP');
    let first: ReturnType<ClamdPool['scan']> | undefined;
    try {
      first = p.scan(Buffer.from('first'));
      const second = p.scan(Buffer.from('second')).then(
        () => assert.fail('scanned'),
        (e: unknown) => e,
      );
      // Waits for the clamd in rotation only (the dead one is no place to queue a burst), then gives up.
      assert.deepEqual(
        p.status().map((s) => s.waiting),
        [0, 1],
      );
      const err = await second;
      assert.ok(err instanceof ClamdUnavailableError);
      assert.deepEqual(
        err.failures.map((f) => [f.kind, f.endpoint]),
        [
          ['busy', endpointName(fx.tcp)],
          ['connect', endpointName(dead)],
        ],
      );
      assert.match(err.failures[1]!.message, /out of rotation: /);
    } finally {
      process.kill(fx.clamd.pid!, 'SIGCONT');
    }
    assert.equal((await first!).kind, 'clean');
    assert.deepEqual(
      p.status().map((s) => s.healthy),
      [false, true],
    );
  });

  test("scans sharing a wait budget (one message's) share one wait: spent by the first, the next fails busy at once", async () => {
    const reported: string[] = [];
    const p = fx.pool([fx.tcp], {
      sessionsPerEndpoint: 1,
      sessionWaitMs: 60_000,
      readTimeoutMs: 120_000,
      onError: (e) => reported.push(e.kind),
    });
    await p.scan(Buffer.from('warm'));
    process.kill(fx.clamd.pid!, 'SIGSTOP');
    let first: ReturnType<ClamdPool['scan']> | undefined;
    try {
      first = p.scan(Buffer.from('first')); // holds the one session
      const budget = { leftMs: 200 };
      const isBusy = (e: unknown) => e instanceof ClamdUnavailableError && e.failures.every((f) => f.kind === 'busy');
      await assert.rejects(p.scan(Buffer.from('message'), undefined, budget), isBusy);
      assert.equal(budget.leftMs, 0, 'the wait was taken from the shared budget');
      const attachment = p.scan(Buffer.from('attachment'), undefined, budget);
      assert.equal(p.status()[0]!.waiting, 0, 'no budget left: not queued');
      await assert.rejects(attachment, isBusy);
      assert.deepEqual(reported, ['busy', 'busy']);
    } finally {
      process.kill(fx.clamd.pid!, 'SIGCONT');
    }
    assert.equal((await first!).kind, 'clean');
  });

  test('sessionWaitMs 0: a scan that finds every session busy fails as busy at once, without queueing', async () => {
    const reported: string[] = [];
    const p = fx.pool([fx.tcp], { sessionsPerEndpoint: 1, sessionWaitMs: 0, onError: (e) => reported.push(e.kind) });
    const first = p.scan(Buffer.from('first'));
    await assert.rejects(
      p.scan(Buffer.from('second')),
      (e: unknown) => e instanceof ClamdUnavailableError && e.failures.every((f) => f.kind === 'busy'),
    );
    assert.equal(p.status()[0]!.waiting, 0);
    assert.equal((await first).kind, 'clean');
    assert.deepEqual(reported, ['busy']);
  });

  test('a waiting scan that is aborted leaves the queue; the others still get the session', async () => {
    const p = pool([fx.tcp], 1);
    const ac = new AbortController();
    const first = p.scan(Buffer.from('first'));
    const aborted = p.scan(Buffer.from('aborted'), ac.signal);
    const last = p.scan(eicar());
    assert.equal(p.status()[0]!.waiting, 2);
    ac.abort();
    await assert.rejects(aborted, ClamdUnavailableError);
    assert.equal((await first).kind, 'clean');
    assert.equal((await last).kind, 'found');
    assert.equal(p.status()[0]!.waiting, 0);
  });

  test('sessionsPerEndpoint 0: one connection per scan, as before', async () => {
    const p = pool([fx.tcp], 0);
    assert.equal((await p.scan(eicar())).kind, 'found');
    assert.equal((await p.scan(Buffer.from('x'))).kind, 'clean');
    assert.equal(p.status()[0]!.sessions, 0);
  });
});
