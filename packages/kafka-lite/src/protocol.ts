// Wire primitives: a zero-copy request reader, a chunked response writer, error codes, CRC-32C.

export class ProtocolError extends Error {}

export const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  MESSAGE_TOO_LARGE: 10,
  COORDINATOR_NOT_AVAILABLE: 15,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REQUEST: 42,
  INVALID_PRODUCER_EPOCH: 47,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  NON_EMPTY_GROUP: 68,
  INVALID_RECORD: 87,
} as const;

export class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    start = 0,
  ) {
    this.pos = start;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new ProtocolError(`truncated request (need ${n} bytes at ${this.pos}/${this.buf.length})`);
  }
  remaining(): number {
    return this.buf.length - this.pos;
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** int64 as a JS number (offsets and timestamps stay far below 2^53). */
  int64(): number {
    this.need(8);
    const v = Number(this.buf.readBigInt64BE(this.pos));
    this.pos += 8;
    return v;
  }
  int64Big(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  nstring(): string | null {
    const len = this.int16();
    if (len < 0) return null;
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  string(): string {
    return this.nstring() ?? '';
  }
  /** Nullable bytes, returned as a view into the request buffer (no copy). */
  nbytes(): Buffer | null {
    const len = this.int32();
    if (len < 0) return null;
    this.need(len);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  bytes(): Buffer {
    return this.nbytes() ?? Buffer.alloc(0);
  }
  /** Nullable array; returns null for a -1 count. */
  narray<T>(fn: (r: Reader) => T): T[] | null {
    const n = this.int32();
    if (n < 0) return null;
    // Each element is at least one byte: a cheap guard against absurd counts.
    if (n > this.remaining()) throw new ProtocolError(`array count ${n} exceeds request size`);
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = fn(this);
    return out;
  }
  array<T>(fn: (r: Reader) => T): T[] {
    return this.narray(fn) ?? [];
  }
}

/**
 * Builds a response frame as a list of chunks: small fields go into a scratch buffer,
 * large record sets are appended by reference (no copy).
 */
export class Writer {
  private chunks: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;
  private total = 0;
  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) {
      this.chunks.push(this.buf.subarray(0, this.pos));
      this.total += this.pos;
    }
    this.buf = Buffer.allocUnsafe(Math.max(n, 4096));
    this.pos = 0;
  }
  int8(v: number): this {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  int64(v: number | bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(typeof v === 'bigint' ? v : BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }
  nstring(s: string | null | undefined): this {
    if (s == null) return this.int16(-1);
    const len = Buffer.byteLength(s);
    this.int16(len);
    this.ensure(len);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    return this;
  }
  string(s: string): this {
    return this.nstring(s);
  }
  raw(b: Buffer): this {
    if (b.length <= 512) {
      this.ensure(b.length);
      b.copy(this.buf, this.pos);
      this.pos += b.length;
      return this;
    }
    if (this.pos > 0) {
      this.chunks.push(this.buf.subarray(0, this.pos));
      this.total += this.pos;
      this.buf = this.buf.subarray(this.pos);
      this.pos = 0;
    }
    this.chunks.push(b);
    this.total += b.length;
    return this;
  }
  nbytes(b: Buffer | null | undefined): this {
    if (b == null) return this.int32(-1);
    this.int32(b.length);
    return this.raw(b);
  }
  /** Bytes given as several chunks (a fetched record set). */
  bytesChunks(parts: Buffer[], len: number): this {
    this.int32(len);
    for (const p of parts) this.raw(p);
    return this;
  }
  array<T>(items: readonly T[], fn: (w: this, item: T) => void): this {
    this.int32(items.length);
    for (const it of items) fn(this, it);
    return this;
  }
  length(): number {
    return this.total + this.pos;
  }
  finish(): Buffer[] {
    if (this.pos > 0) {
      this.chunks.push(this.buf.subarray(0, this.pos));
      this.total += this.pos;
      this.buf = this.buf.subarray(this.pos);
      this.pos = 0;
    }
    return this.chunks;
  }
}

// ---- CRC-32C (Castagnoli), slicing-by-8 -------------------------------------------------------

const CRC_TABLES: Int32Array[] = (() => {
  const tables: Int32Array[] = [];
  const t0 = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t0[i] = c;
  }
  tables.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1]!;
    const cur = new Int32Array(256);
    for (let i = 0; i < 256; i++) cur[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!;
    tables.push(cur);
  }
  return tables;
})();

export function crc32c(buf: Buffer, start = 0, end = buf.length): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  let crc = -1;
  let i = start;
  const end8 = end - ((end - start) & 7);
  while (i < end8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ crc;
    crc =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[buf[i + 4]!]! ^
      t2[buf[i + 5]!]! ^
      t1[buf[i + 6]!]! ^
      t0[buf[i + 7]!]!;
    i += 8;
  }
  while (i < end) crc = t0[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

// ---- RecordBatch v2 header helpers -------------------------------------------------------------

export const BATCH_HEADER_SIZE = 61;

export interface BatchInfo {
  size: number; // total bytes of this batch
  lastOffsetDelta: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

/** Reads the header of the batch at `pos`; returns null if it is incomplete or not a v2 batch. */
export function readBatchHeader(buf: Buffer, pos: number, avail = buf.length - pos): BatchInfo | null | 'bad' {
  if (avail < BATCH_HEADER_SIZE) return null;
  const batchLength = buf.readInt32BE(pos + 8);
  if (batchLength < BATCH_HEADER_SIZE - 12) return 'bad';
  if (buf.readInt8(pos + 16) !== 2) return 'bad';
  const size = batchLength + 12;
  return {
    size,
    lastOffsetDelta: buf.readInt32BE(pos + 23),
    maxTimestamp: Number(buf.readBigInt64BE(pos + 35)),
    producerId: Number(buf.readBigInt64BE(pos + 43)),
    producerEpoch: buf.readInt16BE(pos + 51),
    baseSequence: buf.readInt32BE(pos + 53),
    recordCount: buf.readInt32BE(pos + 57),
  };
}

export function batchCrcOk(buf: Buffer, pos: number, size: number): boolean {
  return buf.readUInt32BE(pos + 17) === crc32c(buf, pos + 21, pos + size);
}
