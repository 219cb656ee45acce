// Resource limits: what one client may cost the broker. Every limit is an option (BrokerOptions, `mailgate broker`
// flags) with a default that keeps a broker serving its other clients with bounded memory. docs/kafka-lite.md
// ("Limits") explains each one.

export interface Limits {
  /** Largest request frame (Kafka: socket.request.max.bytes). Bigger frames close the connection. */
  maxRequestBytes: number;
  /**
   * Broker-wide cap on request bytes received but not yet handled (partially sent frames). When exceeded,
   * the connections whose pending frame started earliest are closed until the total fits again.
   */
  maxBufferedRequestBytes: number;
  /** Decoded objects (structs, array elements) one request may produce; more closes the connection. */
  maxRequestObjects: number;
  /** Open client connections; further ones are closed at accept. */
  maxConnections: number;
  /** A connection with nothing in flight and nothing received for this long is closed (Kafka: connections.max.idle.ms). */
  idleTimeoutMs: number;
  /** A request frame must arrive completely within this time of its first byte. */
  requestReadTimeoutMs: number;
  /** Requests one connection may have awaiting their response; beyond it the broker stops reading that socket. */
  maxInFlightRequests: number;
  /** Largest Fetch response the broker builds (Kafka: fetch.max.bytes); at least one batch is always returned. */
  maxFetchBytes: number;
  /** Total partitions across all topics; CreateTopics/auto-creation beyond it is refused. */
  maxPartitions: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxRequestBytes: 100 * MiB,
  maxBufferedRequestBytes: 256 * MiB,
  maxRequestObjects: 100_000,
  maxConnections: 1000,
  idleTimeoutMs: 10 * 60 * 1000,
  requestReadTimeoutMs: 30_000,
  maxInFlightRequests: 100,
  maxFetchBytes: 55 * MiB,
  maxPartitions: 10_000,
};

export function resolveLimits(opts: Partial<Limits>): Limits {
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = opts[key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v <= 0) throw new Error(`kafka-lite: ${key} must be a positive number (got ${v})`);
    out[key] = v;
  }
  return out;
}

/** Warns at most `burst` times per `windowMs` per kind, then once with the number suppressed. */
export class WarnLimiter {
  private windows = new Map<string, { start: number; count: number }>();
  constructor(
    private readonly warn: (msg: string, fields?: Record<string, unknown>) => void,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
  ) {}
  warnOnce(kind: string, msg: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    let w = this.windows.get(kind);
    if (!w || now - w.start >= this.windowMs) {
      if (w && w.count > this.burst)
        this.warn(`kafka-lite: ${w.count - this.burst} more "${kind}" warnings suppressed`);
      w = { start: now, count: 0 };
      this.windows.set(kind, w);
    }
    if (++w.count <= this.burst) this.warn(msg, fields);
  }
}
