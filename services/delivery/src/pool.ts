import { EventEmitter } from 'node:events';
import type { DestinationLimits } from './limits.js';
import type { Target } from './mx.js';
import { SmtpClientConnection, SmtpFailure, type ConnectionPolicy, type SmtpTimeouts } from './smtp.js';

export interface PoolOptions {
  readonly limits: DestinationLimits;
  readonly ehloName: string;
  readonly timeouts: SmtpTimeouts;
  readonly maxMessagesPerConnection: number;
  readonly idleMs: number;
  readonly slotWaitMs: number;
  readonly slotTtlMs: number;
  /** How often waiters of a full destination ask Redis for a slot another replica may have freed (default 100). */
  readonly slotPollMs?: number;
}

export interface Lease {
  readonly conn: SmtpClientConnection;
  readonly dest: string;
  readonly key: string;
  readonly token: string;
  /** True when this lease reuses an already open connection. */
  readonly reused: boolean;
}

interface Idle {
  lease: Lease;
  timer: NodeJS.Timeout;
}

/**
 * Open SMTP connections, reused for several messages to the same destination. Every open connection holds one
 * of the destination's slots in Redis (DestinationLimits), so the per-destination cap holds across replicas;
 * an idle connection keeps its slot for at most `idleMs`.
 */
export class ConnectionPool {
  private readonly idle = new Map<string, Idle[]>();
  private readonly freed = new EventEmitter();
  private readonly refreshedAt = new Map<string, number>();
  /**
   * Destination → when a waiter last asked Redis for a slot (and is asking, or was refused). Until slotPollMs
   * later, or until this process frees or wins a slot of it, other waiters do not ask: one waiter probes at a
   * time. Without this, every connection given back woke every waiter and each made a refused slot round trip
   * (13 per message with 96 deliveries in flight to one destination of 20 connections).
   */
  private readonly probedAt = new Map<string, number>();
  private closed = false;
  private readonly slotPollMs: number;

  constructor(private readonly opts: PoolOptions) {
    this.freed.setMaxListeners(0);
    this.slotPollMs = opts.slotPollMs ?? 100;
  }

  private keyOf(dest: string, t: Target, p: ConnectionPolicy): string {
    return `${dest}|${t.address}:${t.port}|${p.tls}|${p.tlsVerify ? 1 : 0}|${p.auth?.user ?? ''}`;
  }

  private takeIdle(key: string): Lease | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const i = list.pop()!;
      clearTimeout(i.timer);
      if (i.lease.conn.isAlive) return { ...i.lease, reused: true };
      void this.opts.limits
        .release(i.lease.dest, i.lease.token)
        .catch(() => undefined)
        .finally(() => this.slotFreed(i.lease.dest));
    }
    return null;
  }

  /** An open connection to `target` (reused or new). Throws SmtpFailure (connect phase, or slot wait exceeded). */
  async acquire(dest: string, target: Target, policy: ConnectionPolicy): Promise<Lease> {
    const key = this.keyOf(dest, target, policy);
    const deadline = Date.now() + this.opts.slotWaitMs;
    for (;;) {
      if (this.closed) throw new SmtpFailure('connect', '451 4.3.2 delivery is shutting down', true, false);
      const idle = this.takeIdle(key);
      if (idle) {
        await this.maybeRefresh(idle);
        return idle;
      }
      const token = this.mayProbe(dest) ? await this.probe(dest) : null;
      if (token) {
        try {
          const conn = await SmtpClientConnection.open(target, policy, this.opts.ehloName, this.opts.timeouts);
          this.refreshedAt.set(token, Date.now());
          return { conn, dest, key, token, reused: false };
        } catch (e) {
          await this.opts.limits.release(dest, token).catch(() => undefined);
          this.slotFreed(dest);
          throw e;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SmtpFailure(
          'connect',
          `451 4.4.5 connection limit for ${dest} reached, try again later`,
          true,
          false,
        );
      }
      // Wait for a local connection to come free, or poll Redis (another replica may free a slot).
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.freed.off(dest, done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, this.slotPollMs));
        this.freed.on(dest, done);
      });
    }
  }

  private mayProbe(dest: string): boolean {
    const at = this.probedAt.get(dest);
    return at === undefined || Date.now() - at >= this.slotPollMs;
  }

  /** Ask Redis for a slot; other waiters hold off meanwhile, and again after a refusal (see probedAt). */
  private async probe(dest: string): Promise<string | null> {
    this.probedAt.set(dest, Date.now());
    let token: string | null;
    try {
      token = await this.opts.limits.tryAcquire(dest);
    } catch (e) {
      this.probedAt.delete(dest);
      throw e;
    }
    if (token) {
      // There may be more free slots: let the next waiter ask at once.
      this.probedAt.delete(dest);
      this.freed.emit(dest);
    }
    return token;
  }

  /** A slot of `dest` was given back to Redis by this process: a waiter may take it at once. */
  private slotFreed(dest: string): void {
    this.probedAt.delete(dest);
    this.freed.emit(dest);
  }

  private async maybeRefresh(lease: Lease): Promise<void> {
    const last = this.refreshedAt.get(lease.token) ?? 0;
    if (Date.now() - last < this.opts.slotTtlMs / 4) return;
    this.refreshedAt.set(lease.token, Date.now());
    await this.opts.limits.refresh(lease.dest, lease.token).catch(() => undefined);
  }

  /** Give a connection back: kept for reuse when healthy and under the per-connection message cap, else closed. */
  release(lease: Lease, reusable: boolean): void {
    const conn = lease.conn;
    if (
      !this.closed &&
      reusable &&
      conn.isAlive &&
      conn.messages < this.opts.maxMessagesPerConnection &&
      this.opts.idleMs > 0
    ) {
      let list = this.idle.get(lease.key);
      if (!list) this.idle.set(lease.key, (list = []));
      const entry: Idle = {
        lease,
        timer: setTimeout(() => {
          const l = this.idle.get(lease.key);
          if (l) {
            const i = l.indexOf(entry);
            if (i >= 0) l.splice(i, 1);
            if (l.length === 0) this.idle.delete(lease.key);
          }
          void this.discard(lease);
        }, this.opts.idleMs),
      };
      entry.timer.unref();
      list.push(entry);
      this.freed.emit(lease.dest);
      return;
    }
    void this.discard(lease);
  }

  private discard(lease: Lease): Promise<void> {
    this.refreshedAt.delete(lease.token);
    return lease.conn
      .close()
      .then(() => this.opts.limits.release(lease.dest, lease.token))
      .catch(() => undefined)
      .finally(() => this.slotFreed(lease.dest));
  }

  /** Idle connections right now (tests, metrics). */
  get idleCount(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    for (const i of all) clearTimeout(i.timer);
    await Promise.all(all.map((i) => this.discard(i.lease)));
  }
}
