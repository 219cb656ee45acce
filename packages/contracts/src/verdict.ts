/**
 * Verdicts shared by all checking stages. A stage answers one of four things about a message;
 * the bus runner (packages/bus) turns each into an action, so stages never route messages themselves.
 *
 *  - pass       → produced to the stage's output topic.
 *  - quarantine → produced to the quarantine topic with the reason; never delivered unless an admin releases it.
 *  - reject     → like quarantine (the sender already got a 250, and a bounce to a possibly forged sender would
 *                 be backscatter) but recorded as a policy rejection; admins can still inspect it.
 *  - tempfail   → the stage could not decide (scanner down, DNS timeout beyond policy). The runner holds the
 *                 message and retries with backoff; it never passes it on unchecked (fail closed).
 */
export type Verdict =
  | { readonly kind: 'pass' }
  | { readonly kind: 'reject'; readonly reason: string }
  | { readonly kind: 'quarantine'; readonly reason: string }
  | { readonly kind: 'tempfail'; readonly reason: string; readonly retryAfterMs?: number };

export type VerdictKind = Verdict['kind'];

export const pass = (): Verdict => ({ kind: 'pass' });
export const reject = (reason: string): Verdict => ({ kind: 'reject', reason });
export const quarantine = (reason: string): Verdict => ({ kind: 'quarantine', reason });
export const tempfail = (reason: string, retryAfterMs?: number): Verdict =>
  retryAfterMs === undefined ? { kind: 'tempfail', reason } : { kind: 'tempfail', reason, retryAfterMs };
