// One file (~370 lines): one class, the pool's endpoint state (health, sessions, failover) that every scan,
// ping and health check reads and writes; the wire protocol and sessions are already modules of their own.
import type { Logger } from '@mailgate/runtime';
import { clamdRequest, endpointName, type ClamdEndpoint } from './endpoint.js';
import { ClamdError, ClamdUnavailableError } from './errors.js';
import { ClamdSession } from './session.js';
import {
  CMD_INSTREAM,
  CMD_PING,
  CMD_VERSION,
  instreamFrames,
  parseInstreamReply,
  parseVersion,
  type ClamdVersion,
} from './protocol.js';

export interface ClamdPoolOptions {
  readonly endpoints: readonly ClamdEndpoint[];
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** INSTREAM chunk size (bytes per length-prefixed chunk). */
  readonly chunkBytes: number;
  /** How often every endpoint is PINGed (health) in the background; 0 = never (tests, tools). */
  readonly healthIntervalMs: number;
  /**
   * Long-lived IDSESSION connections kept per endpoint (one scan at a time each); a scan beyond that many at
   * once waits, in arrival order, for one to come free (at most readTimeoutMs). 0 = one connection per scan, no
   * sessions. Default DEFAULT_SESSIONS_PER_ENDPOINT.
   */
  readonly sessionsPerEndpoint?: number;
  /** How long a cached VERSION (engine + database version for the header) is reused. */
  readonly versionMaxAgeMs?: number;
  readonly log?: Logger | undefined;
  /** Called on every failed exchange with one clamd (metrics). */
  readonly onError?: ((err: ClamdError) => void) | undefined;
}

/** The answer of the clamd that scanned the data. Never produced from a failure. */
export type ScanResult = (
  | { readonly kind: 'clean' }
  | { readonly kind: 'found'; readonly signatures: readonly string[] }
  /** clamd refused the stream: larger than its StreamMaxLength. */
  | { readonly kind: 'size-limit' }
) & {
  /** Which clamd answered. */
  readonly endpoint: string;
  /** Its engine/database version, when known (cached VERSION). */
  readonly version?: ClamdVersion | undefined;
};

/** What the stage needs from a scanner (the pool implements it; unit tests pass their own). */
export interface Scanner {
  /** Scan `data`; throws ClamdUnavailableError when no clamd could give an answer. */
  scan(data: Buffer, signal?: AbortSignal): Promise<ScanResult>;
}

interface EndpointState {
  readonly endpoint: ClamdEndpoint;
  readonly name: string;
  /** Optimistic until a failure: a fresh pool must try its endpoints before the first health tick. */
  healthy: boolean;
  inflight: number;
  version?: ClamdVersion | undefined;
  versionAt: number;
  lastError?: string | undefined;
  /** IDSESSION connections ready for a scan (most recently used last). */
  readonly idle: ClamdSession[];
  /** Sessions alive or being opened (idle or busy). */
  sessions: number;
  /** Scans waiting for a session, first come first served. */
  readonly waiters: SessionWaiter[];
}

interface Lease {
  readonly session: ClamdSession;
  /** The session carried a scan before (a drop then may be clamd hanging up an idle session: retried fresh). */
  readonly reused: boolean;
}

/** A scan waiting for a session of its endpoint. */
interface SessionWaiter {
  grant(lease: Promise<Lease>): void;
  fail(err: ClamdError): void;
}

/**
 * Sessions per endpoint unless configured. clamd scans at most MaxThreads streams at once (default 10) and queues
 * the rest; more sessions than that only move the queue from our side into clamd's. Every session is a connection
 * clamd counts against MaxQueue (default 100) while it is open, idle or not, and clamd stops accepting connections
 * at MaxQueue: keep replicas × sessionsPerEndpoint well below it (docs/operations.md, "clamd").
 */
export const DEFAULT_SESSIONS_PER_ENDPOINT = 8;

/** Idle sessions are closed after this long: below clamd's IdleTimeout (default 30 s), so clamd rarely hangs up first. */
const SESSION_IDLE_MS = 10_000;
/** A session is not reused once this old, so a changed signature database or clamd config is picked up. */
const SESSION_MAX_AGE_MS = 60_000;

/**
 * Several clamd instances behind one `scan()`: least-busy healthy endpoint first, the others in turn when it
 * fails (refused, timeout, reset), background PING to notice when a dead one comes back. A scan either returns
 * what a clamd said or throws ClamdUnavailableError — there is no path from a failure to "clean".
 */
export class ClamdPool implements Scanner {
  private readonly states: EndpointState[];
  private timer: NodeJS.Timeout | undefined;
  private rr = 0;
  private closed = false;
  /** Errors handed to waiting scans when their clamd went out of rotation (the failure was counted once, there). */
  private readonly relayed = new WeakSet<ClamdError>();

