// Group administration: DescribeGroups (15) and ListGroups (16). A group known only through committed offsets
// is reported "Empty" (as Kafka does after a restart); an unknown group is "Dead" with error 0.
import { defineApi } from './types.js';

export const describeGroups = defineApi<{ groups: string[] }>({
  name: 'DescribeGroups',
  versions: [0, 5],
  handle(req, { broker }) {
    const groups = req.groups.map((groupId) => {
      const d = broker.coord.describe(groupId);
      let groupState: string = d.state;
      let protocolType = d.protocolType;
      if (groupState === 'Dead' && broker.store.getCommits(groupId)?.size) {
        groupState = 'Empty';
        protocolType = 'consumer';
      }
      return {
        errorCode: 0,
        groupId,
        groupState,
        protocolType,
        protocolData: d.protocol,
        members: d.members.map((m) => ({
          memberId: m.id,
          groupInstanceId: null,
          clientId: m.clientId,
          clientHost: m.clientHost,
          memberMetadata: m.metadata,
          memberAssignment: m.assignment,
        })),
      };
    });
    return { throttleTimeMs: 0, groups };
  },
});

export const listGroups = defineApi<{ statesFilter: string[] }>({
  name: 'ListGroups',
  versions: [0, 4],
  handle(req, { broker }) {
    const groups = new Map<string, { protocolType: string; groupState: string }>();
    for (const id of broker.store.commits.keys()) groups.set(id, { protocolType: 'consumer', groupState: 'Empty' });
    for (const [id, g] of broker.coord.groups)
      groups.set(id, { protocolType: g.protocolType ?? 'consumer', groupState: g.state });
    const filter = req.statesFilter.map((s) => s.toLowerCase());
    const list = [...groups]
      .filter(([, g]) => filter.length === 0 || filter.includes(g.groupState.toLowerCase()))
      .map(([groupId, g]) => ({ groupId, ...g }));
    return { throttleTimeMs: 0, errorCode: 0, groups: list };
  },
});
