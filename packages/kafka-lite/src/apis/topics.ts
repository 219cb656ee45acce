// CreateTopics (19) / DeleteTopics (20). Partition count -1 means the broker default (or the number of manual
// assignments); the replication factor is accepted and treated as 1 (single node). DeleteTopics by topic id
// (v6) gets UNKNOWN_TOPIC_ID: this broker assigns no topic ids.
import { ErrorCode } from '../protocol.js';
import { validTopicName } from '../store.js';
import { defineApi } from './types.js';

interface CreateTopicsRequest {
  topics: { name: string; numPartitions: number; assignments: unknown[] }[];
  validateOnly: boolean;
}

export const createTopics = defineApi<CreateTopicsRequest>({
  name: 'CreateTopics',
  versions: [0, 7],
  handle(req, { broker }) {
    const seen = new Map<string, number>();
    for (const t of req.topics) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
    const topics = req.topics.map((t) => {
      const n = t.numPartitions === -1 ? t.assignments.length || broker.defaultPartitions : t.numPartitions;
      let err = 0;
      let msg: string | null = null;
      if ((seen.get(t.name) ?? 0) > 1) [err, msg] = [ErrorCode.INVALID_REQUEST, 'duplicate topic in request'];
      else if (!validTopicName(t.name)) [err, msg] = [ErrorCode.INVALID_TOPIC_EXCEPTION, 'invalid topic name'];
      else if (broker.store.topics.has(t.name))
        [err, msg] = [ErrorCode.TOPIC_ALREADY_EXISTS, `Topic '${t.name}' already exists.`];
      else if (n <= 0 || n > 10000) [err, msg] = [ErrorCode.INVALID_PARTITIONS, 'invalid partition count'];
      else if (!broker.canCreatePartitions(n))
        [err, msg] = [ErrorCode.POLICY_VIOLATION, broker.partitionLimitMessage()];
      if (!err && !req.validateOnly) broker.createTopic(t.name, n, 'created');
      return {
        name: t.name,
        errorCode: err,
        errorMessage: msg,
        numPartitions: err ? -1 : n,
        replicationFactor: err ? -1 : 1,
        configs: err ? null : [],
      };
    });
    return { throttleTimeMs: 0, topics };
  },
});

interface DeleteTopicsRequest {
  topicNames: string[];
  topics: { name: string | null; topicId: Buffer }[];
}

export const deleteTopics = defineApi<DeleteTopicsRequest>({
  name: 'DeleteTopics',
  versions: [0, 6],
  handle(req, { broker, version }) {
    const wanted = version >= 6 ? req.topics : req.topicNames.map((name) => ({ name, topicId: undefined }));
    const responses = wanted.map(({ name, topicId }) => {
      if (name === null) return { name, topicId, errorCode: ErrorCode.UNKNOWN_TOPIC_ID };
      const ok = broker.store.deleteTopic(name);
      if (ok) broker.log.info('kafka-lite: deleted topic', { topic: name });
      return { name, errorCode: ok ? 0 : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
    });
    return { throttleTimeMs: 0, responses };
  },
});
