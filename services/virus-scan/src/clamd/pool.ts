// One file (~600 lines): one class, the pool's endpoint state (health, sessions, the session-wait queue, failover)
// that every scan, ping and health check reads and writes; the wire protocol and sessions are modules of their own.
import type { Logger } from '@mailgate/runtime';
import { clamdRequest, endpointName, type ClamdEndpoint } from './endpoint.js';
import { ClamdError, ClamdUnavailableError, type ClamdFailureKind } from './errors.js';
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
   * Long-lived IDSESSION connections kept per endpoint (one scan at a time each); a scan that finds every session
   * of every endpoint in rotation busy waits, in arrival order, for the first to come free on any of them (at most
   * sessionWaitMs). 0 = one connection per scan, no sessions. Default DEFAULT_SESSIONS_PER_ENDPOINT.
   */
  readonly sessionsPerEndpoint?: number;
  /**
   * How long one scan — or all scans given one WaitBudget (the stage: a message's) — may wait for a session in all,
   * whichever endpoints it waits on; then it fails as `busy`. Default DEFAULT_SESSION_WAIT_MS.
   */
  readonly sessionWaitMs?: number;
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

/**
 * How long scans may still wait for a session (ms), spent by every scan given it: the stage passes one per message,
 * so a message's scans (the whole message, then each attachment) share one sessionWaitMs. Pass `{}`: the first scan
 * sets it to the pool's sessionWaitMs.
 */
export interface WaitBudget {
  leftMs?: number;
}

/** A WaitBudget the pool has started to spend. */
type Budget = Required<WaitBudget>;

/** What the stage needs from a scanner (the pool implements it; unit tests pass their own). */
export interface Scanner {
  /**
   * Scan `data`; throws ClamdUnavailableError when no clamd could give an answer. `budget`: the wait for a session
   * comes off it (default: a fresh sessionWaitMs for this scan).
   */
  scan(data: Buffer, signal?: AbortSignal, budget?: WaitBudget): Promise<ScanResult>;
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
  /** Why it went out of rotation (a scan that gives up waiting reports it for an endpoint it never tried). */
  lastFailure?: ClamdFailureKind | undefined;
  /** IDSESSION connections ready for a scan (most recently used last). */
  readonly idle: ClamdSession[];
  /** Sessions alive or being opened (idle or busy). */
  sessions: number;
}

interface Lease {
  readonly session: ClamdSession;
  /** The session carried a scan before (a drop then may be clamd hanging up an idle session: retried fresh). */
  readonly reused: boolean;
}

/** Where one attempt of a scan goes: an endpoint and, with sessions, the session it got (or is opening). */
interface Pick {
  readonly s: EndpointState;
  readonly lease?: Promise<Lease> | undefined;
}

/** A scan waiting for a session of any endpoint it may still use (the pool's queue, first come first served). */
interface SessionWaiter {
  /** It would take a session of `s` now. */
  accepts(s: EndpointState): boolean;
  grant(s: EndpointState, lease: Promise<Lease>): void;
  /** `s` went out of rotation (err) while the scan waited. */
  lost(s: EndpointState, err: ClamdError): void;
  fail(err: WaitFailed): void;
}

/**
 * A scan's wait for a session ended without one: these failures, and these endpoints are done for the scan;
 * `final`: the wait budget is spent, the scan ends here.
 */
class WaitFailed extends Error {
  constructor(
    readonly failures: readonly ClamdError[],
    readonly endpoints: readonly EndpointState[],
    readonly final = false,
  ) {
    super(failures.map((f) => f.message).join('; ') || 'no session');
  }
}

/**
 * Sessions per endpoint unless configured. clamd scans at most MaxThreads streams at once (default 10) and queues
 * the rest; more sessions than that only move the queue from our side into clamd's. Every session is a connection
 * clamd counts against MaxQueue (default 100) while it is open, idle or not, and clamd stops accepting connections
 * at MaxQueue: keep replicas × sessionsPerEndpoint well below it (docs/operations.md, "clamd").
 */
export const DEFAULT_SESSIONS_PER_ENDPOINT = 8;

/**
 * How long a scan waits for a session unless configured: the stage holds its Kafka records while it waits, so a
 * burst beyond every clamd's sessions should come back as `busy` (held, retried with backoff) within seconds rather
 * than stall consumption for a whole readTimeoutMs; long enough to ride out the usual queue of a few scans each.
 */
