// Consumer-group membership: FindCoordinator (10), JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13).
// Thin adapters over the coordinator state machine (src/groups.ts); this broker coordinates every group.
import { defineApi, NODE_ID } from './types.js';

interface FindCoordinatorRequest {
  key: string;
  coordinatorKeys: string[];
}

export const findCoordinator = defineApi<FindCoordinatorRequest>({
  name: 'FindCoordinator',
  versions: [0, 4],
  handle(req, { broker, version }) {
    const node = { nodeId: NODE_ID, host: broker.advertisedHost, port: broker.advertisedPort };
    if (version < 4) return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, ...node };
    return {
      throttleTimeMs: 0,
      coordinators: req.coordinatorKeys.map((key) => ({ key, ...node, errorCode: 0, errorMessage: null })),
    };
  },
  errorResponse: (req, code) => ({
    errorCode: code,
    nodeId: -1,
    host: '',
    port: -1,
    coordinators: req.coordinatorKeys.map((key) => ({ key, nodeId: -1, host: '', port: -1, errorCode: code })),
  }),
});

interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
}

export const joinGroup = defineApi<JoinGroupRequest>({
  name: 'JoinGroup',
  versions: [0, 9],
  async handle(req, { broker, conn, clientId }) {
    const res = await broker.coord.join({
      groupId: req.groupId,
      sessionTimeout: req.sessionTimeoutMs,
      // v0 has no rebalance timeout: Kafka uses the session timeout.
      rebalanceTimeout: req.rebalanceTimeoutMs < 0 ? req.sessionTimeoutMs : req.rebalanceTimeoutMs,
      memberId: req.memberId,
      instanceId: req.groupInstanceId,
      protocolType: req.protocolType,
      // Copied: the request buffer is not kept once the member's metadata outlives this request.
      protocols: req.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
      clientId,
      clientHost: conn.clientHost,
      owner: conn,
    });
    return {
      throttleTimeMs: 0,
      errorCode: res.error,
      generationId: res.generation,
      protocolType: res.error ? null : req.protocolType,
      protocolName: res.protocol,
      leader: res.leader,
      memberId: res.memberId,
      members: res.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.instanceId, metadata: m.metadata })),
    };
  },
});

interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  protocolType: string | null;
  protocolName: string | null;
  assignments: { memberId: string; assignment: Buffer }[];
}

export const syncGroup = defineApi<SyncGroupRequest>({
  name: 'SyncGroup',
  versions: [0, 5],
  async handle(req, { broker, conn }) {
    const res = await broker.coord.sync({
      groupId: req.groupId,
      generation: req.generationId,
      memberId: req.memberId,
      assignments: req.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
      owner: conn,
    });
    const g = broker.coord.groups.get(req.groupId);
    return {
      throttleTimeMs: 0,
      errorCode: res.error,
      protocolType: res.error ? null : (g?.protocolType ?? req.protocolType),
      protocolName: res.error ? null : (g?.protocol ?? req.protocolName),
      // Never null: a null assignment crashes kafkajs (zero-length bytes mean "no partitions").
      assignment: res.assignment,
    };
  },
});

interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
}

export const heartbeat = defineApi<HeartbeatRequest>({
  name: 'Heartbeat',
  versions: [0, 4],
  handle: (req, { broker }) => ({
    throttleTimeMs: 0,
    errorCode: broker.coord.heartbeat(req.groupId, req.generationId, req.memberId),
  }),
});

interface LeaveGroupRequest {
  groupId: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null }[];
}

export const leaveGroup = defineApi<LeaveGroupRequest>({
  name: 'LeaveGroup',
  versions: [0, 5],
  handle(req, { broker, version }) {
    // v0-v2 name one member at top level and answer with a top-level error only.
    if (version < 3) return { throttleTimeMs: 0, errorCode: broker.coord.leave(req.groupId, req.memberId) };
    const members = req.members.map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      errorCode: broker.coord.leave(req.groupId, m.memberId),
    }));
    return { throttleTimeMs: 0, errorCode: 0, members };
  },
});
