import type { Redis } from 'ioredis';
import {
  isExpired,
  isListKind,
  ListEntryError,
  ListSnapshot,
  normalizeValue,
  type ListEntry,
  type ListKind,
} from './entries.js';

/**
 * The lists in Redis, shared by every ingress replica and the admin service:
 *
 *   lists:entries   hash  "<kind> <value>" → JSON ListEntry
 *   lists:version   counter, incremented by every change (in the same MULTI as the change)
 *   <keyPrefix>lists:changed   pub/sub channel; the new version is published after each change
 *
 * Replicas (LiveLists) reload the hash when they hear the channel, and also poll the version every
 * `refreshIntervalMs`, so a change lost by pub/sub (a reconnect) is still seen within that interval.
 */

const ENTRIES = 'lists:entries';
const VERSION = 'lists:version';

export interface AddEntry {
  readonly kind: ListKind;
  readonly value: string;
  readonly reason?: string;
  readonly createdBy: string;
  /** Absolute expiry (ISO) or seconds from now; none = permanent. */
  readonly expiresAt?: string | null;
  readonly ttlSeconds?: number;
}

function channelOf(redis: Redis): string {
  // ioredis' keyPrefix applies to keys, not to pub/sub channels: prefix the channel ourselves so gateways that
  // share a Redis (and parallel test runs) do not hear each other.
  return `${String(redis.options.keyPrefix ?? '')}lists:changed`;
}

const fieldOf = (kind: ListKind, value: string) => `${kind} ${value}`;

function parseEntry(json: string): ListEntry | null {
  try {
    const e = JSON.parse(json) as ListEntry;
    return isListKind(e.kind) && typeof e.value === 'string' ? { ...e, source: 'redis' } : null;
  } catch {
    return null;
  }
}

export class ListStore {
  constructor(private readonly redis: Redis) {}

  async add(a: AddEntry, now = Date.now()): Promise<ListEntry> {
    if (!isListKind(a.kind))
      throw new ListEntryError(`unknown list ${JSON.stringify(a.kind)} (ip-allow, ip-block, sender-block)`);
    const value = normalizeValue(a.kind, a.value);
    let expiresAt: string | null = null;
    if (a.ttlSeconds !== undefined) {
      if (!Number.isFinite(a.ttlSeconds) || a.ttlSeconds <= 0) throw new ListEntryError('ttlSeconds must be positive');
      expiresAt = new Date(now + a.ttlSeconds * 1000).toISOString();
    } else if (a.expiresAt) {
      const t = Date.parse(a.expiresAt);
      if (!Number.isFinite(t)) throw new ListEntryError('expiresAt must be an ISO date-time');
      if (t <= now) throw new ListEntryError('expiresAt is in the past');
      expiresAt = new Date(t).toISOString();
    }
    const entry: ListEntry = {
      kind: a.kind,
      value,
      reason: String(a.reason ?? '').slice(0, 500),
      createdBy: a.createdBy.slice(0, 200),
      createdAt: new Date(now).toISOString(),
      expiresAt,
      source: 'redis',
    };
    await this.redis.multi().hset(ENTRIES, fieldOf(a.kind, value), JSON.stringify(entry)).incr(VERSION).exec();
    await this.notify();
    return entry;
  }

  /** Remove an entry; resolves false when it was not there. */
  async remove(kind: ListKind, rawValue: string): Promise<boolean> {
    if (!isListKind(kind)) throw new ListEntryError(`unknown list ${JSON.stringify(kind)}`);
    const value = normalizeValue(kind, rawValue);
    const res = await this.redis.multi().hdel(ENTRIES, fieldOf(kind, value)).incr(VERSION).exec();
    const removed = Number(res?.[0]?.[1] ?? 0) > 0;
    await this.notify();
    return removed;
  }

  /** Current (unexpired) entries; expired ones are deleted on the way (they no longer match anyway). */
  async list(opts: { kind?: ListKind; search?: string } = {}, now = Date.now()): Promise<ListEntry[]> {
    const all = await this.redis.hgetall(ENTRIES);
    const out: ListEntry[] = [];
    const expired: string[] = [];
    for (const [field, json] of Object.entries(all)) {
      const e = parseEntry(json);
      if (!e) continue;
      if (isExpired(e, now)) {
        expired.push(field);
        continue;
      }
      if (opts.kind && e.kind !== opts.kind) continue;
      if (opts.search && !`${e.value} ${e.reason} ${e.createdBy}`.toLowerCase().includes(opts.search.toLowerCase()))
        continue;
      out.push(e);
    }
    if (expired.length) await this.redis.hdel(ENTRIES, ...expired);
    return out.sort((x, y) => x.kind.localeCompare(y.kind) || x.value.localeCompare(y.value));
  }

