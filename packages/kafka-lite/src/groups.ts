// One file (~400 lines): the group coordinator is one state machine (Join/Sync/Heartbeat/Leave and its timers);
// splitting the transitions apart would hide which state each one leaves the group in.
// Group coordinator: the JoinGroup/SyncGroup state machine, liveness and generation checks.
import { randomUUID } from 'node:crypto';
import { ErrorCode } from './protocol.js';
import type { Logger } from './logger.js';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export interface JoinResult {
  error: number;
  generation: number;
  protocol: string;
  leader: string;
  memberId: string;
  members: { memberId: string; instanceId: string | null; metadata: Buffer }[];
}

export interface SyncResult {
  error: number;
  assignment: Buffer;
}

interface Member {
  id: string;
  clientId: string;
  clientHost: string;
  instanceId: string | null;
  sessionTimeout: number;
  rebalanceTimeout: number;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
  assignment: Buffer;
  lastSeen: number;
  joinCb?: ((r: JoinResult) => void) | undefined;
  joinOwner?: object | undefined;
  syncCb?: ((r: SyncResult) => void) | undefined;
  syncOwner?: object | undefined;
}

export class Group {
  state: GroupState = 'Empty';
  generation = 0;
  protocolType: string | null = null;
  protocol: string | null = null;
  leader: string | null = null;
  members = new Map<string, Member>();
  rebalanceTimer: NodeJS.Timeout | null = null;
  constructor(readonly id: string) {}
}

const EMPTY = Buffer.alloc(0);

export interface CoordinatorOptions {
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  logger: Logger;
}

export class Coordinator {
  readonly groups = new Map<string, Group>();
  private sweeper: NodeJS.Timeout;

