import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@mailgate/runtime';
import type { Redis } from 'ioredis';
import { LUA_CALL_RANGE, LuaScript } from './lua.js';

/**
 * A short per-message claim in Redis, shared by every delivery replica: the section "check delivered markers →
 * send → write markers" of one message id runs in one place at a time. Without it, the retry worker of one
 * replica and the stage of another (a redelivered duplicate record) could both read "no marker" and both send.
 *
 *  - take: `SET <prefix>delivery:claim:<id> <token> NX PX ttlMs`, in one script with the reads the attempt starts
 *    with (markers, retry entry, backoffs: see ClaimReads), so checking the markers costs no round trip of its own;
 *  - hold: the holder extends the TTL every ttlMs/3 (compare-and-pexpire), so a slow SMTP transaction keeps its
 *    claim while a crashed replica's claim frees itself within ttlMs;
 *  - release: compare-and-delete (only the holder's token is removed, never a claim taken after ours expired),
 *    in the script that writes the delivered markers when the attempt has one (HeldClaim.released);
 *  - wait: another attempt polls every pollMs until the claim is free, then re-checks the markers (it finds the
 *    holder's 250 and skips those recipients). After waitMs it proceeds without the claim, logged: a claim held
 *    that long means a stuck holder, and delivering late beats never delivering.
 */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

const EXTEND = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`);

/**
 * Take the claim and, only when it was taken (or ARGV[3] = '1': proceeding without it), read what the attempt
 * needs in the same round trip: one hash (HGETALL), string keys (MGET), key TTLs (PTTL).
 *   KEYS: claim, [hash], strings…, ttl keys…   ARGV: token, ttlMs, force, hasHash, nStrings
 *   → nil when the claim is held by someone else, else { hash, strings, ttls }
 */
const TAKE = new LuaScript(`${LUA_CALL_RANGE}
if ARGV[3] ~= '1' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return false end
end
local i = 2
local hash = {}
if ARGV[4] == '1' then
  hash = redis.call('HGETALL', KEYS[2])
  i = 3
end
local n = tonumber(ARGV[5])
local strings = call_range('MGET', i, i + n - 1)
local ttls = {}
for j = i + n, #KEYS do ttls[#ttls + 1] = redis.call('PTTL', KEYS[j]) end
return { hash, strings, ttls }`);

/**
 * What to read in the round trip that takes the claim (keys as the client names them, prefix added by it). The keys
 * belong to the markers, the retry store and the limits, so those must share this client (and its key prefix) —
 * as createDeliveryComponents wires them; the markers' write script releases the claim through the same rule.
 */
export interface ClaimReads {
  /** A hash to read whole (HGETALL), e.g. the message's retry store entry. */
  readonly hash?: string | undefined;
  /** String keys (MGET), e.g. the recipients' delivered markers and pending marks. */
  readonly strings?: readonly string[];
  /** Keys whose remaining TTL in ms is wanted (PTTL: -2 missing, -1 no expiry), e.g. destination backoffs. */
  readonly ttls?: readonly string[];
}

/** The claim as its holder sees it, with what was read under it. */
export interface HeldClaim {
  /** The Redis key of the claim (for a write that releases it, see DeliveredMarkers.mark). */
  readonly key: string;
  /** null when waitMs passed without the claim becoming free: the attempt proceeds without it. */
  readonly token: string | null;
  /** Field → value of `reads.hash` ({} when the key does not exist). */
  readonly hash: Record<string, string>;
  /** Values of `reads.strings`, in order (null when missing). */
  readonly strings: readonly (string | null)[];
  /** PTTLs of `reads.ttls`, in order. */
  readonly ttls: readonly number[];
  /**
   * Set by the holder once a write of its own released the claim (compare-and-delete in the same script): then
   * withClaim skips its separate release round trip.
   */
  released: boolean;
}

/**
 * Claim tokens: random per process, then a counter. Unique is all a token must be (compare-and-delete never removes
 * another attempt's claim), and this costs no call into the CSPRNG per message (randomFillSync was ~1 % of
 * delivery's CPU in a profile).
 */
const TOKEN_PREFIX = randomBytes(12).toString('hex');
let tokenSeq = 0;
const newToken = () => `${TOKEN_PREFIX}:${(++tokenSeq).toString(36)}`;

export interface ClaimOptions {
  /** Lifetime of a claim not extended by its holder (how long a crashed replica blocks the message). */
  readonly ttlMs: number;
  /** How long an attempt waits for another one's claim before proceeding without it. */
  readonly waitMs: number;
  /** Poll interval while waiting. */
  readonly pollMs: number;
}

export class MessageClaims {
  constructor(
    private readonly redis: Redis,
    private readonly opts: ClaimOptions,
    private readonly log?: Logger,
  ) {}

  private key(id: string): string {
    return `delivery:claim:${id}`;
  }

  /**
   * Take the claim of `id` (waiting for another holder as described above) while reading `reads` in the same round
   * trip, run `fn`, release the claim (unless `fn` released it with its own write). Redis errors propagate.
   */
  async withClaim<T>(id: string, fn: (claim: HeldClaim) => Promise<T>, reads: ClaimReads = {}): Promise<T> {
    const claim = await this.take(id, reads);
    const token = claim.token;
    if (token === null) return fn(claim);
    const timer = setInterval(
      () => {
        EXTEND.run(this.redis, [claim.key], [token, this.opts.ttlMs]).catch(() => undefined);
      },
      Math.max(1, Math.floor(this.opts.ttlMs / 3)),
    );
    timer.unref();
    try {
      return await fn(claim);
    } finally {
      clearInterval(timer);
      // A failed release only delays a waiter until the TTL ends; the attempt's outcome stands.
      if (!claim.released) await RELEASE.run(this.redis, [claim.key], [token]).catch(() => undefined);
    }
  }

  private async take(id: string, reads: ClaimReads): Promise<HeldClaim> {
    const key = this.key(id);
    const token = newToken();
    const strings = reads.strings ?? [];
    const keys = [key, ...(reads.hash !== undefined ? [reads.hash] : []), ...strings, ...(reads.ttls ?? [])];
    const run = (force: boolean) =>
      TAKE.run(this.redis, keys, [
        token,
        this.opts.ttlMs,
        force ? '1' : '0',
        reads.hash !== undefined ? '1' : '0',
        strings.length,
      ]) as Promise<[string[], (string | null)[], number[]] | null>;
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      let got = await run(false);
      let held = true;
      if (!got && Date.now() >= deadline) {
        this.log?.warn(
          { msgId: id, waitedMs: this.opts.waitMs },
          'delivery claim still held by another attempt: proceeding without it (markers re-checked)',
        );
        got = await run(true);
        held = false;
      }
      if (got) {
        const [flat, values, ttls] = got;
        const hash: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
        return { key, token: held ? token : null, hash, strings: values, ttls, released: false };
      }
      await sleep(this.opts.pollMs);
    }
  }
}
