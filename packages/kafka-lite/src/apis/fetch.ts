// Fetch (1): whole stored batches from the batch holding fetch_offset (at least one batch, KIP-74), long-polled
// until min_bytes are available or max_wait_ms passes, parked asynchronously (never blocking other connections).
// Sessionless (session id 0). v0-v3 are not served: their clients expect magic 0/1 data, which would need
// down-conversion. Versions below 10 cannot carry zstd batches: such partitions get UNSUPPORTED_COMPRESSION_TYPE.
import { ErrorCode } from '../protocol.js';
import { containsCodec, Codec } from '../record-batch.js';
import type { PartitionLog } from '../store.js';
import { defineApi, type Body } from './types.js';

interface FetchRequest {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  topics: { topic: string; partitions: { partition: number; fetchOffset: number; partitionMaxBytes: number }[] }[];
}

const empty = (partitionIndex: number, errorCode: number): Body => ({
  partitionIndex,
  errorCode,
  highWatermark: -1,
  lastStableOffset: -1,
  logStartOffset: -1,
  abortedTransactions: [],
  preferredReadReplica: -1,
  records: null,
});

export const fetch = defineApi<FetchRequest>({
  name: 'Fetch',
  versions: [4, 12],
  handle(req, { broker, conn, version }) {
    const minBytes = Math.max(req.minBytes, 1);
    // Like Kafka's fetch.max.bytes: a client cannot ask for more than the broker's cap in one response.
    const maxBytes = Math.min(req.maxBytes, broker.limits.maxFetchBytes);
    // Returns -1 when any partition has an error (respond at once), else the bytes available.
    const available = (): number => {
      let n = 0;
      for (const t of req.topics) {
        for (const p of t.partitions) {
          const log = broker.partition(t.topic, p.partition);
          if (!log || p.fetchOffset > log.leo || p.fetchOffset < log.logStart) return -1;
          n += log.availableBytes(p.fetchOffset);
        }
      }
      return n;
    };
    const respond = (): Body => {
      let budget = maxBytes;
      let any = false;
      const responses = req.topics.map((t) => ({
        topic: t.topic,
        partitions: t.partitions.map((p) => {
          const log = broker.partition(t.topic, p.partition);
          if (!log) return empty(p.partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
          const res = log.read(p.fetchOffset, Math.min(p.partitionMaxBytes, Math.max(budget, 0)), !any);
          if (version < 10 && containsCodec(res.chunks, Codec.ZSTD))
            return empty(p.partition, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE);
          if (res.len > 0) any = true;
          budget -= res.len;
          return {
            partitionIndex: p.partition,
            errorCode: res.error,
            highWatermark: log.leo,
            lastStableOffset: log.leo,
            logStartOffset: log.logStart,
            abortedTransactions: [],
            preferredReadReplica: -1,
            records: { chunks: res.chunks, len: res.len },
          };
        }),
      }));
      return { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses };
    };
    const avail = available();
    if (avail < 0 || avail >= minBytes || req.maxWaitMs <= 0) return respond();
    return new Promise<Body>((resolve) => {
      const logs: PartitionLog[] = [];
      let done = false;
      const cancel = (): void => {
        done = true;
        clearTimeout(timer);
        for (const l of logs) l.waiters.delete(wake);
      };
      const finish = (): void => {
        if (done) return;
        cancel();
        conn.parked.delete(cancel);
        resolve(respond());
      };
      const wake = (): void => {
        const a = available();
        if (a < 0 || a >= minBytes) finish();
      };
      const timer = setTimeout(finish, req.maxWaitMs);
      for (const t of req.topics) {
        for (const p of t.partitions) {
          const log = broker.partition(t.topic, p.partition);
          if (log) {
            log.waiters.add(wake);
            logs.push(log);
          }
        }
      }
      conn.parked.add(cancel);
    });
  },
  errorResponse: (req, code) => ({
    throttleTimeMs: 0,
    errorCode: code,
    sessionId: 0,
    responses: req.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map((p) => empty(p.partition, code)),
    })),
  }),
});
