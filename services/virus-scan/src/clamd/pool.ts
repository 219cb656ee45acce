import type { Logger } from '@mailgate/runtime';
import { clamdRequest, endpointName, type ClamdEndpoint } from './endpoint.js';
import { ClamdError, ClamdUnavailableError } from './errors.js';
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
}

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

  constructor(private readonly o: ClamdPoolOptions) {
    this.states = o.endpoints.map((endpoint) => ({
      endpoint,
      name: endpointName(endpoint),
      healthy: true,
      inflight: 0,
      versionAt: 0,
    }));
  }

  /** Start the background health loop (first check at once). */
  start(): void {
    if (this.timer || this.o.healthIntervalMs <= 0) return;
    void this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.o.healthIntervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Health per endpoint as last seen (for logs, /readyz details and tests). */
  status(): { endpoint: string; healthy: boolean; inflight: number; version?: string; lastError?: string }[] {
    return this.states.map((s) => ({
      endpoint: s.name,
      healthy: s.healthy,
      inflight: s.inflight,
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
      const reply = await this.request(s, [CMD_PING], this.o.connectTimeoutMs);
      if (reply !== 'PONG')
        throw new ClamdError('protocol', s.name, `PING answered ${JSON.stringify(reply.slice(0, 100))}`);
      this.markHealthy(s);
      if (Date.now() - s.versionAt > (this.o.versionMaxAgeMs ?? 60_000)) await this.refreshVersion(s);
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
    if (!s.version || Date.now() - s.versionAt > (this.o.versionMaxAgeMs ?? 60_000)) await this.refreshVersion(s);
    return s.version;
  }

  private async refreshVersion(s: EndpointState): Promise<void> {
    try {
      s.version = parseVersion(await this.request(s, [CMD_VERSION], this.o.connectTimeoutMs));
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
        if (!s.version || Date.now() - s.versionAt > (this.o.versionMaxAgeMs ?? 60_000)) await this.refreshVersion(s);
        return { ...result, endpoint: s.name, version: s.version };
      } catch (err) {
        if (!(err instanceof ClamdError)) throw err;
        failures.push(err);
        // clamd answered ERROR: it is alive, the next one may still manage this stream. Anything else
        // (refused, reset, silent) takes the endpoint out of rotation until a PING answers again.
        if (err.kind === 'scan-error') this.report(err, s);
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
    let text: string;
    try {
      text = await this.request(s, instreamFrames(data, this.o.chunkBytes), this.o.readTimeoutMs, signal);
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
        connectTimeoutMs: this.o.connectTimeoutMs,
        readTimeoutMs: this.o.connectTimeoutMs,
      });
      return parseInstreamReply(reply).kind === 'size-limit';
    } catch {
      return false;
    }
  }

  private request(s: EndpointState, frames: Buffer[], readTimeoutMs: number, signal?: AbortSignal): Promise<string> {
    return clamdRequest(s.endpoint, frames, { connectTimeoutMs: this.o.connectTimeoutMs, readTimeoutMs, signal });
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
    if (!s.healthy) this.o.log?.info({ clamd: s.name }, 'clamd answers again');
    s.healthy = true;
    s.lastError = undefined;
  }

  private markUnhealthy(s: EndpointState, err: Error): void {
    if (s.healthy) this.o.log?.warn({ clamd: s.name, err: err.message }, 'clamd unavailable: out of rotation');
    s.healthy = false;
    s.lastError = err.message;
    this.report(err, s);
  }

  private report(err: Error, s: EndpointState): void {
    this.o.onError?.(err instanceof ClamdError ? err : new ClamdError('protocol', s.name, err.message, { cause: err }));
  }
}