export const DEFAULT_SESSION_WAIT_MS = 10_000;

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
  /** Scans waiting for a session, of whichever endpoint frees one first; arrival order. */
  private readonly waiters: SessionWaiter[] = [];

  constructor(private readonly opts: ClamdPoolOptions) {
    this.states = opts.endpoints.map((endpoint) => ({
      endpoint,
      name: endpointName(endpoint),
      healthy: true,
      inflight: 0,
      versionAt: 0,
      idle: [],
      sessions: 0,
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
    for (const w of [...this.waiters]) w.fail(new WaitFailed([new ClamdError('closed', 'pool', 'pool closed')], []));
    for (const s of this.states) for (const sess of [...s.idle]) sess.close();
  }

  /** Health per endpoint as last seen (for logs, /readyz details and tests). */
  status(): {
    endpoint: string;
    healthy: boolean;
    inflight: number;
    sessions: number;
    idleSessions: number;
    /** Scans waiting for a free session that would take one of this endpoint's. */
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
      waiting: this.waiters.filter((w) => w.accepts(s)).length,
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

  async scan(data: Buffer, signal?: AbortSignal, shared: WaitBudget = {}): Promise<ScanResult> {
    shared.leftMs ??= this.sessionWaitMs();
    const budget = shared as Budget;
    const failures: ClamdError[] = [];
    /** Endpoints this scan is done with: tried, or busy or out of rotation for the whole wait. */
    const done = new Set<EndpointState>();
    while (!signal?.aborted && !this.closed) {
      let pick: Pick | undefined;
      try {
        pick = await this.acquire(done, failures, budget, signal);
      } catch (err) {
        if (!(err instanceof WaitFailed)) throw err;
        failures.push(...err.failures);
        if (err.final) break;
        for (const s of err.endpoints) done.add(s);
        continue;
      }
      if (!pick) break;
      const { s } = pick;
      done.add(s);
      s.inflight++;
      try {
        const result = await this.scanOn(s, pick.lease, data, signal);
        this.markHealthy(s);
        if (!s.version || Date.now() - s.versionAt > (this.opts.versionMaxAgeMs ?? 60_000))
          await this.refreshVersion(s);
        return { ...result, endpoint: s.name, version: s.version };
      } catch (err) {
        if (!(err instanceof ClamdError)) throw err;
        failures.push(err);
        // Our own abort (shutdown) says nothing about this clamd: no failover, no verdict on its health.
        if (signal?.aborted) break;
        // clamd answered ERROR: it is alive, the next one may still manage this stream. Anything else (refused,
        // reset, silent) takes the endpoint out of rotation until a PING answers again.
        if (err.kind === 'scan-error') this.report(err, s);
        else this.markUnhealthy(s, err);
      } finally {
        s.inflight--;
      }
    }
    throw new ClamdUnavailableError(failures);
  }

  /**
   * The next endpoint (and session) for a scan, among those it is not done with; undefined when none is left.
   * Endpoints in rotation first: a free session now (least busy endpoint first), else the first session to come
   * free on any of them, within what is left of the scan's one wait budget (sessionWaitMs). Only when none in
   * rotation is left are the others tried, the same way, as a last resort. Throws WaitFailed when the wait ends
   * without a session (budget spent → `busy` for each endpoint waited on; abort; pool closed).
   */
  private acquire(
    done: Set<EndpointState>,
    failures: ClamdError[],
    budget: Budget,
    signal: AbortSignal | undefined,
  ): Pick | Promise<Pick> | undefined {
    const left = this.order().filter((s) => !done.has(s));
    if (left.length === 0) return undefined;
    if (this.sessionLimit() === 0) return { s: left[0]! };
    const healthy = left.filter((s) => s.healthy);
    const tier = healthy.length > 0 ? healthy : left;
    for (const s of tier) {
      const lease = this.takeNow(s);
      if (lease) return { s, lease };
    }
    if (budget.leftMs > 0) return this.waitForSession(healthy.length > 0, done, failures, budget, signal);
    throw this.waitedOut(tier, done);
  }

  /**
   * The scan's wait budget is spent: `busy` for each endpoint it waited on (counted; they stay in rotation: busy
   * is not dead). It does not go on to endpoints out of rotation — a wedged one would hold it for readTimeoutMs —
   * but their known failure is part of the answer (failOpen treats "all busy" and "partly down" differently).
   */
  private waitedOut(waitedOn: readonly EndpointState[], done: ReadonlySet<EndpointState>): WaitFailed {
    const busy = waitedOn.map((s) => {
      const err = new ClamdError(
        'busy',
        s.name,
        `no free session within the ${this.sessionWaitMs()} ms wait (${s.sessions} sessions busy)`,
      );
      this.report(err, s);
      return err;
    });
    const down = this.states
      .filter((s) => !s.healthy && !done.has(s) && !waitedOn.includes(s))
      .map((s) => new ClamdError(s.lastFailure ?? 'closed', s.name, `out of rotation: ${s.lastError ?? 'no answer'}`));
    return new WaitFailed([...busy, ...down], [], true);
  }

  /**
   * Queue the scan for the first session to come free (released after a clean verdict, or a new one in place of
   * one that ended) on any endpoint it is not done with — in rotation only, when `inRotation`. Every millisecond
   * spent here comes off `budget`, which spans all of the scan's waits.
   */
  private waitForSession(
    inRotation: boolean,
    done: Set<EndpointState>,
    failures: ClamdError[],
    budget: Budget,
    signal: AbortSignal | undefined,
  ): Promise<Pick> {
    return new Promise<Pick>((resolve, reject) => {
      const started = Date.now();
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        budget.leftMs = Math.max(0, budget.leftMs - (Date.now() - started));
      };
      const accepts = (s: EndpointState) => !done.has(s) && (!inRotation || s.healthy);
      const waiter: SessionWaiter = {
        accepts,
        grant: (s, lease) => (settle(), resolve({ s, lease })),
        fail: (err) => (settle(), reject(err)),
        lost: (s, err) => {
          if (done.has(s)) return;
          // Still others in rotation to wait for: `s` is skipped while out of rotation, taken again if it returns.
          if (inRotation && this.states.some(accepts)) return;
          // The scan was counting on `s`: its failure (counted once, by the scan that met it) is this scan's too.
          done.add(s);
          failures.push(err);
          if (!this.states.some(accepts)) waiter.fail(new WaitFailed([], []));
        },
      };
      const timer = setTimeout(() => {
        const waitedOn = this.states.filter(accepts);
        settle();
        budget.leftMs = 0;
        reject(this.waitedOut(waitedOn, done));
      }, budget.leftMs);
      const onAbort = () => waiter.fail(new WaitFailed([new ClamdError('closed', 'pool', 'aborted')], []));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      if (signal?.aborted) onAbort();
    });
  }

  private async scanOn(
    s: EndpointState,
    lease: Promise<Lease> | undefined,
    data: Buffer,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'clean' } | { kind: 'found'; signatures: readonly string[] } | { kind: 'size-limit' }> {
    if (!lease) return this.scanFresh(s, data, signal);
    return this.scanOnSession(s, await lease, data, signal);
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

  private sessionWaitMs(): number {
    return this.opts.sessionWaitMs ?? DEFAULT_SESSION_WAIT_MS;
  }

  /** A session of `s` for one scan right now: an idle one, or a new one while under the limit; else undefined. */
  private takeNow(s: EndpointState): Promise<Lease> | undefined {
    while (s.idle.length > 0) {
      const session = s.idle.pop()!;
      clearTimeout(this.idleTimers.get(session));
      this.idleTimers.delete(session);
      if (session.idle && Date.now() - session.openedAt < SESSION_MAX_AGE_MS) {
        return Promise.resolve({ session, reused: true });
      }
      session.close();
    }
    if (s.sessions < this.sessionLimit()) return this.openSession(s);
    return undefined;
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
      // After the failed scan (if it failed) has taken the endpoint out of rotation: a session lost to a dead or
      // wedged clamd is not replaced for scans waiting on the endpoints in rotation.
      setImmediate(() => this.serve(s));
    };
    return ClamdSession.open(s.endpoint, this.opts.connectTimeoutMs, onDead).then(
      (session) => ({ session, reused: false }),
      (err: unknown) => {
        s.sessions--;
        throw err;
      },
    );
  }

  /**
   * `s` may have sessions to give (one ended, or `s` is back in rotation): the scans waiting longest that would
   * take one get them — idle ones, or new ones up to the limit.
   */
  private serve(s: EndpointState): void {
    while (!this.closed) {
      const w = this.waiters.find((x) => x.accepts(s));
      if (!w) return;
      const lease = this.takeNow(s);
      if (!lease) return;
      w.grant(s, lease);
    }
  }

  private readonly idleTimers = new Map<ClamdSession, NodeJS.Timeout>();

  private releaseSession(s: EndpointState, session: ClamdSession): void {
    if (this.closed || !session.idle || Date.now() - session.openedAt >= SESSION_MAX_AGE_MS) return session.close();
    // Straight to the scan that waited longest (for any endpoint it may use): no idle list, no timer.
    const next = this.waiters.find((w) => w.accepts(s));
    if (next) return next.grant(s, Promise.resolve({ session, reused: true }));
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
    const back = !s.healthy;
    s.healthy = true;
    s.lastError = undefined;
    s.lastFailure = undefined;
    if (!back) return;
    this.opts.log?.info({ clamd: s.name }, 'clamd answers again');
    // Scans waiting on the endpoints in rotation may take its sessions now.
    this.serve(s);
  }

  private markUnhealthy(s: EndpointState, err: Error): void {
    if (s.healthy) this.opts.log?.warn({ clamd: s.name, err: err.message }, 'clamd unavailable: out of rotation');
    s.healthy = false;
    s.lastError = err.message;
    s.lastFailure = err instanceof ClamdError ? err.kind : 'closed';
    this.report(err, s);
    // Scans waiting for this clamd's sessions would only meet the same failure: they wait on for the others in
    // rotation, or (none left) go on to the next endpoint or tempfail now. Counted once, here.
    const kind = err instanceof ClamdError ? err.kind : 'closed';
    const relayed = new ClamdError(kind, s.name, `while waiting for a session: ${err.message}`, { cause: err });
    for (const w of [...this.waiters]) w.lost(s, relayed);
  }

  private report(err: Error, s: EndpointState): void {
    this.opts.onError?.(
      err instanceof ClamdError ? err : new ClamdError('protocol', s.name, err.message, { cause: err }),
    );
  }
}
