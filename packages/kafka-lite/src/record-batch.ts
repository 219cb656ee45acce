// RecordBatch v2 (magic 2) helpers: CRC-32C and header parsing. The broker stores batches opaquely and only
// reads these headers (offsets, sequence numbers, codec) — it never decompresses records.

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

/** Compression codec ids (attributes bits 0-2). */
export const Codec = { NONE: 0, GZIP: 1, SNAPPY: 2, LZ4: 3, ZSTD: 4 } as const;

/** The codec of the batch at `pos` (assumes a complete v2 header there). */
export const batchCodec = (buf: Buffer, pos: number): number => buf.readInt16BE(pos + 21) & 7;

/** Whether any batch in these concatenated-batch chunks uses `codec` (chunks hold whole batches, as read()). */
export function containsCodec(chunks: Buffer[], codec: number): boolean {
  for (const c of chunks) {
    for (let pos = 0; pos + BATCH_HEADER_SIZE <= c.length; pos += c.readInt32BE(pos + 8) + 12) {
      if (batchCodec(c, pos) === codec) return true;
    }
  }
  return false;
}
