// One file (~320 lines): the Reader and the Writer are the two halves of the wire primitives (each encoding is
// read in one and written in the other) and share the error codes.
// Wire primitives: a zero-copy request reader with a decode budget, a chunked response writer, error codes.
// Both speak the classic encodings (int16-length strings, int32-count arrays) and the "flexible" ones of KIP-482
// (unsigned-varint lengths + 1, tagged fields); the schema codec (schema/codec.ts) picks per field and version.

export class ProtocolError extends Error {}
/** A request that is well-formed but would cost more than the broker allows to decode (limits.ts). */
export class DecodeBudgetError extends ProtocolError {}

export const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  MESSAGE_TOO_LARGE: 10,
  COORDINATOR_NOT_AVAILABLE: 15,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  INVALID_REQUIRED_ACKS: 21,
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
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 43,
  POLICY_VIOLATION: 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  INVALID_PRODUCER_EPOCH: 47,
  NON_EMPTY_GROUP: 68,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  INVALID_RECORD: 87,
  UNKNOWN_TOPIC_ID: 100,
} as const;

/** Per-request decode allowance: every decoded struct/array element spends one object. */
export interface DecodeBudget {
  objects: number;
}

export class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly budget: DecodeBudget = { objects: Infinity },
    /** Exclusive end (a tagged field's value is read through a Reader bounded to its size). */
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  private need(n: number): void {
    if (this.pos + n > this.end)
      throw new ProtocolError(`truncated request (need ${n} bytes at ${this.pos}/${this.end})`);
  }
  remaining(): number {
    return this.end - this.pos;
  }
  /** Spends `n` objects of the decode budget. */
  spend(n: number): void {
    this.budget.objects -= n;
    if (this.budget.objects < 0) throw new DecodeBudgetError('request exceeds the per-request decode budget');
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
  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** int64 as a JS number (offsets, timestamps and producer ids stay far below 2^53). */
  int64(): number {
    this.need(8);
    const v = Number(this.buf.readBigInt64BE(this.pos));
    this.pos += 8;
    return v;
  }
  float64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  /** 16 raw bytes (a view). */
  uuid(): Buffer {
    this.need(16);
    const b = this.buf.subarray(this.pos, this.pos + 16);
    this.pos += 16;
    return b;
  }
  /** Unsigned LEB128 varint (lengths, counts and tags of flexible versions); at most 32 bits. */
  uvarint(): number {
    let v = 0;
    for (let shift = 0; shift <= 28; shift += 7) {
      const b = this.int8() & 0xff;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new ProtocolError('varint too long');
  }
  /** Length prefix of a string (flexible: uvarint len+1, 0 = null; classic: int16, -1 = null). -1 = null. */
  private strLen(flex: boolean): number {
    return flex ? this.uvarint() - 1 : this.int16();
  }
  nstring(flex = false): string | null {
    const len = this.strLen(flex);
    if (len < 0) return null;
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  string(flex = false): string {
    return this.nstring(flex) ?? '';
  }
  /** Nullable bytes, returned as a view into the request buffer (no copy). */
  nbytes(flex = false): Buffer | null {
    const len = flex ? this.uvarint() - 1 : this.int32();
    if (len < 0) return null;
    this.need(len);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  bytes(flex = false): Buffer {
    return this.nbytes(flex) ?? Buffer.alloc(0);
  }
  /**
   * An array's element count (-1 = null), checked against what the rest of the request can hold: every element
   * occupies at least `minElementBytes`, so a count the remaining bytes cannot back is rejected before any
   * allocation. The elements are charged to the decode budget up front.
   */
  count(flex: boolean, minElementBytes: number): number {
    const n = flex ? this.uvarint() - 1 : this.int32();
    if (n < 0) return -1;
    if (n * Math.max(1, minElementBytes) > this.remaining())
      throw new ProtocolError(`array count ${n} exceeds request size`);
    this.spend(n);
    return n;
  }
  /** Number of fields in a tagged-field section (a plain uvarint, no +1), bounded like an array count. */
  tagCount(): number {
    const n = this.uvarint();
    if (n * 2 > this.remaining()) throw new ProtocolError(`tagged field count ${n} exceeds request size`);
    this.spend(n);
    return n;
  }
  /** Classic nullable array of structs/scalars decoded by `fn` (kept for hand-written decoders and tests). */
  narray<T>(fn: (r: Reader) => T, flex = false, minElementBytes = 1): T[] | null {
    const n = this.count(flex, minElementBytes);
    if (n < 0) return null;
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = fn(this);
    return out;
  }
  array<T>(fn: (r: Reader) => T, flex = false, minElementBytes = 1): T[] {
    return this.narray(fn, flex, minElementBytes) ?? [];
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
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
  uint16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
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
  float64(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }
  uvarint(v: number): this {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
    return this;
  }
  nstring(s: string | null | undefined, flex = false): this {
    if (s == null) return flex ? this.uvarint(0) : this.int16(-1);
    const len = Buffer.byteLength(s);
    if (flex) this.uvarint(len + 1);
    else this.int16(len);
    this.ensure(len);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    return this;
  }
  string(s: string, flex = false): this {
    return this.nstring(s, flex);
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
  /** Length prefix of bytes/records: flexible uvarint len+1 (0 = null), classic int32 (-1 = null). */
  bytesLength(len: number, flex = false): this {
    return flex ? this.uvarint(len + 1) : this.int32(len);
  }
  nbytes(b: Buffer | null | undefined, flex = false): this {
    if (b == null) return this.bytesLength(-1, flex);
    this.bytesLength(b.length, flex);
    return this.raw(b);
  }
  /** Bytes given as several chunks (a fetched record set). */
  bytesChunks(parts: Buffer[], len: number, flex = false): this {
    this.bytesLength(len, flex);
    for (const p of parts) this.raw(p);
    return this;
  }
  /** Array count: flexible uvarint n+1 (0 = null), classic int32 (-1 = null). */
  count(n: number, flex = false): this {
    return flex ? this.uvarint(n + 1) : this.int32(n);
  }
  array<T>(items: readonly T[], fn: (w: this, item: T) => void, flex = false): this {
    this.count(items.length, flex);
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
