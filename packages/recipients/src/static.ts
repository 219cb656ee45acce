import type { StaticSourceConfig } from './config.js';
import type { LookupResult, RecipientQuery, RecipientSource } from './source.js';

/** Glob (`*` only) → anchored, case-insensitive RegExp. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .toLowerCase()
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/**
 * A fixed list: entries without `@` match the local part in any domain the source is used for, entries with `@`
 * the whole address; `*` is a wildcard (`*` alone = catch-all).
 */
export class StaticSource implements RecipientSource {
  readonly type = 'static' as const;
  readonly cacheable = false;
  private readonly exact = new Set<string>();
  private readonly patterns: { re: RegExp; full: boolean }[] = [];

  constructor(
    readonly name: string,
    cfg: Pick<StaticSourceConfig, 'addresses'>,
  ) {
    for (const raw of cfg.addresses) {
      const a = raw.trim().toLowerCase();
      if (a.includes('*')) this.patterns.push({ re: globToRegExp(a), full: a.includes('@') });
      else this.exact.add(a);
    }
  }

  async lookup(q: RecipientQuery): Promise<LookupResult> {
    if (this.exact.has(q.address) || this.exact.has(q.local)) return 'found';
    for (const p of this.patterns) if (p.re.test(p.full ? q.address : q.local)) return 'found';
    return 'unknown';
  }

  async close(): Promise<void> {}
}
