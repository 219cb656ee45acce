// The broker: options, the TCP server and its connection limits, and the state every API handler shares
// (storage, group coordinator, topic creation). Framing and dispatch live in connection.ts, the APIs in apis/.
import net from 'node:net';
import { APIS, type Api } from './apis/index.js';
import { Conn } from './connection.js';
import { Coordinator } from './groups.js';
import { resolveLimits, WarnLimiter, type Limits } from './limits.js';
import { jsonLogger, type Logger, type LogLevel } from './logger.js';
import { Store, type FsyncPolicy, type PartitionLog, type Topic } from './store.js';

export interface BrokerOptions extends Partial<Limits> {
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** TCP port (default 9092; 0 picks a free port). */
  port?: number;
  /** Host advertised in Metadata/FindCoordinator (default: host, or 127.0.0.1 when binding 0.0.0.0/::). */
  advertisedHost?: string;
  /** Port advertised (default: the bound port). */
  advertisedPort?: number;
  /** Data directory; omit for in-memory storage. */
  dataDir?: string;
  /** fsync policy for data-dir mode (default 'interval'). */
  fsync?: FsyncPolicy;
  /** fsync period for fsync='interval' (default 1000 ms). */
  fsyncIntervalMs?: number;
  /** Create unknown topics on Metadata requests that allow it (default true). */
  autoCreateTopics?: boolean;
  /** Partition count for auto-created topics and CreateTopics with -1 (default 6). */
  defaultPartitions?: number;
  /** Per-partition retention in bytes (default 1 GiB; -1 = unlimited). Whole old segments are dropped. */
  retentionBytes?: number;
  /** Retention by record timestamp (default 7 days; -1 = unlimited). */
  retentionMs?: number;
  /** How often retention is enforced (default 30000 ms). */
  retentionCheckIntervalMs?: number;
  /** Segment file size before rolling (default 64 MiB). */
  segmentBytes?: number;
  /** Largest accepted record batch (default 64 MiB); bigger batches get MESSAGE_TOO_LARGE. */
  maxBatchBytes?: number;
  /** Verify CRC-32C of produced batches (default true); bad batches get CORRUPT_MESSAGE. */
  verifyCrc?: boolean;
  /** Accepted consumer session timeouts (default 1000..1800000 ms). */
  minSessionTimeoutMs?: number;
  maxSessionTimeoutMs?: number;
  /** Logger with info/warn/error (and optional debug); default JSON lines on stderr at `logLevel`. */
  logger?: Logger;
  /** Level for the default logger (default 'info'). */
  logLevel?: LogLevel;
}

export interface BrokerHandle {
  host: string;
  port: number;
  /** "host:port" to pass to kafkajs `brokers`. */
  brokers: string;
  close(): Promise<void>;
}

export class Broker {
  readonly log: Logger;
  readonly store: Store;
  readonly coord: Coordinator;
  readonly apis: ReadonlyMap<number, Api> = APIS;
  readonly limits: Limits;
  readonly autoCreate: boolean;
  readonly defaultPartitions: number;
  /** Request bytes received and not yet handled, over all connections (limits.maxBufferedRequestBytes). */
  bufferedBytes = 0;
  private readonly conns = new Set<Conn>();
  private readonly warnings: WarnLimiter;
  private server: net.Server | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private nextConnId = 1;
  advertisedHost = '127.0.0.1';
  advertisedPort = 9092;

  constructor(readonly opts: BrokerOptions) {
    this.log = opts.logger ?? jsonLogger(opts.logLevel ?? 'info');
    this.warnings = new WarnLimiter((m, f) => this.log.warn(m, f));
    this.limits = resolveLimits(opts);
    this.autoCreate = opts.autoCreateTopics ?? true;
    this.defaultPartitions = opts.defaultPartitions ?? 6;
    this.store = new Store({
      dataDir: opts.dataDir,
      fsync: opts.fsync ?? 'interval',
      fsyncIntervalMs: opts.fsyncIntervalMs ?? 1000,
      segmentBytes: opts.segmentBytes ?? 64 * 1024 * 1024,
      retentionBytes: opts.retentionBytes ?? 1024 * 1024 * 1024,
      retentionMs: opts.retentionMs ?? 7 * 24 * 3600 * 1000,
      retentionCheckIntervalMs: opts.retentionCheckIntervalMs ?? 30_000,
      maxBatchBytes: opts.maxBatchBytes ?? 64 * 1024 * 1024,
      verifyCrc: opts.verifyCrc ?? true,
      logger: this.log,
    });
    this.coord = new Coordinator({
      minSessionTimeoutMs: opts.minSessionTimeoutMs ?? 1000,
      maxSessionTimeoutMs: opts.maxSessionTimeoutMs ?? 30 * 60 * 1000,
      logger: this.log,
    });
  }

