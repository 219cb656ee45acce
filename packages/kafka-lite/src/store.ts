// One file (~700 lines): the partition log (in memory or segment files: loading, appends, fsync, retention,
// producer idempotence) and the store of topics and committed offsets that owns the logs; they share one on-disk
// layout.
// Partition logs (in memory or append-only segment files) and committed group offsets.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ErrorCode } from './protocol.js';
import { BATCH_HEADER_SIZE, Codec, batchCodec, batchCrcOk, readBatchHeader } from './record-batch.js';
import type { Logger } from './logger.js';

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface StoreOptions {
  dataDir?: string | undefined;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  segmentBytes: number;
  retentionBytes: number; // per partition, -1 = unlimited
  retentionMs: number; // -1 = unlimited
  retentionCheckIntervalMs: number;
  maxBatchBytes: number;
  verifyCrc: boolean;
  logger: Logger;
}

interface Entry {
  base: number;
  last: number;
  pos: number; // byte position inside the segment
  size: number;
  cum: number; // bytes appended to the partition before this entry
  maxTs: number;
  buf?: Buffer; // in-memory mode only
}

interface Segment {
  base: number;
  entries: Entry[];
  bytes: number;
  maxTs: number;
  fd: number; // -1 in memory mode
  file?: string;
}

interface SeqBatch {
  firstSeq: number;
  lastSeq: number;
  base: number;
}
interface ProducerState {
  epoch: number;
  batches: SeqBatch[]; // last 5
}

const SEG_NAME_RE = /^(\d{20})\.log$/;
const segName = (base: number): string => `${String(base).padStart(20, '0')}.log`;

export class PartitionLog {
  segments: Segment[] = [];
  leo = 0;
  cumEnd = 0;
  waiters = new Set<() => void>();
  producers = new Map<number, ProducerState>();

  constructor(
    readonly store: Store,
    readonly dir: string | undefined,
  ) {}

  get logStart(): number {
    const s = this.segments[0];
    if (!s) return this.leo;
    return s.entries[0]?.base ?? s.base;
  }

