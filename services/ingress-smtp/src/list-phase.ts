import { LiveLists, seedEntries, type ListsConfig } from '@mailgate/lists';
import type { Logger } from '@mailgate/runtime';
import type { Redis } from 'ioredis';
import { REPLIES, type SmtpReply } from './replies.js';

/**
 * The live sender/IP lists at connect and MAIL FROM (ingress.lists, packages/lists). Trusted networks and
 * authenticated clients are never matched (our own servers and users cannot be locked out by a list entry); an
 * allow-listed IP skips the connection-time DNSBL check; ip-allow wins over ip-block.
 */

/** The 554 / 550 reply for a listed client or sender (REPLIES.ipBlocked / senderBlocked). */
export type ListRefusal = SmtpReply;

export interface ListPhase {
  /** At connect: a refusal (554 5.7.1), or whether the DNSBL check is skipped (allow-listed). */
  atConnect(ip: string): { refusal: ListRefusal | null; skipDnsbl: boolean };
  /** At MAIL FROM (not called for trusted / authenticated clients): 550 5.7.1 for a blocked sender. */
  atMailFrom(sender: string): ListRefusal | null;
  readonly lists: LiveLists;
  close(): Promise<void>;
}

export async function createListPhase(opts: {
  config: ListsConfig;
  redis: Redis;
  log: Logger;
}): Promise<ListPhase | null> {
  if (!opts.config.enabled) return null;
  const lists = new LiveLists(opts.redis, {
    seed: seedEntries(opts.config),
    refreshIntervalMs: opts.config.refreshIntervalMs,
    onError: (err) => opts.log.warn({ err: err.message }, 'lists: redis error (keeping the last snapshot)'),
    onReload: (version, count) => opts.log.debug({ version, count }, 'lists reloaded'),
  });
  await lists.start();
  return {
    lists,
    close: () => lists.close(),
    atConnect(ip) {
      const m = lists.snapshot.checkIp(ip);
      if (m.action === 'block') {
        return { refusal: REPLIES.ipBlocked(ip, m.entry?.reason), skipDnsbl: true };
      }
      return { refusal: null, skipDnsbl: m.action === 'allow' };
    },
    atMailFrom(sender) {
      if (!sender) return null; // the null sender (bounces) is never blocked
      const m = lists.snapshot.checkSender(sender);
      if (m.action !== 'block') return null;
      return REPLIES.senderBlocked(sender);
    },
  };
}