  async start(): Promise<BrokerHandle> {
    this.store.open();
    const host = this.opts.host ?? '127.0.0.1';
    const server = net.createServer({ noDelay: true }, (sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 9092, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('kafka-lite: server error', { err: err.message }));
    const { idleTimeoutMs, requestReadTimeoutMs } = this.limits;
    const every = Math.min(1000, Math.max(25, Math.min(idleTimeoutMs, requestReadTimeoutMs) / 4));
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const c of [...this.conns]) c.checkTimeouts(now);
    }, every);
    this.sweeper.unref();
    const addr = server.address() as net.AddressInfo;
    this.advertisedHost = this.opts.advertisedHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
    this.advertisedPort = this.opts.advertisedPort ?? addr.port;
    const brokers = `${this.advertisedHost.includes(':') ? `[${this.advertisedHost}]` : this.advertisedHost}:${this.advertisedPort}`;
    this.log.info('kafka-lite: listening', {
      bind: `${host}:${addr.port}`,
      advertised: brokers,
      storage: this.opts.dataDir ?? 'memory',
      fsync: this.opts.dataDir ? (this.opts.fsync ?? 'interval') : undefined,
    });
    let closing: Promise<void> | null = null;
    return {
      host: this.advertisedHost,
      port: this.advertisedPort,
      brokers,
      close: () => (closing ??= this.close()),
    };
  }

  private accept(sock: net.Socket): void {
    if (this.conns.size >= this.limits.maxConnections) {
      this.warn('maxConnections', 'kafka-lite: refusing connection: maxConnections reached', {
        maxConnections: this.limits.maxConnections,
        remote: sock.remoteAddress,
      });
      sock.on('error', () => {});
      sock.destroy();
      return;
    }
    const conn = new Conn(this, sock, this.nextConnId++);
    this.conns.add(conn);
    this.log.debug?.('kafka-lite: connection opened', { conn: conn.id, remote: conn.clientHost });
  }

  private async close(): Promise<void> {
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    if (this.sweeper) clearInterval(this.sweeper);
    for (const c of [...this.conns]) c.close();
    await closed;
    this.coord.close();
    await this.store.close();
    this.log.info('kafka-lite: stopped');
  }

  // ---- shared by connections and API handlers ----------------------------------------------

  connectionClosed(conn: Conn): void {
    this.conns.delete(conn);
  }

  /** Rate-limited warning (per kind), so a flood of bad clients cannot flood the log. */
  warn(kind: string, msg: string, fields?: Record<string, unknown>): void {
    this.warnings.warnOnce(kind, msg, fields);
  }

  /**
   * Over maxBufferedRequestBytes: closes the connections whose pending frame started earliest (a stalled or
   * trickling sender holds its bytes longest) until the total fits. Active senders finish frames in milliseconds.
   */
  evictBuffered(): void {
    const pending = [...this.conns].filter((c) => c.held > 0).sort((a, b) => a.frameStartedAt - b.frameStartedAt);
    for (const c of pending) {
      if (this.bufferedBytes <= this.limits.maxBufferedRequestBytes) return;
      c.fail('buffered request bytes over maxBufferedRequestBytes (oldest pending frame dropped first)', {
        held: c.held,
        maxBufferedRequestBytes: this.limits.maxBufferedRequestBytes,
      });
    }
  }

  partition(topic: string, p: number): PartitionLog | undefined {
    return this.store.topics.get(topic)?.partitions[p];
  }

  canCreatePartitions(n: number): boolean {
    let total = 0;
    for (const t of this.store.topics.values()) total += t.partitions.length;
    return total + n <= this.limits.maxPartitions;
  }

  partitionLimitMessage(): string {
    return `the broker's partition limit (maxPartitions=${this.limits.maxPartitions}) is reached`;
  }

  /** Creates a topic unless it would exceed maxPartitions (then returns the refusal message). */
  createTopic(name: string, partitions: number, how: 'created' | 'auto-created'): Topic | string {
    if (!this.canCreatePartitions(partitions)) {
      const msg = this.partitionLimitMessage();
      this.warn('maxPartitions', `kafka-lite: topic not ${how}: ${msg}`, { topic: name, partitions });
      return msg;
    }
    const t = this.store.createTopic(name, partitions);
    this.log.info(`kafka-lite: ${how} topic`, { topic: name, partitions });
    return t;
  }
}

export async function startBroker(opts: BrokerOptions = {}): Promise<BrokerHandle> {
  return new Broker(opts).start();
}
