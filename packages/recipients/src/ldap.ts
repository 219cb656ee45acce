import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'ldapts';
import type { LdapSourceConfig } from './config.js';
import { SourceUnavailableError, type LookupResult, type RecipientQuery, type RecipientSource } from './source.js';

/** RFC 4515 value escaping: a recipient address must never change the shape of the filter. */
export function escapeFilterValue(v: string): string {
  return v.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function renderFilter(template: string, q: RecipientQuery): string {
  return template
    .replaceAll('{address}', escapeFilterValue(q.address))
    .replaceAll('{local}', escapeFilterValue(q.local))
    .replaceAll('{domain}', escapeFilterValue(q.domain));
}

interface Slot {
  client: Client | null;
  bound: boolean;
  /** Serialises (re)connect + bind on this slot. */
  connecting: Promise<Client> | null;
}

/**
 * LDAP / Active Directory lookups with ldapts: a small pool of bound connections, searches spread round-robin.
 * A connection that fails is thrown away and rebuilt (connect, StartTLS, bind) on its next use, so a directory
 * restart costs the searches in flight (→ SourceUnavailableError → 451) and nothing after it is back.
 */
export class LdapSource implements RecipientSource {
  readonly type = 'ldap' as const;
  readonly cacheable = true;
  private readonly slots: Slot[];
  private next = 0;
  private readonly urls: string[];
  private readonly tlsOptions: ConnectionOptions;
  private readonly password: string | undefined;

  constructor(
    readonly name: string,
    private readonly cfg: LdapSourceConfig,
  ) {
    this.urls = cfg.url.split(',').map((u) => u.trim());
    this.tlsOptions = {
      rejectUnauthorized: cfg.rejectUnauthorized,
      ...(cfg.caFile ? { ca: readFileSync(cfg.caFile) } : {}),
    };
    this.password = cfg.bindPasswordFile ? readFileSync(cfg.bindPasswordFile, 'utf8').trim() : cfg.bindPassword;
    this.slots = Array.from({ length: cfg.poolSize }, () => ({ client: null, bound: false, connecting: null }));
  }

  private async connect(slot: Slot, attempt: number): Promise<Client> {
    const url = this.urls[attempt % this.urls.length]!;
    const client = new Client({
      url,
      timeout: this.cfg.timeoutMs,
      connectTimeout: this.cfg.connectTimeoutMs,
      ...(url.startsWith('ldaps:') ? { tlsOptions: this.tlsOptions } : {}),
      strictDN: false,
    });
    try {
      if (this.cfg.startTls && url.startsWith('ldap:')) await client.startTLS(this.tlsOptions);
      if (this.cfg.bindDn) await client.bind(this.cfg.bindDn, this.password ?? '');
    } catch (err) {
      await client.unbind().catch(() => undefined);
      throw err;
    }
    slot.client = client;
    slot.bound = true;
    return client;
  }

  private clientFor(slot: Slot, attempt: number): Promise<Client> {
    if (slot.client && slot.bound && slot.client.isConnected) return Promise.resolve(slot.client);
    slot.connecting ??= this.connect(slot, attempt).finally(() => (slot.connecting = null));
    return slot.connecting;
  }

  private drop(slot: Slot): void {
    const c = slot.client;
    slot.client = null;
    slot.bound = false;
    void c?.unbind().catch(() => undefined);
  }

  async lookup(q: RecipientQuery): Promise<LookupResult> {
    const filter = renderFilter(this.cfg.filter, q);
    const slot = this.slots[this.next++ % this.slots.length]!;
    // One retry on a fresh connection (and the next URL): an idle connection the directory or a firewall closed
    // is not an outage.
    let last: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const client = await this.clientFor(slot, attempt);
        const { searchEntries } = await client.search(this.cfg.baseDn, {
          scope: this.cfg.scope,
          filter,
          attributes: ['1.1'],
          sizeLimit: 1,
        });
        return searchEntries.length > 0 ? 'found' : 'unknown';
      } catch (err) {
        // More than one entry with this address: it exists (a directory with duplicates is still a directory).
        if ((err as Error).name === 'SizeLimitExceededError') return 'found';
        last = err;
        this.drop(slot);
      }
    }
    throw new SourceUnavailableError(this.name, `LDAP lookup failed: ${(last as Error)?.message ?? String(last)}`);
  }

  async close(): Promise<void> {
    for (const s of this.slots) this.drop(s);
  }
}