  async version(): Promise<number> {
    return Number((await this.redis.get(VERSION)) ?? 0);
  }

  /** Everything (including entries about to expire: the snapshot checks expiry at match time) and the version. */
  async snapshotData(): Promise<{ entries: ListEntry[]; version: number }> {
    const res = await this.redis.multi().get(VERSION).hgetall(ENTRIES).exec();
    const version = Number(res?.[0]?.[1] ?? 0);
    const all = (res?.[1]?.[1] ?? {}) as Record<string, string>;
    const entries = Object.values(all)
      .map(parseEntry)
      .filter((e): e is ListEntry => e !== null);
    return { entries, version };
  }

  private async notify(): Promise<void> {
    const v = await this.version();
    await this.redis.publish(channelOf(this.redis), String(v));
  }
}

export interface LiveListsOptions {
  /** Entries from the config file (ingress.lists.seed): always present, not removable through the API. */
  readonly seed?: readonly ListEntry[];
  /** Version poll interval (the bound on staleness when a pub/sub message is lost). */
  readonly refreshIntervalMs?: number;
  readonly onError?: (err: Error) => void;
  readonly onReload?: (version: number, count: number) => void;
}

/**
 * A replica's live view: the last snapshot, replaced when Redis says the version changed. When Redis cannot be
 * reached the last snapshot stays in force (blocks keep blocking; expiry is still applied by time) — lists are an
 * operator's tool against an attacker, and dropping them because Redis blinked would let the attacker in.
 */
export class LiveLists {
  private snap: ListSnapshot;
  private readonly seed: readonly ListEntry[];
  private readonly store: ListStore;
  private sub: Redis | null = null;
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly opts: LiveListsOptions = {},
  ) {
    this.seed = opts.seed ?? [];
    this.store = new ListStore(redis);
    this.snap = new ListSnapshot(this.seed, -1);
  }

  get snapshot(): ListSnapshot {
    return this.snap;
  }

  get version(): number {
    return this.snap.version;
  }

  /**
   * Load the lists (waiting at most `startTimeoutMs` — an unreachable Redis must not hold up the service's start:
   * the seed entries apply meanwhile) and follow changes from then on.
   */
  async start(startTimeoutMs = 2000): Promise<void> {
    const sub = this.redis.duplicate();
    this.sub = sub;
    sub.on('error', (err: Error) => this.opts.onError?.(err));
    sub.on('message', (_ch: string, msg: string) => {
      if (Number(msg) !== this.snap.version) void this.reload().catch((err: Error) => this.opts.onError?.(err));
    });
    // On every (re)connect: re-subscribe happens in ioredis; re-read too, changes made meanwhile were missed.
    sub.on('ready', () => void this.reload().catch((err: Error) => this.opts.onError?.(err)));
    // Not awaited: with Redis down the command waits in ioredis' offline queue until it is back.
    void sub.subscribe(channelOf(this.redis)).catch((err: Error) => this.opts.onError?.(err));
    const every = this.opts.refreshIntervalMs ?? 2000;
    this.timer = setInterval(() => {
      void this.store
        .version()
        .then((v) => (v !== this.snap.version ? this.reload() : undefined))
        .catch((err: Error) => this.opts.onError?.(err));
    }, every);
    this.timer.unref();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      this.reload().catch((err: Error) => this.opts.onError?.(err)),
      new Promise<void>((r) => (t = setTimeout(r, startTimeoutMs))),
    ]).finally(() => clearTimeout(t));
  }

  /** Read the whole list set from Redis now (coalesced with a reload already under way). */
  reload(): Promise<void> {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const { entries, version } = await this.store.snapshotData();
        if (this.closed) return;
        this.snap = new ListSnapshot([...this.seed, ...entries], version);
        this.opts.onReload?.(version, entries.length);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    if (this.sub) {
      const s = this.sub;
      this.sub = null;
      await s.quit().catch(() => s.disconnect());
    }
  }
}
