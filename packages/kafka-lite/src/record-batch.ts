// RecordBatch v2 (magic 2) helpers: CRC-32C and header parsing. The broker stores batches opaquely and only
// reads these headers (offsets, sequence numbers, codec) — it never decompresses records.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

// ---- CRC-32C (Castagnoli) -------------------------------------------------------------------

/** CRC-32C of buf[start, end): @node-rs/crc32's native code (the same one the bus gives kafkajs). */
export function crc32c(buf: Buffer, start = 0, end = buf.length): number {
  return nativeCrc32c(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) >>> 0;
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