  get sizeBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.bytes;
    return n;
  }

  active(): Segment {
    let seg = this.segments[this.segments.length - 1];
    if (!seg || (seg.bytes >= this.store.opts.segmentBytes && seg.entries.length > 0)) {
      seg = this.newSegment(this.leo);
    }
    return seg;
  }

  newSegment(base: number): Segment {
    const seg: Segment = { base, entries: [], bytes: 0, maxTs: -1, fd: -1 };
    if (this.dir) {
      seg.file = path.join(this.dir, segName(base));
      seg.fd = fs.openSync(seg.file, 'a+');
    }
    this.segments.push(seg);
    return seg;
  }

  /** Index of the entry holding `offset` as [segmentIndex, entryIndex], or null. */
  locate(offset: number): [number, number] | null {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    let si = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segs[mid]!.base <= offset) {
        si = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (si < 0) si = 0;
    for (; si < segs.length; si++) {
      const es = segs[si]!.entries;
      if (es.length === 0 || es[es.length - 1]!.last < offset) continue;
      let l = 0;
      let h = es.length - 1;
      while (l < h) {
        const m = (l + h) >> 1;
        if (es[m]!.last >= offset) h = m;
        else l = m + 1;
      }
      return [si, l];
    }
    return null;
  }

  availableBytes(offset: number): number {
    if (offset >= this.leo) return 0;
    const loc = this.locate(offset);
    if (!loc) return 0;
    return this.cumEnd - this.segments[loc[0]]!.entries[loc[1]]!.cum;
  }

  /**
   * Reads whole batches starting with the one containing `offset`, up to maxBytes
   * (at least one batch when `atLeastOne`).
   */
  read(offset: number, maxBytes: number, atLeastOne: boolean): { error: number; chunks: Buffer[]; len: number } {
    if (offset === this.leo) return { error: 0, chunks: [], len: 0 };
    if (offset > this.leo || offset < this.logStart)
      return { error: ErrorCode.OFFSET_OUT_OF_RANGE, chunks: [], len: 0 };
    const loc = this.locate(offset);
    if (!loc) return { error: 0, chunks: [], len: 0 };
    const chunks: Buffer[] = [];
    let len = 0;
    let [si, ei] = loc;
    let full = false;
    for (; si < this.segments.length && !full; si++, ei = 0) {
      const seg = this.segments[si]!;
      let runStart = -1;
      let runLen = 0;
      for (; ei < seg.entries.length; ei++) {
        const e = seg.entries[ei]!;
        if (len + e.size > maxBytes && !(atLeastOne && len === 0)) {
          full = true;
          break;
        }
        if (e.buf) chunks.push(e.buf);
        else {
          if (runStart < 0) runStart = e.pos;
          runLen += e.size;
        }
        len += e.size;
      }
      if (runLen > 0) chunks.push(this.readFile(seg, runStart, runLen));
    }
    return { error: 0, chunks, len };
  }

  private readFile(seg: Segment, pos: number, len: number): Buffer {
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = fs.readSync(seg.fd, out, done, len - done, pos + done);
      if (n <= 0) throw new Error(`short read in ${seg.file}`);
      done += n;
    }
    return out;
  }

  /** Idempotence check; returns null to append, or a result to return without appending. */
  checkSequence(pid: number, epoch: number, firstSeq: number, count: number): { error: number; base: number } | null {
    if (pid < 0) return null;
    const st = this.producers.get(pid);
    if (!st || epoch > st.epoch) return null;
    if (epoch < st.epoch) return { error: ErrorCode.INVALID_PRODUCER_EPOCH, base: -1 };
    const lastSeq = firstSeq + count - 1;
    for (const b of st.batches) {
      if (b.firstSeq === firstSeq && b.lastSeq === lastSeq) return { error: 0, base: b.base };
    }
    const newest = st.batches[st.batches.length - 1];
    if (newest && firstSeq !== ((newest.lastSeq + 1) | 0) && firstSeq !== 0) {
      return { error: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, base: -1 };
    }
    return null;
  }

  recordSequence(pid: number, epoch: number, firstSeq: number, count: number, base: number): void {
    if (pid < 0) return;
    let st = this.producers.get(pid);
    if (!st || epoch > st.epoch) {
      st = { epoch, batches: [] };
      this.producers.set(pid, st);
    }
    st.batches.push({ firstSeq, lastSeq: firstSeq + count - 1, base });
    if (st.batches.length > 5) st.batches.shift();
  }

  /**
   * Validates and appends the concatenated batches of one produce partition.
   * Returns the base offset of the first batch.
   */
  append(records: Buffer, appendOpts: { allowZstd?: boolean } = {}): { error: number; base: number } {
    const opts = this.store.opts;
    const allowZstd = appendOpts.allowZstd;
    // Validate every batch before touching the log.
    const infos: {
      pos: number;
      size: number;
      lastDelta: number;
      maxTs: number;
      pid: number;
      epoch: number;
      seq: number;
      count: number;
    }[] = [];
    let pos = 0;
    while (pos < records.length) {
      const h = readBatchHeader(records, pos);
      if (h === null || h === 'bad' || pos + h.size > records.length)
        return { error: ErrorCode.CORRUPT_MESSAGE, base: -1 };
      if (h.size > opts.maxBatchBytes) return { error: ErrorCode.MESSAGE_TOO_LARGE, base: -1 };
      if (h.lastOffsetDelta < 0 || h.size < BATCH_HEADER_SIZE) return { error: ErrorCode.CORRUPT_MESSAGE, base: -1 };
      if (opts.verifyCrc && !batchCrcOk(records, pos, h.size)) return { error: ErrorCode.CORRUPT_MESSAGE, base: -1 };
      // Stored opaquely, but only with a codec consumers know (zstd needs Produce v7+, as in Kafka).
      const codec = batchCodec(records, pos);
      if (codec > Codec.ZSTD || (codec === Codec.ZSTD && allowZstd === false))
        return { error: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, base: -1 };
      infos.push({
        pos,
        size: h.size,
        lastDelta: h.lastOffsetDelta,
        maxTs: h.maxTimestamp,
        pid: h.producerId,
        epoch: h.producerEpoch,
        seq: h.baseSequence,
        count: h.recordCount,
      });
      pos += h.size;
    }
    if (infos.length === 0) return { error: ErrorCode.CORRUPT_MESSAGE, base: -1 };
    const first = infos[0]!;
    const dup = this.checkSequence(first.pid, first.epoch, first.seq, first.count);
    if (dup) return dup;

    let firstBase = -1;
    const keepView = this.dir === undefined && records.buffer.byteLength <= records.length * 2;
    for (const b of infos) {
      const base = this.leo;
      if (firstBase < 0) firstBase = base;
      records.writeBigInt64BE(BigInt(base), b.pos);
      const seg = this.active();
      const view = records.subarray(b.pos, b.pos + b.size);
      const entry: Entry = {
        base,
        last: base + b.lastDelta,
        pos: seg.bytes,
        size: b.size,
        cum: this.cumEnd,
        maxTs: b.maxTs,
      };
      if (seg.fd >= 0) {
        let done = 0;
        while (done < view.length) done += fs.writeSync(seg.fd, view, done, view.length - done, seg.bytes + done);
        this.store.markDirty(seg.fd);
      } else {
        entry.buf = keepView ? view : Buffer.from(view);
      }
      seg.entries.push(entry);
      seg.bytes += b.size;
      if (b.maxTs > seg.maxTs) seg.maxTs = b.maxTs;
      this.cumEnd += b.size;
      this.leo = entry.last + 1;
      this.recordSequence(b.pid, b.epoch, b.seq, b.count, base);
    }
    if (this.waiters.size > 0) {
      for (const w of [...this.waiters]) w();
    }
    return { error: 0, base: firstBase };
  }

  /** Drops whole old segments according to size/age retention. */
  enforceRetention(now: number): void {
    const { retentionBytes, retentionMs } = this.store.opts;
    let total = this.sizeBytes;
    while (this.segments.length > 0) {
      const seg = this.segments[0]!;
      const isActive = this.segments.length === 1;
      const bySize = retentionBytes >= 0 && total > retentionBytes && (!isActive || false);
      const byAge = retentionMs >= 0 && seg.entries.length > 0 && seg.maxTs >= 0 && seg.maxTs < now - retentionMs;
      if (!bySize && !byAge) break;
      if (isActive) {
        if (!byAge) break;
        // Everything expired: roll so that the (now empty) new segment stays active.
        this.newSegment(this.leo);
      }
      this.segments.shift();
      total -= seg.bytes;
      this.closeSegment(seg, true);
    }
  }

  closeSegment(seg: Segment, remove: boolean): void {
    if (seg.fd >= 0) {
      this.store.dirty.delete(seg.fd);
      try {
        fs.closeSync(seg.fd);
      } catch {
        /* ignore */
      }
      seg.fd = -1;
      if (remove && seg.file) fs.rmSync(seg.file, { force: true });
    }
  }

  close(): void {
    for (const s of this.segments) this.closeSegment(s, false);
  }

  /** Rebuilds the index from segment files (torn tail writes are truncated). */
  load(): void {
    if (!this.dir) return;
    const names = fs
      .readdirSync(this.dir)
      .filter((n) => SEG_NAME_RE.test(n))
      .sort();
    let expected = -1;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const base = Number(SEG_NAME_RE.exec(name)![1]);
      const file = path.join(this.dir, name);
      if (expected >= 0 && base !== expected) {
        this.store.opts.logger.warn('kafka-lite: segment gap, discarding later segments', { file });
        for (const n of names.slice(i)) fs.rmSync(path.join(this.dir, n), { force: true });
        break;
      }
      const isLast = i === names.length - 1;
      const fd = fs.openSync(file, 'a+');
      const seg: Segment = { base, entries: [], bytes: 0, maxTs: -1, fd, file };
      const fileSize = fs.fstatSync(fd).size;
      const whole = isLast ? fs.readFileSync(file) : null;
      const hdr = Buffer.allocUnsafe(BATCH_HEADER_SIZE);
      let pos = 0;
      let next = base;
      let bad = false;
      while (pos < fileSize) {
        let buf: Buffer;
        let at: number;
        if (whole) {
          buf = whole;
          at = pos;
        } else {
          const n = fs.readSync(fd, hdr, 0, BATCH_HEADER_SIZE, pos);
          buf = hdr.subarray(0, n);
          at = 0;
        }
        const h = readBatchHeader(buf, at, whole ? fileSize - pos : buf.length);
        if (h === null || h === 'bad' || pos + h.size > fileSize) {
          bad = true;
          break;
        }
        const bo = Number(buf.readBigInt64BE(at));
        if (bo !== next || (whole && this.store.opts.verifyCrc && !batchCrcOk(whole, pos, h.size))) {
          bad = true;
          break;
        }
        const entry: Entry = {
          base: bo,
          last: bo + h.lastOffsetDelta,
          pos,
          size: h.size,
          cum: this.cumEnd,
          maxTs: h.maxTimestamp,
        };
        seg.entries.push(entry);
        seg.bytes += h.size;
        if (h.maxTimestamp > seg.maxTs) seg.maxTs = h.maxTimestamp;
        this.cumEnd += h.size;
        this.recordSequence(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, bo);
        if (h.producerId > this.store.maxSeenProducerId) this.store.maxSeenProducerId = h.producerId;
        next = entry.last + 1;
        pos += h.size;
      }
      if (bad || pos < fileSize) {
        this.store.opts.logger.warn('kafka-lite: truncating torn/corrupt segment tail', {
          file,
          validBytes: pos,
          fileBytes: fileSize,
        });
        fs.ftruncateSync(fd, pos);
        fs.fsyncSync(fd);
      }
      this.segments.push(seg);
      this.leo = next;
      expected = next;
      if (bad && !isLast) {
        for (const n of names.slice(i + 1)) fs.rmSync(path.join(this.dir, n), { force: true });
        break;
      }
    }
  }
}

