import { DependencyUnavailableError } from '@mailgate/runtime';

/**
 * How talking to one clamd failed; `kind` is also the metric label of mailgate_clamd_errors_total. `busy`: every
 * session of this endpoint stayed busy for the scan's whole wait (sessionWaitMs, one per message), the scan never
 * reached clamd (clamd is not marked unhealthy).
 */
export type ClamdFailureKind = 'connect' | 'timeout' | 'closed' | 'protocol' | 'scan-error' | 'busy';

/**
 * One clamd could not give an answer (refused, timed out, reset mid-stream, answered ERROR). The pool tries
 * the next endpoint; when none answers it throws ClamdUnavailableError. Never means "clean".
 */
export class ClamdError extends Error {
  override readonly name = 'ClamdError';
  constructor(
    readonly kind: ClamdFailureKind,
    readonly endpoint: string,
    message: string,
    options?: { cause?: unknown; resetBeforeReply?: boolean },
  ) {
    super(`${endpoint}: ${message}`, options);
    this.resetBeforeReply = options?.resetBeforeReply ?? false;
  }
  /** clamd reset the connection before any reply arrived (see ClamdPool's size-limit probe). */
  readonly resetBeforeReply: boolean;
}

/** No configured clamd answered: the stage tempfails (or fails open, if the operator said so). */
export class ClamdUnavailableError extends DependencyUnavailableError {
  constructor(readonly failures: readonly ClamdError[]) {
    super(
      'clamd',
      failures.length === 0 ? 'no endpoint configured' : failures.map((f) => `${f.kind}: ${f.message}`).join('; '),
    );
  }
}
