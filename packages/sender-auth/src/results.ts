/**
 * The results of sender authentication, as mailgate records them: plain JSON (they go into the envelope's
 * stage details, tracking and the Authentication-Results header), independent of mailauth's shapes.
 * Result words are RFC 8601's.
 */

export type SpfResultWord = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
export type DkimResultWord = 'pass' | 'fail' | 'neutral' | 'none' | 'policy' | 'temperror' | 'permerror';
export type DmarcResultWord = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
export type ArcResultWord = 'pass' | 'fail' | 'none' | 'temperror';
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface SpfResult {
  readonly result: SpfResultWord;
  /** Which identity was checked: MAIL FROM, or HELO when MAIL FROM is the null sender. */
  readonly identity: 'mailfrom' | 'helo';
  /** The domain checked (MAIL FROM domain, or the HELO name). */
  readonly domain: string;
  /** smtp.mailfrom for Authentication-Results: the MAIL FROM address, or postmaster@<helo>. */
  readonly mailFrom: string;
  readonly helo: string;
  readonly ip: string;
  /** The SPF record that decided, when one was found. */
  readonly record?: string;
  /** Human-readable explanation (mailauth's comment, or ours). */
  readonly reason?: string;
  /** DNS-querying terms used, of the RFC 7208 limit. */
  readonly lookups?: number;
  readonly durationMs: number;
}

export interface DkimSignatureResult {
  readonly result: DkimResultWord;
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  /** a= */
  readonly algorithm: string;
  /** c= */
  readonly canonicalization?: string;
  /** First 8 characters of b= (RFC 6008 header.b), to tell signatures apart. */
  readonly b?: string;
  /** d= shares the organisational domain of the From domain (relaxed DMARC alignment). */
  readonly aligned: boolean;
  /** l= left this many body bytes unsigned. */
  readonly unsignedBodyBytes?: number;
  /** RSA modulus bits, when known. */
  readonly keyBits?: number;
  readonly reason?: string;
}

export interface DkimResults {
  readonly signatures: readonly DkimSignatureResult[];
  readonly durationMs: number;
}

export interface DmarcResult {
  readonly result: DmarcResultWord;
  /** RFC5322.From domain. */
  readonly fromDomain: string;
  /** Its organisational domain (Public Suffix List). */
  readonly orgDomain?: string;
  /** Policy that applies to this From domain (sp= for subdomains when the record was the org domain's). */
  readonly policy?: DmarcPolicy;
  readonly p?: DmarcPolicy;
  readonly sp?: DmarcPolicy;
  /** pct= (percentage of failing mail the policy applies to), 100 when absent. */
  readonly pct?: number;
  readonly record?: string;
  readonly alignment?: {
    readonly spf?: string;
    readonly dkim?: string;
    readonly adkim: 'r' | 's';
    readonly aspf: 'r' | 's';
  };
  readonly reason?: string;
  readonly durationMs: number;
}

/** What the newest ARC set's ARC-Authentication-Results claims, as far as DMARC overrides need it. */
export interface ArcClaims {
  readonly dmarc?: string;
  readonly dmarcFrom?: string;
  readonly spf?: string;
  readonly spfMailFrom?: string;
  readonly dkim?: readonly { readonly result: string; readonly domain?: string }[];
}

export interface ArcResult {
  readonly result: ArcResultWord;
  /** Number of ARC sets (i= of the newest). */
  readonly instance?: number;
  /** d= of the newest ARC-Seal: who vouches for the claims. */
  readonly sealer?: string;
  readonly claims?: ArcClaims;
  readonly reason?: string;
  readonly durationMs: number;
}

export interface AuthResults {
  readonly spf?: SpfResult;
  readonly dkim?: DkimResults;
  readonly dmarc?: DmarcResult;
  readonly arc?: ArcResult;
  /** The From domain(s) seen by the DKIM parser (more than one = DMARC cannot apply). */
  readonly fromDomains?: readonly string[];
}
