// TCP server, framing, per-connection in-order responses and the API handlers.
import net from 'node:net';
import { Coordinator } from './groups.js';
import { jsonLogger, type Logger, type LogLevel } from './logger.js';
import { ErrorCode, ProtocolError, Reader, Writer } from './protocol.js';
import { Store, validTopicName, type FsyncPolicy, type PartitionLog } from './store.js';

export interface BrokerOptions {
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
  /** Largest accepted request frame (default 100 MiB); bigger frames close the connection. */
  maxRequestBytes?: number;
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

const NODE_ID = 1;

/** API key -> [min, max] advertised; equal to what kafkajs 2.2.4 implements (fact sheet §2). */
const API_VERSIONS: Record<number, [number, number]> = {
  0: [7, 7], // Produce
  1: [11, 11], // Fetch
  2: [3, 3], // ListOffsets
  3: [6, 6], // Metadata
  8: [5, 5], // OffsetCommit
  9: [4, 4], // OffsetFetch
  10: [2, 2], // FindCoordinator
  11: [5, 5], // JoinGroup
  12: [3, 3], // Heartbeat
  13: [3, 3], // LeaveGroup
  14: [3, 3], // SyncGroup
  15: [2, 2], // DescribeGroups
  16: [2, 2], // ListGroups
  18: [0, 2], // ApiVersions
  19: [3, 3], // CreateTopics
  20: [1, 1], // DeleteTopics
  22: [1, 1], // InitProducerId
};

interface Ctx {
  r: Reader;
  version: number;
  clientId: string;
  conn: Conn;
}
type Reply = Writer | null;
type Handler = (ctx: Ctx) => Reply | Promise<Reply>;

interface Slot {
  done: boolean;
  chunks: Buffer[] | null;
  correlationId: number;
}

class Conn {
  chunks: Buffer[] = [];
  buffered = 0;
  queue: Slot[] = [];
  closed = false;
  parked = new Set<() => void>(); // cleanup callbacks for parked fetches
  readonly clientHost: string;
  constructor(
    readonly broker: Broker,
    readonly socket: net.Socket,
    readonly id: number,
  ) {
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => broker.log.debug?.('kafka-lite: connection error', { conn: id, err: err.message }));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => {
      if (!this.closed) socket.resume();
    });
  }

  private onClose(): void {
    this.closed = true;
    for (const c of [...this.parked]) c();
    this.parked.clear();
    this.queue = [];
    this.chunks = [];
    this.broker.coord.connectionClosed(this);
    this.broker.conns.delete(this);
  }

  fail(reason: string, fields: Record<string, unknown> = {}): void {
    if (this.closed) return;
    this.broker.log.warn(`kafka-lite: closing connection: ${reason}`, {
      conn: this.id,
      remote: this.clientHost,
      ...fields,
    });
    this.closed = true;
    this.socket.destroy();
  }

  private peekInt32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    const b = Buffer.concat(this.chunks, Math.min(this.buffered, 16));
    return b.readInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.chunks.push(d);
    this.buffered += d.length;
    while (!this.closed && this.buffered >= 4) {
      const size = this.peekInt32();
      if (size < 10 || size > this.broker.maxRequestBytes) {
        this.fail(size < 10 ? 'invalid frame size' : 'request exceeds maxRequestBytes', { size });
        return;
      }
      if (this.buffered < size + 4) return;
      this.take(4);
      const frame = this.take(size);
      this.handleFrame(frame);
    }
  }

  private handleFrame(frame: Buffer): void {
    const r = new Reader(frame);
    let apiKey = -1;
    let version = -1;
    let correlationId = 0;
    let clientId = '';
    try {
      apiKey = r.int16();
      version = r.int16();
      correlationId = r.int32();
      clientId = r.nstring() ?? '';
    } catch {
      this.fail('malformed request header');
      return;
    }
    const range = API_VERSIONS[apiKey];
    const handler = this.broker.handlers[apiKey];
    if (!range || !handler) {
      this.fail('unsupported api key', { apiKey, version });
      return;
    }
    const slot: Slot = { done: false, chunks: null, correlationId };
    if (version < range[0] || version > range[1]) {
      if (apiKey === 18) {
        // Reply in the v0 layout with UNSUPPORTED_VERSION so the client retries with a lower version.
        this.queue.push(slot);
        this.complete(slot, this.broker.apiVersionsBody(ErrorCode.UNSUPPORTED_VERSION, 0));
        return;
      }
      this.fail('unsupported api version', { apiKey, version, supported: range });
      return;
    }
    this.queue.push(slot);
    let res: Reply | Promise<Reply>;
    try {
      res = handler({ r, version, clientId, conn: this });
    } catch (err) {
      this.onHandlerError(err, apiKey, version);
      return;
    }
    if (res instanceof Promise) {
      res.then(
        (w) => this.complete(slot, w),
        (err: unknown) => this.onHandlerError(err, apiKey, version),
      );
    } else this.complete(slot, res);
  }

  private onHandlerError(err: unknown, apiKey: number, version: number): void {
    if (err instanceof ProtocolError) this.fail(`malformed request: ${err.message}`, { apiKey, version });
    else {
      this.broker.log.error('kafka-lite: handler failed', {
        apiKey,
        version,
        err: err instanceof Error ? err.stack : String(err),
      });
      this.fail('internal error', { apiKey, version });
    }
  }

  private complete(slot: Slot, w: Writer | null): void {
    if (this.closed) return;
    slot.done = true;
    if (w) {
      const chunks = w.finish();
      const head = Buffer.allocUnsafe(8);
      head.writeInt32BE(w.length() + 4, 0);
      head.writeInt32BE(slot.correlationId, 4);
      chunks.unshift(head);
      slot.chunks = chunks;
    }
    if (this.queue[0] !== slot) return;
    const s = this.socket;
    s.cork();
    while (this.queue.length > 0 && this.queue[0]!.done) {
      const head = this.queue.shift()!;
      if (head.chunks) for (const c of head.chunks) s.write(c);
    }
    s.uncork();
    if (s.writableNeedDrain) s.pause();
  }
}