  constructor(readonly opts: CoordinatorOptions) {
    this.sweeper = setInterval(() => this.sweep(), 200);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const g of this.groups.values()) {
      if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
      g.rebalanceTimer = null;
    }
  }

  private errJoin(error: number, memberId = ''): JoinResult {
    return { error, generation: -1, protocol: '', leader: '', memberId, members: [] };
  }

  join(req: {
    groupId: string;
    sessionTimeout: number;
    rebalanceTimeout: number;
    memberId: string;
    instanceId: string | null;
    protocolType: string;
    protocols: { name: string; metadata: Buffer }[];
    clientId: string;
    clientHost: string;
    owner: object;
  }): JoinResult | Promise<JoinResult> {
    if (!req.groupId) return this.errJoin(ErrorCode.INVALID_GROUP_ID);
    if (req.sessionTimeout < this.opts.minSessionTimeoutMs || req.sessionTimeout > this.opts.maxSessionTimeoutMs) {
      return this.errJoin(ErrorCode.INVALID_SESSION_TIMEOUT);
    }
    let group = this.groups.get(req.groupId);
    if (!group) {
      group = new Group(req.groupId);
      this.groups.set(req.groupId, group);
    }
    let member = req.memberId ? group.members.get(req.memberId) : undefined;
    if (req.memberId && !member) return this.errJoin(ErrorCode.UNKNOWN_MEMBER_ID, req.memberId);
    if (req.protocols.length === 0) return this.errJoin(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    if (group.members.size > 0 && !(group.members.size === 1 && member)) {
      if (group.protocolType !== null && group.protocolType !== req.protocolType) {
        return this.errJoin(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
      }
      const names = new Set(req.protocols.map((p) => p.name));
      for (const m of group.members.values()) {
        if (m === member) continue;
        if (!m.protocols.some((p) => names.has(p.name))) return this.errJoin(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
      }
    }
    const now = Date.now();
    if (!member) {
      member = {
        id: `${req.clientId || 'member'}-${randomUUID()}`,
        clientId: req.clientId,
        clientHost: req.clientHost,
        instanceId: req.instanceId,
        sessionTimeout: req.sessionTimeout,
        rebalanceTimeout: req.rebalanceTimeout,
        protocolType: req.protocolType,
        protocols: req.protocols,
        assignment: EMPTY,
        lastSeen: now,
      };
      group.members.set(member.id, member);
      this.opts.logger.debug?.('kafka-lite: member joined', { group: group.id, member: member.id });
    } else {
      member.sessionTimeout = req.sessionTimeout;
      member.rebalanceTimeout = req.rebalanceTimeout;
      member.protocols = req.protocols;
      member.protocolType = req.protocolType;
      member.clientHost = req.clientHost;
      member.lastSeen = now;
      if (member.joinCb) member.joinCb(this.errJoin(ErrorCode.REBALANCE_IN_PROGRESS, member.id));
    }
    if (group.protocolType === null) group.protocolType = req.protocolType;
    const m = member;
    const g = group;
    return new Promise<JoinResult>((resolve) => {
      m.joinCb = resolve;
      m.joinOwner = req.owner;
      if (g.state === 'PreparingRebalance') this.maybeCompleteJoin(g);
      else this.prepareRebalance(g, `member ${m.id} joined`);
    });
  }

  private prepareRebalance(g: Group, reason: string): void {
    if (g.state === 'CompletingRebalance') {
      for (const m of g.members.values()) this.failSync(m, ErrorCode.REBALANCE_IN_PROGRESS);
    }
    if (g.state !== 'PreparingRebalance') {
      this.opts.logger.debug?.('kafka-lite: rebalance', { group: g.id, reason });
      g.state = 'PreparingRebalance';
      let timeout = 0;
      for (const m of g.members.values()) timeout = Math.max(timeout, m.rebalanceTimeout);
      if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
      g.rebalanceTimer = setTimeout(
        () => {
          g.rebalanceTimer = null;
          if (g.state === 'PreparingRebalance') this.completeJoin(g);
        },
        Math.max(timeout, 0),
      );
      g.rebalanceTimer.unref();
    }
    this.maybeCompleteJoin(g);
  }

  private maybeCompleteJoin(g: Group): void {
    if (g.state !== 'PreparingRebalance') return;
    for (const m of g.members.values()) if (!m.joinCb) return;
    this.completeJoin(g);
  }

  private failSync(m: Member, error: number): void {
    if (m.syncCb) {
      const cb = m.syncCb;
      m.syncCb = undefined;
      m.syncOwner = undefined;
      cb({ error, assignment: EMPTY });
    }
  }

  private completeJoin(g: Group): void {
    if (g.rebalanceTimer) {
      clearTimeout(g.rebalanceTimer);
      g.rebalanceTimer = null;
    }
    for (const m of [...g.members.values()]) {
      if (!m.joinCb) {
        this.opts.logger.info('kafka-lite: member removed (did not rejoin within rebalance timeout)', {
          group: g.id,
          member: m.id,
        });
        g.members.delete(m.id);
      }
    }
    g.generation++;
    if (g.members.size === 0) {
      g.state = 'Empty';
      g.protocol = null;
      g.leader = null;
      g.protocolType = null;
      return;
    }
    const members = [...g.members.values()];
    if (!g.leader || !g.members.has(g.leader)) g.leader = members[0]!.id;
    const leader = g.members.get(g.leader)!;
    // Pick the leader's most preferred protocol that every member supports.
    let chosen = '';
    for (const p of leader.protocols) {
      if (members.every((m) => m.protocols.some((q) => q.name === p.name))) {
        chosen = p.name;
        break;
      }
    }
    if (!chosen) chosen = leader.protocols[0]?.name ?? '';
    g.protocol = chosen;
    g.state = 'CompletingRebalance';
    const now = Date.now();
    const list = members.map((m) => ({
      memberId: m.id,
      instanceId: m.instanceId,
      metadata: m.protocols.find((p) => p.name === chosen)?.metadata ?? EMPTY,
    }));
    for (const m of members) {
      m.lastSeen = now;
      m.assignment = EMPTY;
      const cb = m.joinCb!;
      m.joinCb = undefined;
      m.joinOwner = undefined;
      cb({
        error: 0,
        generation: g.generation,
        protocol: chosen,
        leader: g.leader,
        memberId: m.id,
        members: m.id === g.leader ? list : [],
      });
    }
  }

  sync(req: {
    groupId: string;
    generation: number;
    memberId: string;
    assignments: { memberId: string; assignment: Buffer }[];
    owner: object;
  }): SyncResult | Promise<SyncResult> {
    const g = this.groups.get(req.groupId);
    const m = g?.members.get(req.memberId);
    if (!g || !m) return { error: ErrorCode.UNKNOWN_MEMBER_ID, assignment: EMPTY };
    m.lastSeen = Date.now();
    if (req.generation !== g.generation) return { error: ErrorCode.ILLEGAL_GENERATION, assignment: EMPTY };
    switch (g.state) {
      case 'PreparingRebalance':
        return { error: ErrorCode.REBALANCE_IN_PROGRESS, assignment: EMPTY };
      case 'Stable':
        return { error: 0, assignment: m.assignment };
      case 'CompletingRebalance':
        break;
      default:
        return { error: ErrorCode.UNKNOWN_MEMBER_ID, assignment: EMPTY };
    }
    return new Promise<SyncResult>((resolve) => {
      this.failSync(m, ErrorCode.REBALANCE_IN_PROGRESS);
      m.syncCb = resolve;
      m.syncOwner = req.owner;
      if (m.id === g.leader) {
        const map = new Map(req.assignments.map((a) => [a.memberId, a.assignment]));
        const now = Date.now();
        g.state = 'Stable';
        for (const mm of g.members.values()) {
          mm.assignment = map.get(mm.id) ?? EMPTY;
          mm.lastSeen = now;
          if (mm.syncCb) {
            const cb = mm.syncCb;
            mm.syncCb = undefined;
            mm.syncOwner = undefined;
            cb({ error: 0, assignment: mm.assignment });
          }
        }
      }
    });
  }

  heartbeat(groupId: string, generation: number, memberId: string): number {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (!g || !m) return ErrorCode.UNKNOWN_MEMBER_ID;
    m.lastSeen = Date.now();
    if (generation !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    if (g.state === 'PreparingRebalance' || g.state === 'CompletingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    if (g.state !== 'Stable') return ErrorCode.UNKNOWN_MEMBER_ID;
    return 0;
  }

  leave(groupId: string, memberId: string): number {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (!g || !m) return ErrorCode.UNKNOWN_MEMBER_ID;
    this.removeMember(g, m, 'left the group');
    return 0;
  }

  private removeMember(g: Group, m: Member, why: string): void {
    this.opts.logger.debug?.(`kafka-lite: member ${why}`, { group: g.id, member: m.id });
    g.members.delete(m.id);
    if (m.joinCb) {
      const cb = m.joinCb;
      m.joinCb = undefined;
      cb(this.errJoin(ErrorCode.UNKNOWN_MEMBER_ID, m.id));
    }
    this.failSync(m, ErrorCode.UNKNOWN_MEMBER_ID);
    if (g.state === 'Stable' || g.state === 'CompletingRebalance') {
      if (g.members.size === 0) {
        g.state = 'Empty';
        g.generation++;
        g.leader = null;
        g.protocol = null;
        g.protocolType = null;
      } else this.prepareRebalance(g, `member ${m.id} ${why}`);
    } else if (g.state === 'PreparingRebalance') {
      this.maybeCompleteJoin(g);
    }
  }

  /** Validates an OffsetCommit's member/generation; returns an error code (0 = accept). */
  checkCommit(groupId: string, generation: number, memberId: string): number {
    const g = this.groups.get(groupId);
    if (generation < 0 && memberId === '') {
      if (!g || g.members.size === 0) return 0;
      return ErrorCode.UNKNOWN_MEMBER_ID;
    }
    const m = g?.members.get(memberId);
    if (!g || !m) return ErrorCode.UNKNOWN_MEMBER_ID;
    m.lastSeen = Date.now();
    if (generation !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    if (g.state === 'CompletingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    return 0;
  }

  /** A connection closed: its parked join/sync requests can no longer be answered. */
  connectionClosed(owner: object): void {
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) {
        if (m.joinOwner === owner) {
          m.joinCb = undefined;
          m.joinOwner = undefined;
        }
        if (m.syncOwner === owner) {
          m.syncCb = undefined;
          m.syncOwner = undefined;
        }
      }
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const g of this.groups.values()) {
      for (const m of [...g.members.values()]) {
        if (m.joinCb || m.syncCb) continue;
        if (now - m.lastSeen > m.sessionTimeout) {
          this.opts.logger.info('kafka-lite: member session expired', { group: g.id, member: m.id });
          this.removeMember(g, m, 'session expired');
        }
      }
    }
  }

  describe(groupId: string): {
    state: GroupState;
    protocolType: string;
    protocol: string;
    members: { id: string; clientId: string; clientHost: string; metadata: Buffer; assignment: Buffer }[];
  } {
    const g = this.groups.get(groupId);
    if (!g) return { state: 'Dead', protocolType: '', protocol: '', members: [] };
    return {
      state: g.state,
      protocolType: g.protocolType ?? (g.state === 'Empty' ? 'consumer' : ''),
      protocol: g.state === 'Stable' || g.state === 'CompletingRebalance' ? (g.protocol ?? '') : '',
      members: [...g.members.values()].map((m) => ({
        id: m.id,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === g.protocol)?.metadata ?? EMPTY,
        assignment: m.assignment,
      })),
    };
  }

  ensureGroup(groupId: string): void {
    if (!this.groups.has(groupId)) this.groups.set(groupId, new Group(groupId));
  }
}
