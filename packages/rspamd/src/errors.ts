import { MailgateError } from '@mailgate/runtime';

/** What went wrong talking to rspamd: decides whether the stage holds (tempfail) or reports a bug. */
export type RspamdErrorKind = 'connect' | 'timeout' | 'closed' | 'http' | 'protocol';

/**
 * rspamd could not give an answer: not reachable, too slow, a 5xx, or an answer we cannot read. Always temporary
 * (451 4.3.0 / HTTP 503): the spam-check stage holds the message (fail closed) unless `failOpen` is set.
 */
export class RspamdUnavailableError extends MailgateError {
  override readonly name = 'RspamdUnavailableError';
  readonly dependency = 'rspamd';
  constructor(
    readonly endpoint: string,
    readonly kind: RspamdErrorKind,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`rspamd ${endpoint}: ${message}`, { code: 451, status: '4.3.0' }, 503, options);
  }
}

/**
 * The controller refused a request for a reason retrying will not fix: wrong password (401/403), a message rspamd
 * cannot learn (400: too small, no text). HTTP meaning: 502 for auth (our config is wrong), 422 for the message.
 */
export class RspamdRequestError extends MailgateError {
  override readonly name = 'RspamdRequestError';
  constructor(
    readonly endpoint: string,
    readonly status: number,
    message: string,
  ) {
    super(
      `rspamd ${endpoint}: ${status} ${message}`,
      { code: 451, status: '4.3.0' },
      status === 401 || status === 403 ? 502 : 422,
    );
  }
}

/** Why rspamd declined to learn a message (its 204 reply; the reason is in the status line). */
export type NotLearnedReason = 'too-few-tokens' | 'conditions-denied' | 'other';

/**
 * rspamd declined to learn the message: too few tokens for Bayes ("contains less tokens than required"), or its
 * learn conditions said no ("all learn conditions denied": typically Bayes already rates the message as that class
 * with near certainty). Nothing changed in Bayes; retrying will not change the answer. HTTP meaning: 422.
 */
export class RspamdNotLearnedError extends MailgateError {
  override readonly name = 'RspamdNotLearnedError';
  readonly reason: NotLearnedReason;
  constructor(
    readonly endpoint: string,
    /** rspamd's own words (the reason phrase of its 204). */
    readonly detail: string,
  ) {
    super(`rspamd did not learn the message: ${detail}`, { code: 550, status: '5.7.0' }, 422);
    this.reason = /less tokens than required/i.test(detail)
      ? 'too-few-tokens'
      : /learn conditions denied/i.test(detail)
        ? 'conditions-denied'
        : 'other';
  }
}