export class Broker {
  readonly log: Logger;
  readonly store: Store;
  readonly coord: Coordinator;
  readonly conns = new Set<Conn>();
  readonly handlers: Record<number, Handler>;
  readonly maxRequestBytes: number;
  readonly autoCreate: boolean;
  readonly defaultPartitions: number;
  private server: net.Server | null = null;
  private nextConnId = 1;
  advertisedHost = '127.0.0.1';
  advertisedPort = 9092;

  constructor(readonly opts: BrokerOptions) {
    this.log = opts.logger ?? jsonLogger(opts.logLevel ?? 'info');
    this.maxRequestBytes = opts.maxRequestBytes ?? 100 * 1024 * 1024;
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
    this.handlers = {
      0: (c) => this.produce(c),
      1: (c) => this.fetch(c),
      2: (c) => this.listOffsets(c),
      3: (c) => this.metadata(c),
      8: (c) => this.offsetCommit(c),
      9: (c) => this.offsetFetch(c),
      10: (c) => this.findCoordinator(c),
      11: (c) => this.joinGroup(c),
      12: (c) => this.heartbeat(c),
      13: (c) => this.leaveGroup(c),
      14: (c) => this.syncGroup(c),
      15: (c) => this.describeGroups(c),
      16: () => this.listGroups(),
      18: (c) => this.apiVersionsBody(0, c.version),
      19: (c) => this.createTopics(c),
      20: (c) => this.deleteTopics(c),
      22: (c) => this.initProducerId(c),
    };
  }

