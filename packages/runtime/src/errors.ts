/**
 * Errors that carry their protocol meaning, so the edge (SMTP reply, HTTP response) never has to guess.
 * A stage or handler throws one of these; ingress maps `smtp`, fastify handlers map `http`.
 */
export class MailgateError extends Error {
  override readonly name: string = 'MailgateError';
  constructor(
    message: string,
    /** SMTP reply code + enhanced status, e.g. { code: 451, status: '4.3.0' }. */
    readonly smtp: { code: number; status: string } = { code: 451, status: '4.3.0' },
    /** HTTP status for API surfaces. */
    readonly http: number = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  /** True when retrying later may succeed (4xx SMTP). */
  get temporary(): boolean {
    return this.smtp.code < 500;
  }
}

/** A dependency (broker, Redis, clamd, DNS) could not be reached or answered in time. */
export class DependencyUnavailableError extends MailgateError {
  override readonly name = 'DependencyUnavailableError';
  constructor(
    readonly dependency: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency}: ${message}`, { code: 451, status: '4.3.0' }, 503, options);
  }
}
