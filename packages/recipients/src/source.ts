/** One place that knows recipients. `lookup` answers found/unknown, or throws SourceUnavailableError. */
export type LookupResult = 'found' | 'unknown';

export interface RecipientQuery {
  /** Lower-cased address after sub-address stripping: what is looked up and cached. */
  readonly address: string;
  readonly local: string;
  readonly domain: string;
}

export interface RecipientSource {
  readonly name: string;
  readonly type: 'ldap' | 'callout' | 'static';
  /** Whether answers go to the shared Redis cache (static lists answer from memory already). */
  readonly cacheable: boolean;
  lookup(q: RecipientQuery): Promise<LookupResult>;
  close(): Promise<void>;
}

/** The source could not decide (directory down, timeout, 4xx from the callout target). */
export class SourceUnavailableError extends Error {
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
    this.name = 'SourceUnavailableError';
  }
}