  async start(): Promise<BrokerHandle> {
    this.store.open();
    const host = this.opts.host ?? '127.0.0.1';
    const server = net.createServer({ noDelay: true }, (sock) => {
      const conn = new Conn(this, sock, this.nextConnId++);
      this.conns.add(conn);
      this.log.debug?.('kafka-lite: connection opened', { conn: conn.id, remote: conn.clientHost });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 9092, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('kafka-lite: server error', { err: err.message }));
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

  private async close(): Promise<void> {
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const c of [...this.conns]) {
      c.closed = true;
      c.socket.destroy();
    }
    await closed;
    this.coord.close();
    await this.store.close();
    this.log.info('kafka-lite: stopped');
  }

  // ---- helpers -----------------------------------------------------------------------------

  private partition(topic: string, p: number): PartitionLog | undefined {
    return this.store.topics.get(topic)?.partitions[p];
  }

  apiVersionsBody(error: number, version: number): Writer {
    const w = new Writer();
    w.int16(error);
    const keys = Object.keys(API_VERSIONS).map(Number);
    w.array(keys, (w, k) => {
      const [min, max] = API_VERSIONS[k]!;
      w.int16(k).int16(min).int16(max);
    });
    if (version >= 1) w.int32(0);
    return w;
  }

  // ---- Metadata / admin --------------------------------------------------------------------

  private metadata({ r }: Ctx): Writer {
    const topics = r.narray((r) => r.string());
    const allowAuto = r.bool();
    const w = new Writer(1024);
    w.int32(0); // throttle
    w.int32(1).int32(NODE_ID).string(this.advertisedHost).int32(this.advertisedPort).nstring(null);
    w.nstring(this.store.clusterId);
    w.int32(NODE_ID);
    const names = topics ?? [...this.store.topics.keys()];
    w.int32(names.length);
    for (const name of names) {
      let t = this.store.topics.get(name);
      if (!t) {
        if (!validTopicName(name)) {
          w.int16(ErrorCode.INVALID_TOPIC_EXCEPTION).string(name).bool(false).int32(0);
          continue;
        }
        if (!(allowAuto && this.autoCreate)) {
          w.int16(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION).string(name).bool(false).int32(0);
          continue;
        }
        t = this.store.createTopic(name, this.defaultPartitions);
        this.log.info('kafka-lite: auto-created topic', { topic: name, partitions: this.defaultPartitions });
      }
      w.int16(0).string(name).bool(false);
      w.int32(t.partitions.length);
      for (let p = 0; p < t.partitions.length; p++) {
        w.int16(0).int32(p).int32(NODE_ID);
        w.int32(1).int32(NODE_ID); // replicas
        w.int32(1).int32(NODE_ID); // isr
        w.int32(0); // offline
      }
    }
    return w;
  }

  private createTopics({ r }: Ctx): Writer {
    const reqs = r.array((r) => {
      const name = r.string();
      const numPartitions = r.int32();
      r.int16(); // replication factor: accepted and treated as 1
      const assignments = r.array((r) => {
        r.int32();
        r.array((r) => r.int32());
        return 1;
      });
      r.array((r) => {
        r.string();
        r.nstring();
        return 1;
      });
      return { name, numPartitions, assignments: assignments.length };
    });
    r.int32(); // timeout
    const validateOnly = r.bool();
    const seen = new Map<string, number>();
    for (const t of reqs) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
    const w = new Writer();
    w.int32(0);
    w.array(reqs, (w, t) => {
      const n = t.numPartitions === -1 ? (t.assignments > 0 ? t.assignments : this.defaultPartitions) : t.numPartitions;
      let err = 0;
      let msg: string | null = null;
      if ((seen.get(t.name) ?? 0) > 1) [err, msg] = [ErrorCode.INVALID_REQUEST, 'duplicate topic in request'];
      else if (!validTopicName(t.name)) [err, msg] = [ErrorCode.INVALID_TOPIC_EXCEPTION, 'invalid topic name'];
      else if (this.store.topics.has(t.name))
        [err, msg] = [ErrorCode.TOPIC_ALREADY_EXISTS, `Topic '${t.name}' already exists.`];
      else if (n <= 0 || n > 10000) [err, msg] = [ErrorCode.INVALID_PARTITIONS, 'invalid partition count'];
      if (!err && !validateOnly) {
        this.store.createTopic(t.name, n);
        this.log.info('kafka-lite: created topic', { topic: t.name, partitions: n });
      }
      w.string(t.name).int16(err).nstring(msg);
    });
    return w;
  }

  private deleteTopics({ r }: Ctx): Writer {
    const names = r.array((r) => r.string());
    r.int32();
    const w = new Writer();
    w.int32(0);
    w.array(names, (w, name) => {
      const ok = this.store.deleteTopic(name);
      if (ok) this.log.info('kafka-lite: deleted topic', { topic: name });
      w.string(name).int16(ok ? 0 : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    });
    return w;
  }

  private initProducerId({ r }: Ctx): Writer {
    r.nstring();
    r.int32();
    const w = new Writer();
    w.int32(0).int16(0).int64(this.store.allocateProducerId()).int16(0);
    return w;
  }

  // ---- Produce / Fetch / ListOffsets -------------------------------------------------------

  private produce({ r }: Ctx): Reply | Promise<Reply> {
    r.nstring(); // transactional id
    const acks = r.int16();
    r.int32(); // timeout
    const topics = r.array((r) => ({
      name: r.string(),
      parts: r.array((r) => ({ index: r.int32(), records: r.nbytes() })),
    }));
    const badAcks = acks !== 0 && acks !== 1 && acks !== -1;
    let appended = false;
    const results = topics.map((t) => ({
      name: t.name,
      parts: t.parts.map((p) => {
        if (badAcks) return { index: p.index, error: 21, base: -1, start: -1 };
        const log = this.partition(t.name, p.index);
        if (!log) return { index: p.index, error: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, base: -1, start: -1 };
        if (!p.records || p.records.length === 0)
          return { index: p.index, error: ErrorCode.CORRUPT_MESSAGE, base: -1, start: -1 };
        const res = log.append(p.records);
        if (res.error === 0) appended = true;
        else if (res.error !== 0)
          this.log.debug?.('kafka-lite: produce rejected', { topic: t.name, partition: p.index, error: res.error });
        return { index: p.index, error: res.error, base: res.base, start: log.logStart };
      }),
    }));
    if (acks === 0) return null;
    const build = (): Writer => {
      const w = new Writer();
      w.array(results, (w, t) => {
        w.string(t.name);
        w.array(t.parts, (w, p) => {
          w.int32(p.index).int16(p.error).int64(p.base).int64(-1).int64(p.start);
        });
      });
      w.int32(0);
      return w;
    };
    if (appended && this.store.persistent && this.store.opts.fsync === 'always') return this.store.sync().then(build);
    return build();
  }

  private fetch(ctx: Ctx): Writer | Promise<Writer> {
    const { r, conn } = ctx;
    r.int32(); // replica id
    const maxWait = r.int32();
    const minBytes = r.int32();
    const maxBytes = r.int32();
    r.int8(); // isolation
    r.int32(); // session id
    r.int32(); // session epoch
    const topics = r.array((r) => ({
      name: r.string(),
      parts: r.array((r) => {
        const index = r.int32();
        r.int32(); // current leader epoch
        const offset = r.int64();
        r.int64(); // log start offset
        const max = r.int32();
        return { index, offset, max };
      }),
    }));
    r.array((r) => {
      r.string();
      r.array((r) => r.int32());
      return 0;
    });
    r.string(); // rack

    // Returns -1 when any partition has an error (respond at once), else the bytes available.
    const available = (): number => {
      let n = 0;
      for (const t of topics) {
        for (const p of t.parts) {
          const log = this.partition(t.name, p.index);
          if (!log || p.offset > log.leo || p.offset < log.logStart) return -1;
          n += log.availableBytes(p.offset);
        }
      }
      return n;
    };
    const respond = (): Writer => {
      const w = new Writer(512);
      w.int32(0).int16(0).int32(0);
      let budget = maxBytes;
      let any = false;
      w.int32(topics.length);
      for (const t of topics) {
        w.string(t.name);
        w.int32(t.parts.length);
        for (const p of t.parts) {
          const log = this.partition(t.name, p.index);
          if (!log) {
            w.int32(p.index)
              .int16(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
              .int64(-1)
              .int64(-1)
              .int64(-1)
              .int32(0)
              .int32(-1)
              .int32(0);
            continue;
          }
          const res = log.read(p.offset, Math.min(p.max, Math.max(budget, 0)), !any);
          if (res.len > 0) any = true;
          budget -= res.len;
          w.int32(p.index).int16(res.error).int64(log.leo).int64(log.leo).int64(log.logStart);
          w.int32(0); // aborted transactions
          w.int32(-1); // preferred read replica
          w.bytesChunks(res.chunks, res.len);
        }
      }
      return w;
    };
    const avail = available();
    if (avail < 0 || avail >= Math.max(minBytes, 1) || maxWait <= 0) return respond();
    return new Promise<Writer>((resolve) => {
      const logs: PartitionLog[] = [];
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        for (const l of logs) l.waiters.delete(wake);
        conn.parked.delete(cancel);
        resolve(respond());
      };
      const cancel = (): void => {
        done = true;
        clearTimeout(timer);
        for (const l of logs) l.waiters.delete(wake);
      };
      const wake = (): void => {
        const a = available();
        if (a < 0 || a >= Math.max(minBytes, 1)) finish();
      };
      const timer = setTimeout(finish, maxWait);
      for (const t of topics) {
        for (const p of t.parts) {
          const log = this.partition(t.name, p.index);
          if (log) {
            log.waiters.add(wake);
            logs.push(log);
          }
        }
      }
      conn.parked.add(cancel);
    });
  }

  private listOffsets({ r }: Ctx): Writer {
    r.int32();
    r.int8();
    const topics = r.array((r) => ({
      name: r.string(),
      parts: r.array((r) => ({ index: r.int32(), ts: r.int64() })),
    }));
    const w = new Writer();
    w.int32(0);
    w.array(topics, (w, t) => {
      w.string(t.name);
      w.array(t.parts, (w, p) => {
        const log = this.partition(t.name, p.index);
        if (!log) {
          w.int32(p.index).int16(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION).int64(-1).int64(-1);
          return;
        }
        if (p.ts === -1) w.int32(p.index).int16(0).int64(-1).int64(log.leo);
        else if (p.ts === -2) w.int32(p.index).int16(0).int64(-1).int64(log.logStart);
        else {
          // First batch whose max timestamp reaches ts (batch granularity; clients skip earlier records).
          let found = -1;
          let foundTs = -1;
          outer: for (const s of log.segments) {
            if (s.maxTs >= 0 && s.maxTs < p.ts) continue;
            for (const e of s.entries) {
              if (e.maxTs >= p.ts) {
                found = e.base;
                foundTs = e.maxTs;
                break outer;
              }
            }
          }
          w.int32(p.index).int16(0).int64(foundTs).int64(found);
        }
      });
    });
    return w;
  }

  // ---- Groups ------------------------------------------------------------------------------

  private findCoordinator({ r }: Ctx): Writer {
    r.string();
    r.int8();
    const w = new Writer();
    w.int32(0).int16(0).nstring(null).int32(NODE_ID).string(this.advertisedHost).int32(this.advertisedPort);
    return w;
  }

  private async joinGroup({ r, clientId, conn }: Ctx): Promise<Writer> {
    const groupId = r.string();
    const sessionTimeout = r.int32();
    const rebalanceTimeout = r.int32();
    const memberId = r.string();
    const instanceId = r.nstring();
    const protocolType = r.string();
    const protocols = r.array((r) => ({ name: r.string(), metadata: Buffer.from(r.bytes()) }));
    const res = await this.coord.join({
      groupId,
      sessionTimeout,
      rebalanceTimeout,
      memberId,
      instanceId,
      protocolType,
      protocols,
      clientId,
      clientHost: conn.clientHost,
      owner: conn,
    });
    const w = new Writer();
    w.int32(0).int16(res.error).int32(res.generation).string(res.protocol).string(res.leader).string(res.memberId);
    w.array(res.members, (w, m) => {
      w.string(m.memberId).nstring(m.instanceId).nbytes(m.metadata);
    });
    return w;
  }

  private async syncGroup({ r, conn }: Ctx): Promise<Writer> {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    r.nstring();
    const assignments = r.array((r) => ({ memberId: r.string(), assignment: Buffer.from(r.bytes()) }));
    const res = await this.coord.sync({ groupId, generation, memberId, assignments, owner: conn });
    const w = new Writer();
    w.int32(0).int16(res.error).nbytes(res.assignment);
    return w;
  }

  private heartbeat({ r }: Ctx): Writer {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    r.nstring();
    const w = new Writer(16);
    w.int32(0).int16(this.coord.heartbeat(groupId, generation, memberId));
    return w;
  }

  private leaveGroup({ r }: Ctx): Writer {
    const groupId = r.string();
    const members = r.array((r) => ({ id: r.string(), instanceId: r.nstring() }));
    const w = new Writer();
    w.int32(0).int16(0);
    w.array(members, (w, m) => {
      w.string(m.id).nstring(m.instanceId).int16(this.coord.leave(groupId, m.id));
    });
    return w;
  }

  private offsetCommit({ r }: Ctx): Writer | Promise<Writer> {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    const topics = r.array((r) => ({
      name: r.string(),
      parts: r.array((r) => ({ index: r.int32(), offset: r.int64(), metadata: r.nstring() })),
    }));
    const groupErr = groupId ? this.coord.checkCommit(groupId, generation, memberId) : ErrorCode.INVALID_GROUP_ID;
    const accepted: { topic: string; partition: number; offset: number; metadata: string | null }[] = [];
    const errs = topics.map((t) =>
      t.parts.map((p) => {
        if (groupErr) return groupErr;
        if (!this.partition(t.name, p.index)) return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        accepted.push({ topic: t.name, partition: p.index, offset: p.offset, metadata: p.metadata });
        return 0;
      }),
    );
    if (accepted.length > 0) this.store.commit(groupId, accepted);
    const w = new Writer();
    w.int32(0);
    w.int32(topics.length);
    topics.forEach((t, i) => {
      w.string(t.name);
      w.int32(t.parts.length);
      t.parts.forEach((p, j) => w.int32(p.index).int16(errs[i]![j]!));
    });
    if (accepted.length > 0 && this.store.persistent && this.store.opts.fsync === 'always')
      return this.store.sync().then(() => w);
    return w;
  }

  private offsetFetch({ r }: Ctx): Writer {
    const groupId = r.string();
    const topics = r.narray((r) => ({ name: r.string(), parts: r.array((r) => r.int32()) }));
    const commits = this.store.getCommits(groupId);
    const list =
      topics ??
      [...(commits?.entries() ?? [])].map(([name, m]) => ({ name, parts: [...m.keys()].sort((a, b) => a - b) }));
    const w = new Writer();
    w.int32(0);
    w.array(list, (w, t) => {
      w.string(t.name);
      const tm = commits?.get(t.name);
      w.array(t.parts, (w, p) => {
        const c = tm?.get(p);
        w.int32(p)
          .int64(c ? c.offset : -1)
          .nstring(c ? c.metadata : '')
          .int16(0);
      });
    });
    w.int16(0);
    return w;
  }

  private describeGroups({ r }: Ctx): Writer {
    const ids = r.array((r) => r.string());
    const w = new Writer();
    w.int32(0);
    w.array(ids, (w, id) => {
      const d = this.coord.describe(id);
      let state: string = d.state;
      let protocolType = d.protocolType;
      if (state === 'Dead' && this.store.getCommits(id)?.size) {
        state = 'Empty';
        protocolType = 'consumer';
      }
      w.int16(0).string(id).string(state).string(protocolType).string(d.protocol);
      w.array(d.members, (w, m) => {
        w.string(m.id).string(m.clientId).string(m.clientHost).nbytes(m.metadata).nbytes(m.assignment);
      });
    });
    return w;
  }

  private listGroups(): Writer {
    const ids = new Map<string, string>();
    for (const id of this.store.commits.keys()) ids.set(id, 'consumer');
    for (const [id, g] of this.coord.groups) ids.set(id, g.protocolType ?? 'consumer');
    const w = new Writer();
    w.int32(0).int16(0);
    w.array([...ids], (w, [id, type]) => {
      w.string(id).string(type);
    });
    return w;
  }
}

export async function startBroker(opts: BrokerOptions = {}): Promise<BrokerHandle> {
  return new Broker(opts).start();
}
