// Metadata (3): the one broker, the cluster/controller ids and every requested topic (auto-created on request when
// the client allows it and the broker's autoCreateTopics is on). Topic ids are not assigned (zero UUID), as for
// topics of a pre-KIP-516 cluster; a request naming only a topic id gets UNKNOWN_TOPIC_ID.
import { ErrorCode } from '../protocol.js';
import { validTopicName } from '../store.js';
import { defineApi, NODE_ID } from './types.js';

interface MetadataRequest {
  topics: { topicId: Buffer; name: string | null }[] | null;
  allowAutoTopicCreation: boolean;
}

const partitionsOf = (n: number): object[] =>
  Array.from({ length: n }, (_, p) => ({
    errorCode: 0,
    partitionIndex: p,
    leaderId: NODE_ID,
    replicaNodes: [NODE_ID],
    isrNodes: [NODE_ID],
    offlineReplicas: [],
  }));

export const metadata = defineApi<MetadataRequest>({
  name: 'Metadata',
  versions: [0, 12],
  handle(req, { broker, version }) {
    const store = broker.store;
    // v0 has no null list: an empty list means "all topics". From v1 on null means all, empty means none.
    const all = req.topics === null || (version === 0 && req.topics.length === 0);
    const wanted = all ? [...store.topics.keys()].map((name) => ({ name, topicId: undefined })) : req.topics!;
    const topics = wanted.map(({ name, topicId }) => {
      const fail = (errorCode: number): object => ({ errorCode, name, topicId, partitions: [] });
      if (name === null) return fail(ErrorCode.UNKNOWN_TOPIC_ID);
      let t = store.topics.get(name);
      if (!t) {
        if (!validTopicName(name)) return fail(ErrorCode.INVALID_TOPIC_EXCEPTION);
        if (!(req.allowAutoTopicCreation && broker.autoCreate)) return fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
        const created = broker.createTopic(name, broker.defaultPartitions, 'auto-created');
        if (typeof created === 'string') return fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
        t = created;
      }
      return { errorCode: 0, name, partitions: partitionsOf(t.partitions.length) };
    });
    return {
      throttleTimeMs: 0,
      brokers: [{ nodeId: NODE_ID, host: broker.advertisedHost, port: broker.advertisedPort, rack: null }],
      clusterId: store.clusterId,
      controllerId: NODE_ID,
      topics,
    };
  },
});
