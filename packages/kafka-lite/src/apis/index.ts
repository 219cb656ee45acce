// The Kafka APIs kafka-lite serves, one module per API family:
//
//   api-versions.ts      ApiVersions (18)
//   metadata.ts          Metadata (3)
//   produce.ts           Produce (0)
//   fetch.ts             Fetch (1)
//   list-offsets.ts      ListOffsets (2)
//   topics.ts            CreateTopics (19), DeleteTopics (20)
//   group-membership.ts  FindCoordinator (10), JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13)
//   group-admin.ts       DescribeGroups (15), ListGroups (16)
//   offsets.ts           OffsetCommit (8), OffsetFetch (9)
//   init-producer-id.ts  InitProducerId (22)
//
// Each module declares the version range it serves (advertised verbatim by ApiVersions) and a handler that reads
// the decoded request object and returns the response object; the wire layouts of every version come from Kafka's
// message definitions through the schema codec (src/schema). The connection (src/connection.ts) parses the header,
// decodes, dispatches, and answers versions outside the range with UNSUPPORTED_VERSION (see docs/kafka-lite.md).
import { apiVersions } from './api-versions.js';
import { fetch } from './fetch.js';
import { describeGroups, listGroups } from './group-admin.js';
import { findCoordinator, heartbeat, joinGroup, leaveGroup, syncGroup } from './group-membership.js';
import { initProducerId } from './init-producer-id.js';
import { listOffsets } from './list-offsets.js';
import { metadata } from './metadata.js';
import { offsetCommit, offsetFetch } from './offsets.js';
import { produce } from './produce.js';
import { createTopics, deleteTopics } from './topics.js';
import type { Api } from './types.js';

export const APIS: ReadonlyMap<number, Api> = new Map(
  [
    produce,
    fetch,
    listOffsets,
    metadata,
    offsetCommit,
    offsetFetch,
    findCoordinator,
    joinGroup,
    heartbeat,
    leaveGroup,
    syncGroup,
    describeGroups,
    listGroups,
    apiVersions,
    createTopics,
    deleteTopics,
    initProducerId,
  ].map((a) => [a.key, a]),
);

export { apiVersionsBody } from './api-versions.js';
export type { Api, ConnInfo, Ctx } from './types.js';
