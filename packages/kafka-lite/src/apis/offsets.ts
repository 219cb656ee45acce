// Committed group offsets: OffsetCommit (8) and OffsetFetch (9). Commits are validated against the coordinator's
// member/generation (v0, which has neither, is a "simple" commit); fetched partitions without a commit get -1.
import { ErrorCode } from '../protocol.js';
import { defineApi, type Body, type Ctx } from './types.js';

interface OffsetCommitRequest {
  groupId: string;
  generationIdOrMemberEpoch: number;
  memberId: string;
  topics: {
    name: string;
    partitions: { partitionIndex: number; committedOffset: number; committedMetadata: string | null }[];
  }[];
}

const commitResponse = (req: OffsetCommitRequest, error: (topic: string, index: number) => number): Body => ({
  throttleTimeMs: 0,
  topics: req.topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.map((p) => ({
      partitionIndex: p.partitionIndex,
      errorCode: error(t.name, p.partitionIndex),
    })),
  })),
});

export const offsetCommit = defineApi<OffsetCommitRequest>({
  name: 'OffsetCommit',
  versions: [0, 8],
  handle(req, { broker }) {
    const { groupId } = req;
    const groupErr = groupId
      ? broker.coord.checkCommit(groupId, req.generationIdOrMemberEpoch, req.memberId)
      : ErrorCode.INVALID_GROUP_ID;
    const accepted: { topic: string; partition: number; offset: number; metadata: string | null }[] = [];
    for (const t of req.topics) {
      for (const p of t.partitions) {
        if (!groupErr && broker.partition(t.name, p.partitionIndex))
          accepted.push({
            topic: t.name,
            partition: p.partitionIndex,
            offset: p.committedOffset,
            metadata: p.committedMetadata,
          });
      }
    }
    if (accepted.length > 0) broker.store.commit(groupId, accepted);
    const body = commitResponse(
      req,
      (topic, index) => groupErr || (broker.partition(topic, index) ? 0 : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    );
    if (accepted.length > 0 && broker.store.persistent && broker.store.opts.fsync === 'always')
      return broker.store.sync().then(() => body);
    return body;
  },
  errorResponse: (req, code) => commitResponse(req, () => code),
});

type TopicList = { name: string; partitionIndexes: number[] }[] | null;

interface OffsetFetchRequest {
  groupId: string;
  topics: TopicList;
  groups: { groupId: string; topics: TopicList }[];
}

/** One group's committed offsets for `topics` (null = every partition the group has committed). */
function fetchGroup(broker: Ctx['broker'], groupId: string, topics: TopicList): Body[] {
  const commits = broker.store.getCommits(groupId);
  const list =
    topics ??
    [...(commits?.entries() ?? [])].map(([name, m]) => ({
      name,
      partitionIndexes: [...m.keys()].sort((a, b) => a - b),
    }));
  return list.map((t) => {
    const tm = commits?.get(t.name);
    return {
      name: t.name,
      partitions: t.partitionIndexes.map((partitionIndex) => {
        const c = tm?.get(partitionIndex);
        return {
          partitionIndex,
          committedOffset: c ? c.offset : -1,
          committedLeaderEpoch: -1,
          metadata: c ? c.metadata : '',
          errorCode: 0,
        };
      }),
    };
  });
}

export const offsetFetch = defineApi<OffsetFetchRequest>({
  name: 'OffsetFetch',
  versions: [0, 8],
  handle(req, { broker, version }) {
    if (version >= 8) {
      const groups = req.groups.map((g) => ({
        groupId: g.groupId,
        topics: fetchGroup(broker, g.groupId, g.topics),
        errorCode: 0,
      }));
      return { throttleTimeMs: 0, groups };
    }
    return { throttleTimeMs: 0, topics: fetchGroup(broker, req.groupId, req.topics), errorCode: 0 };
  },
});
