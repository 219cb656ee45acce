// Produce (0): validates and appends RecordBatch v2 data (stored opaquely, never decompressed) and answers with
// the base offsets. acks=0 gets no response. v0-v2 are served for clients that only check the range (librdkafka
// ≤ 2.11 enables gzip/snappy/lz4 only when the broker lists Produce v0), but legacy magic 0/1 message sets get
// UNSUPPORTED_FOR_MESSAGE_FORMAT: this broker stores and serves magic 2 only.
import { ErrorCode } from '../protocol.js';
import { defineApi, type Body } from './types.js';

interface ProduceRequest {
  acks: number;
  topicData: { name: string; partitionData: { index: number; records: Buffer | null }[] }[];
}

interface PartitionResult {
  index: number;
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
  errorMessage?: string | null;
}

const respond = (
  req: ProduceRequest,
  result: (name: string, index: number, records: Buffer | null) => PartitionResult,
): Body => ({
  responses: req.topicData.map((t) => ({
    name: t.name,
    partitionResponses: t.partitionData.map((p) => result(t.name, p.index, p.records)),
  })),
  throttleTimeMs: 0,
});

const failed = (index: number, errorCode: number, errorMessage: string | null = null): PartitionResult => ({
  index,
  errorCode,
  baseOffset: -1,
  logStartOffset: -1,
  errorMessage,
});

export const produce = defineApi<ProduceRequest>({
  name: 'Produce',
  versions: [0, 9],
  handle(req, { broker, version }) {
    const badAcks = req.acks !== 0 && req.acks !== 1 && req.acks !== -1;
    let appended = false;
    const body = respond(req, (name, index, records) => {
      const log = broker.partition(name, index);
      if (badAcks) return failed(index, ErrorCode.INVALID_REQUIRED_ACKS);
      if (!log) return failed(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
      if (!records || records.length === 0) return failed(index, ErrorCode.CORRUPT_MESSAGE);
      if (records.length > 16 && records[16]! < 2)
        return failed(index, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, 'only RecordBatch v2 (magic 2) is supported');
      const res = log.append(records, { allowZstd: version >= 7 });
      if (res.error === 0) appended = true;
      else broker.log.debug?.('kafka-lite: produce rejected', { topic: name, partition: index, error: res.error });
      return { index, errorCode: res.error, baseOffset: res.base, logStartOffset: log.logStart };
    });
    if (req.acks === 0) return null;
    if (appended && broker.store.persistent && broker.store.opts.fsync === 'always')
      return broker.store.sync().then(() => body);
    return body;
  },
  errorResponse: (req, code) => respond(req, (_name, index) => failed(index, code)),
});