  constructor(private readonly opts: ClamdPoolOptions) {
    this.states = opts.endpoints.map((endpoint) => ({
      endpoint,
      name: endpointName(endpoint),
      healthy: true,
      inflight: 0,
      versionAt: 0,
      idle: [],
      sessions: 0,
      waiters: [],
    }));
  }

  /** Start the background health loop (first check at once). */
  start(): void {
    if (this.timer || this.opts.healthIntervalMs <= 0) return;
    void this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.opts.healthIntervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.states) {
      this.failWaiters(s, new ClamdError('closed', s.name, 'pool closed'));
      for (const sess of [...s.idle]) sess.close();
    }
  }

  /** Health per endpoint as last seen (for logs, /readyz details and tests). */
  status(): {
    endpoint: string;
    healthy: boolean;
    inflight: number;
    sessions: number;
    idleSessions: number;
    /** Scans waiting for a free session. */
    waiting: number;
    version?: string;
    lastError?: string;
  }[] {
    return this.states.map((s) => ({
      endpoint: s.name,
      healthy: s.healthy,
      inflight: s.inflight,
      sessions: s.sessions,
      idleSessions: s.idle.length,
      waiting: s.waiters.length,
      ...(s.version ? { version: s.version.raw } : {}),
      ...(s.lastError ? { lastError: s.lastError } : {}),
    }));
  }

  /** PING every endpoint now (refreshing VERSION when stale); true when at least one answered. */
  async checkAll(): Promise<boolean> {
    const results = await Promise.all(this.states.map((s) => this.check(s)));
    return results.some(Boolean);
  }

  /** Readiness: at least one clamd answers PING right now. */
  ping(): Promise<boolean> {
    return this.checkAll();
  }

  private async check(s: EndpointState): Promise<boolean> {
    try {
      const reply = await this.request(s, [CMD_PING], this.opts.connectTimeoutMs);
      if (reply !== 'PONG')
        throw new ClamdError('protocol', s.name, `PING answered ${JSON.stringify(reply.slice(0, 100))}`);
      this.markHealthy(s);
      if (Date.now() - s.versionAt > (this.opts.versionMaxAgeMs ?? 60_000)) await this.refreshVersion(s);
      return true;
    } catch (err) {
      this.markUnhealthy(s, err as Error);
      return false;
    }
  }

  /** VERSION of one endpoint (any, when not named), cached for versionMaxAgeMs. */
  async version(endpoint?: string): Promise<ClamdVersion | undefined> {
    const s = endpoint ? this.states.find((x) => x.name === endpoint) : this.states.find((x) => x.healthy);
    if (!s) return undefined;
    if (!s.version || Date.now() - s.versionAt > (this.opts.versionMaxAgeMs ?? 60_000)) await this.refreshVersion(s);
    return s.version;
  }

  private async refreshVersion(s: EndpointState): Promise<void> {
    try {
      s.version = parseVersion(await this.request(s, [CMD_VERSION], this.opts.connectTimeoutMs));
      s.versionAt = Date.now();
    } catch (err) {
      // The scan header then says "version unknown"; not a reason to fail a scan that succeeded.
      this.report(err as Error, s);
    }
  }

  async scan(data: Buffer, signal?: AbortSignal): Promise<ScanResult> {
    const failures: ClamdError[] = [];
    for (const s of this.order()) {
      if (signal?.aborted || this.closed) break;
      s.inflight++;
      try {
        const result = await this.scanOn(s, data, signal);
        this.markHealthy(s);
        if (!s.version || Date.now() - s.versionAt > (this.opts.versionMaxAgeMs ?? 60_000))
          await this.refreshVersion(s);
        return { ...result, endpoint: s.name, version: s.version };
      } catch (err) {
        if (!(err instanceof ClamdError)) throw err;
        failures.push(err);
        // Our own abort (shutdown) says nothing about this clamd: no failover, no verdict on its health.
        if (signal?.aborted) break;
        // clamd answered ERROR: it is alive, the next one may still manage this stream. No session came free in
        // time: its sessions are busy, not dead. Anything else (refused, reset, silent) takes the endpoint out of
        // rotation until a PING answers again.
        // A waiter failed because another scan took this clamd out of rotation: already counted and marked.
        if (this.relayed.has(err)) continue;
        if (err.kind === 'scan-error' || err.kind === 'busy') this.report(err, s);
        else this.markUnhealthy(s, err);
      } finally {
        s.inflight--;
      }
    }
    throw new ClamdUnavailableError(failures);
  }

  private async scanOn(
    s: EndpointState,
    data: Buffer,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'clean' } | { kind: 'found'; signatures: readonly string[] } | { kind: 'size-limit' }> {
    if (this.sessionLimit() === 0) return this.scanFresh(s, data, signal);
    return this.scanOnSession(s, await this.takeSession(s, signal), data, signal);
  }

  /** One INSTREAM on a connection of its own (no session). */
  private async scanFresh(
    s: EndpointState,
    data: Buffer,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'clean' } | { kind: 'found'; signatures: readonly string[] } | { kind: 'size-limit' }> {
    let text: string;
    try {
      text = await this.request(s, instreamFrames(data, this.opts.chunkBytes), this.opts.readTimeoutMs, signal);
    } catch (err) {
      if (err instanceof ClamdError && err.resetBeforeReply && (await this.exceedsLimit(s, data.length))) {
        return { kind: 'size-limit' };
      }
      throw err;
    }
    const reply = parseInstreamReply(text);
    if (reply.kind === 'error') throw new ClamdError('scan-error', s.name, reply.message);
    return reply;
  }

  /**
   * One INSTREAM on an IDSESSION connection. The session goes back to the idle list only after a clean
   * verdict; anything else (virus, size limit, ERROR, timeout, drop) ends it. A *reused* session that drops
   * or answers ERROR (clamd restarted, or hung up an idle session just as we sent) is retried once on a fresh
   * connection — whose answer or failure is then the result. Never a verdict without a clamd reply.
   */
  private async scanOnSession(
    s: EndpointState,
    { session, reused }: Lease,
    data: Buffer,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'clean' } | { kind: 'found'; signatures: readonly string[] } | { kind: 'size-limit' }> {
    let text: string;
    try {
      text = await session.request(instreamFrames(data, this.opts.chunkBytes), this.opts.readTimeoutMs, signal);
    } catch (err) {
      session.close();
      if (!(err instanceof ClamdError) || signal?.aborted || this.closed) throw err;
      if (reused && err.kind === 'closed') {
        this.opts.log?.debug(
          { clamd: s.name, err: err.message },
          'clamd session dropped: retrying on a fresh connection',
        );
        return this.scanFresh(s, data, signal);
      }
      if (err.resetBeforeReply && (await this.exceedsLimit(s, data.length))) return { kind: 'size-limit' };
      throw err;
    }
    const reply = parseInstreamReply(text);
    if (reply.kind === 'clean') this.releaseSession(s, session);
    else session.close();
    if (reply.kind === 'error') {
      if (reused && !signal?.aborted && !this.closed) {
        this.opts.log?.debug(
          { clamd: s.name, reply: reply.message },
          'clamd session answered ERROR: retrying on a fresh connection',
        );
        return this.scanFresh(s, data, signal);
      }
      throw new ClamdError('scan-error', s.name, reply.message);
    }
    return reply;
  }

  private sessionLimit(): number {
    return this.opts.sessionsPerEndpoint ?? DEFAULT_SESSIONS_PER_ENDPOINT;
  }

  /**
   * A session for one scan: an idle one, a new one while under the per-endpoint limit, or else the next one to come
   * free, in arrival order. The wait is bounded by readTimeoutMs (a scan's own silence limit): sessions busy that
   * long are wedged or very slow, and the scan fails ('busy') rather than wait on. A session that dies while scans
   * wait is replaced for the first of them; an endpoint marked unhealthy fails its waiters at once.
   */
  private takeSession(s: EndpointState, signal: AbortSignal | undefined): Promise<Lease> {
    while (s.idle.length > 0) {
      const session = s.idle.pop()!;
      if (session.idle && Date.now() - session.openedAt < SESSION_MAX_AGE_MS) {
        clearTimeout(this.idleTimers.get(session));
        this.idleTimers.delete(session);
        return Promise.resolve({ session, reused: true });
      }
      session.close();
    }
    if (s.sessions < this.sessionLimit()) return this.openSession(s);
    return new Promise<Lease>((resolve, reject) => {
      const waitMs = this.opts.readTimeoutMs;
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = s.waiters.indexOf(waiter);
        if (i >= 0) s.waiters.splice(i, 1);
      };
      const waiter: SessionWaiter = {
        grant: (lease) => (settle(), resolve(lease)),
        fail: (err) => (settle(), reject(err)),
      };
      const timer = setTimeout(
        () =>
          waiter.fail(
            new ClamdError('busy', s.name, `no free session within ${waitMs} ms (${s.sessions} sessions all busy)`),
          ),
        waitMs,
      );
      const onAbort = () => waiter.fail(new ClamdError('closed', s.name, 'aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      s.waiters.push(waiter);
      if (signal?.aborted) onAbort();
    });
  }

  /** Opens one more session of `s` (counted at once, so concurrent scans never open more than the limit). */
  private openSession(s: EndpointState): Promise<Lease> {
    s.sessions++;
    let alive = true;
    const onDead = (dead: ClamdSession) => {
      if (!alive) return;
      alive = false;
      s.sessions--;
      const i = s.idle.indexOf(dead);
      if (i >= 0) s.idle.splice(i, 1);
      clearTimeout(this.idleTimers.get(dead));
      this.idleTimers.delete(dead);
      // After the failed scan (if it failed) has marked the endpoint unhealthy and failed the waiters: a session
      // lost to a dead or wedged clamd is not replaced for them.
      setImmediate(() => this.replaceFor(s));
    };
    return ClamdSession.open(s.endpoint, this.opts.connectTimeoutMs, onDead).then(
      (session) => ({ session, reused: false }),
      (err: unknown) => {
        s.sessions--;
        throw err;
      },
    );
  }

  /** A session of `s` ended: the first waiting scan (if any) gets a new one in its place. */
  private replaceFor(s: EndpointState): void {
    if (this.closed || s.waiters.length === 0 || s.sessions >= this.sessionLimit()) return;
    s.waiters[0]!.grant(this.openSession(s));
  }

  private failWaiters(s: EndpointState, err: ClamdError): void {
    for (const w of [...s.waiters]) w.fail(err);
  }

  private readonly idleTimers = new Map<ClamdSession, NodeJS.Timeout>();

  private releaseSession(s: EndpointState, session: ClamdSession): void {
    if (this.closed || !session.idle || Date.now() - session.openedAt >= SESSION_MAX_AGE_MS) return session.close();
    // Straight to the scan that waited longest: no idle list, no timer.
    const next = s.waiters[0];
    if (next) return next.grant(Promise.resolve({ session, reused: true }));
    s.idle.push(session);
    const t = setTimeout(() => session.close(), SESSION_IDLE_MS);
    t.unref();
    this.idleTimers.set(session, t);
  }

  /**
   * clamd closed the connection while we were still streaming. That is what a crash looks like — and also
   * what "INSTREAM size limit exceeded" looks like when the reset beats the reply to us. Ask again without
   * sending data: clamd checks a chunk's declared length against its StreamMaxLength before reading it, so
   * a chunk header of the full size is answered at once when too large (otherwise we just hang up).
   */
  private async exceedsLimit(s: EndpointState, size: number): Promise<boolean> {
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(Math.min(size, 0xffffffff), 0);
    try {
      const reply = await clamdRequest(s.endpoint, [CMD_INSTREAM, header], {
        connectTimeoutMs: this.opts.connectTimeoutMs,
        readTimeoutMs: this.opts.connectTimeoutMs,
      });
      return parseInstreamReply(reply).kind === 'size-limit';
    } catch {
      return false;
    }
  }

  private request(s: EndpointState, frames: Buffer[], readTimeoutMs: number, signal?: AbortSignal): Promise<string> {
    return clamdRequest(s.endpoint, frames, { connectTimeoutMs: this.opts.connectTimeoutMs, readTimeoutMs, signal });
  }

  /** Healthy endpoints first, least in-flight first, round-robin among equals; the unhealthy ones last. */
  private order(): EndpointState[] {
    const n = this.states.length;
    const start = this.rr++ % Math.max(1, n);
    const rotated = this.states.map((_, i) => this.states[(start + i) % n]!);
    const healthy = rotated.filter((s) => s.healthy).sort((a, b) => a.inflight - b.inflight);
    return [...healthy, ...rotated.filter((s) => !s.healthy)];
  }

  private markHealthy(s: EndpointState): void {
    if (!s.healthy) this.opts.log?.info({ clamd: s.name }, 'clamd answers again');
    s.healthy = true;
    s.lastError = undefined;
  }

  private markUnhealthy(s: EndpointState, err: Error): void {
    if (s.healthy) this.opts.log?.warn({ clamd: s.name, err: err.message }, 'clamd unavailable: out of rotation');
    s.healthy = false;
    s.lastError = err.message;
    this.report(err, s);
    // Scans queued for this clamd would only meet the same failure: they try the next endpoint (or tempfail) now.
    const kind = err instanceof ClamdError ? err.kind : 'closed';
    const relayed = new ClamdError(kind, s.name, `while waiting for a session: ${err.message}`, { cause: err });
    this.relayed.add(relayed);
    this.failWaiters(s, relayed);
  }

  private report(err: Error, s: EndpointState): void {
    this.opts.onError?.(
      err instanceof ClamdError ? err : new ClamdError('protocol', s.name, err.message, { cause: err }),
    );
  }
}