export class Topic {
  constructor(
    readonly name: string,
    readonly partitions: PartitionLog[],
    readonly dir: string | undefined,
  ) {}
}

export interface Commit {
  offset: number;
  metadata: string | null;
}

const TOPIC_RE = /^[a-zA-Z0-9._-]{1,249}$/;
export function validTopicName(name: string): boolean {
  return TOPIC_RE.test(name) && name !== '.' && name !== '..';
}

export class Store {
  readonly topics = new Map<string, Topic>();
  /** group -> topic -> partition -> commit */
  readonly commits = new Map<string, Map<string, Map<number, Commit>>>();
  readonly dirty = new Set<number>();
  maxSeenProducerId = -1;
  nextProducerId = 1000;
  clusterId = 'kafka-lite';
  private offsetsFd = -1;
  private offsetsLines = 0;
  private syncing: Promise<void> | null = null;
  private syncQueued: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];

  constructor(readonly opts: StoreOptions) {}

  get persistent(): boolean {
    return this.opts.dataDir !== undefined;
  }

  open(): void {
    const dir = this.opts.dataDir;
    if (dir) {
      fs.mkdirSync(path.join(dir, 'topics'), { recursive: true });
      const metaFile = path.join(dir, 'broker.json');
      if (fs.existsSync(metaFile)) {
        try {
          const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { clusterId?: string; nextProducerId?: number };
          if (meta.clusterId) this.clusterId = meta.clusterId;
          if (meta.nextProducerId) this.nextProducerId = meta.nextProducerId;
        } catch {
          /* rewritten below */
        }
      } else {
        this.clusterId = `kafka-lite-${randomUUID()}`;
      }
      for (const name of fs.readdirSync(path.join(dir, 'topics'))) {
        const tdir = path.join(dir, 'topics', name);
        let n = 0;
        try {
          n = (JSON.parse(fs.readFileSync(path.join(tdir, 'meta.json'), 'utf8')) as { partitions: number }).partitions;
        } catch {
          this.opts.logger.warn('kafka-lite: ignoring topic directory without meta.json', { dir: tdir });
          continue;
        }
        const parts: PartitionLog[] = [];
        for (let p = 0; p < n; p++) {
          const pdir = path.join(tdir, String(p));
          fs.mkdirSync(pdir, { recursive: true });
          const log = new PartitionLog(this, pdir);
          log.load();
          parts.push(log);
        }
        this.topics.set(name, new Topic(name, parts, tdir));
      }
      if (this.maxSeenProducerId >= this.nextProducerId) this.nextProducerId = this.maxSeenProducerId + 1;
      this.writeBrokerMeta();
      this.loadOffsets();
      if (this.opts.fsync === 'interval') {
        const t = setInterval(() => void this.sync(), this.opts.fsyncIntervalMs);
        t.unref();
        this.timers.push(t);
      }
    }
    const rt = setInterval(() => this.enforceRetention(), this.opts.retentionCheckIntervalMs);
    rt.unref();
    this.timers.push(rt);
  }

  private writeBrokerMeta(): void {
    if (!this.opts.dataDir) return;
    const file = path.join(this.opts.dataDir, 'broker.json');
    fs.writeFileSync(file + '.tmp', JSON.stringify({ clusterId: this.clusterId, nextProducerId: this.nextProducerId }));
    fs.renameSync(file + '.tmp', file);
  }

  allocateProducerId(): number {
    const id = this.nextProducerId++;
    this.writeBrokerMeta();
    return id;
  }

  enforceRetention(): void {
    const now = Date.now();
    for (const t of this.topics.values()) for (const p of t.partitions) p.enforceRetention(now);
  }

  createTopic(name: string, partitions: number): Topic {
    let tdir: string | undefined;
    if (this.opts.dataDir) {
      tdir = path.join(this.opts.dataDir, 'topics', name);
      fs.rmSync(tdir, { recursive: true, force: true });
      fs.mkdirSync(tdir, { recursive: true });
    }
    const parts: PartitionLog[] = [];
    for (let p = 0; p < partitions; p++) {
      let pdir: string | undefined;
      if (tdir) {
        pdir = path.join(tdir, String(p));
        fs.mkdirSync(pdir, { recursive: true });
      }
      parts.push(new PartitionLog(this, pdir));
    }
    if (tdir) {
      fs.writeFileSync(path.join(tdir, 'meta.json.tmp'), JSON.stringify({ partitions }));
      fs.renameSync(path.join(tdir, 'meta.json.tmp'), path.join(tdir, 'meta.json'));
    }
    const topic = new Topic(name, parts, tdir);
    this.topics.set(name, topic);
    return topic;
  }

  deleteTopic(name: string): boolean {
    const t = this.topics.get(name);
    if (!t) return false;
    this.topics.delete(name);
    for (const p of t.partitions) {
      p.close();
      for (const w of [...p.waiters]) w();
    }
    if (t.dir) fs.rmSync(t.dir, { recursive: true, force: true });
    let changed = false;
    for (const g of this.commits.values()) if (g.delete(name)) changed = true;
    if (changed) this.persistOffsetRecord({ dt: name });
    return true;
  }

  // ---- committed offsets -------------------------------------------------------------------

  getCommits(group: string): Map<string, Map<number, Commit>> | undefined {
    return this.commits.get(group);
  }

  commit(
    group: string,
    entries: { topic: string; partition: number; offset: number; metadata: string | null }[],
  ): void {
    let g = this.commits.get(group);
    if (!g) {
      g = new Map();
      this.commits.set(group, g);
    }
    for (const e of entries) {
      let t = g.get(e.topic);
      if (!t) {
        t = new Map();
        g.set(e.topic, t);
      }
      t.set(e.partition, { offset: e.offset, metadata: e.metadata });
    }
    if (this.persistent)
      this.persistOffsetRecord({ g: group, c: entries.map((e) => [e.topic, e.partition, e.offset, e.metadata]) });
  }

  private offsetsFile(): string {
    return path.join(this.opts.dataDir!, 'group-offsets.jsonl');
  }

  private persistOffsetRecord(rec: unknown): void {
    if (this.offsetsFd < 0) return;
    fs.writeSync(this.offsetsFd, JSON.stringify(rec) + '\n');
    this.markDirty(this.offsetsFd);
    if (++this.offsetsLines > 200_000) this.compactOffsets();
  }

  private loadOffsets(): void {
    const file = this.offsetsFile();
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, 'utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let rec: { g?: string; c?: [string, number, number, string | null][]; dt?: string };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue; // torn tail line
        }
        if (rec.dt !== undefined) {
          for (const g of this.commits.values()) g.delete(rec.dt);
        } else if (rec.g !== undefined && rec.c) {
          let g = this.commits.get(rec.g);
          if (!g) this.commits.set(rec.g, (g = new Map()));
          for (const [t, p, o, m] of rec.c) {
            let tm = g.get(t);
            if (!tm) g.set(t, (tm = new Map()));
            tm.set(p, { offset: o, metadata: m });
          }
        }
      }
    }
    this.compactOffsets();
  }

  private compactOffsets(): void {
    const file = this.offsetsFile();
    const lines: string[] = [];
    for (const [group, g] of this.commits) {
      const c: [string, number, number, string | null][] = [];
      for (const [t, tm] of g) for (const [p, v] of tm) c.push([t, p, v.offset, v.metadata]);
      if (c.length) lines.push(JSON.stringify({ g: group, c }));
    }
    fs.writeFileSync(file + '.tmp', lines.map((l) => l + '\n').join(''));
    const fd = fs.openSync(file + '.tmp', 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    if (this.offsetsFd >= 0) {
      this.dirty.delete(this.offsetsFd);
      fs.closeSync(this.offsetsFd);
    }
    fs.renameSync(file + '.tmp', file);
    this.offsetsFd = fs.openSync(file, 'a');
    this.offsetsLines = lines.length;
  }

  // ---- durability --------------------------------------------------------------------------

  markDirty(fd: number): void {
    if (this.opts.fsync !== 'never') this.dirty.add(fd);
  }

  /** Group commit: fsyncs every file written so far. Concurrent callers share rounds. */
  sync(): Promise<void> {
    if (!this.syncing) {
      if (this.dirty.size === 0) return Promise.resolve();
      this.syncing = this.doSync().finally(() => {
        this.syncing = null;
      });
      return this.syncing;
    }
    if (!this.syncQueued) {
      this.syncQueued = this.syncing.then(() => {
        this.syncQueued = null;
        return this.sync();
      });
    }
    return this.syncQueued;
  }

  private async doSync(): Promise<void> {
    const fds = [...this.dirty];
    this.dirty.clear();
    await Promise.all(
      fds.map(
        (fd) =>
          new Promise<void>((resolve) => {
            fs.fdatasync(fd, () => resolve());
          }),
      ),
    );
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.opts.fsync !== 'never') {
      for (const t of this.topics.values())
        for (const p of t.partitions) for (const s of p.segments) if (s.fd >= 0) this.dirty.add(s.fd);
      if (this.offsetsFd >= 0) this.dirty.add(this.offsetsFd);
    }
    await this.sync();
    if (this.syncQueued) await this.syncQueued;
    for (const t of this.topics.values()) for (const p of t.partitions) p.close();
    if (this.offsetsFd >= 0) {
      fs.closeSync(this.offsetsFd);
      this.offsetsFd = -1;
    }
  }
}
