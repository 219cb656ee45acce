// ListOffsets (2): -1 → log end offset, -2 → log start offset, a timestamp → the first batch whose max timestamp
// reaches it (batch granularity: clients skip the earlier records of that batch). v0 answers in its old offsets list.
import { ErrorCode } from '../protocol.js';
import type { PartitionLog } from '../store.js';
import { defineApi, type Body } from './types.js';

interface ListOffsetsRequest {
  topics: { name: string; partitions: { partitionIndex: number; timestamp: number }[] }[];
}

function lookup(log: PartitionLog, ts: number): { timestamp: number; offset: number } {
  if (ts === -1) return { timestamp: -1, offset: log.leo };
  if (ts === -2) return { timestamp: -1, offset: log.logStart };
  for (const s of log.segments) {
    if (s.maxTs >= 0 && s.maxTs < ts) continue;
    for (const e of s.entries) if (e.maxTs >= ts) return { timestamp: e.maxTs, offset: e.base };
  }
  return { timestamp: -1, offset: -1 };
}

const respond = (req: ListOffsetsRequest, part: (name: string, index: number, ts: number) => Body): Body => ({
  throttleTimeMs: 0,
  topics: req.topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.map((p) => part(t.name, p.partitionIndex, p.timestamp)),
  })),
});

const failed = (partitionIndex: number, errorCode: number): Body => ({
  partitionIndex,
  errorCode,
  oldStyleOffsets: [],
  timestamp: -1,
  offset: -1,
});

export const listOffsets = defineApi<ListOffsetsRequest>({
  name: 'ListOffsets',
  versions: [0, 6],
  handle: (req, { broker }) =>
    respond(req, (name, partitionIndex, ts) => {
      const log = broker.partition(name, partitionIndex);
      if (!log) return failed(partitionIndex, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
      const found = lookup(log, ts);
      return {
        partitionIndex,
        errorCode: 0,
        oldStyleOffsets: found.offset >= 0 ? [found.offset] : [],
        timestamp: found.timestamp,
        offset: found.offset,
      };
    }),
  errorResponse: (req, code) => respond(req, (_name, index) => failed(index, code)),
});
