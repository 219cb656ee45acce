import type { Logger, WindowCounter } from '@mailgate/runtime';
import type { IngressConfig, ListenerKind } from '../config.js';
import { REPLIES } from '../replies.js';
import type { UserStore } from '../users.js';
import { refusal, type Refusal } from './state.js';

/**
 * EHLO / STARTTLS / AUTH: what the session offers and who the client is, before a transaction (Haraka `helo` and
 * `auth`, Postfix `smtpd_helo_restrictions` + SASL). The MX listener never offers AUTH; submission offers it only
 * after STARTTLS (AUTH before TLS is answered 538 by the command gate, phases/command.ts). Failed AUTH is counted
 * per client IP (Redis): past `auth.failures.max` the client gets 454 even with the right password.
 */

/** The EHLO keywords switched off for this listener, TLS state and certificate. */
export function disabledCommands(listener: ListenerKind, tls: boolean, secure: boolean): string[] {
  const base = listener === 'mx' ? ['AUTH', ...(tls ? [] : ['STARTTLS'])] : tls ? [] : ['STARTTLS'];
  return listener === 'submission' && !secure ? [...base, 'AUTH'] : base;
}

export interface AuthAttempt {
  readonly listener: ListenerKind;
  readonly secure: boolean;
  readonly ip: string;
  /** PLAIN, LOGIN, or XCLIENT (LOGIN= from a host in `xclient.trusted`). */
  readonly method: string;
  readonly username?: string | undefined;
  readonly password?: string | null | undefined;
}

export interface AuthDeps {
  readonly users: UserStore;
  /** Failed AUTH per client IP (null: no Redis, the limit is off). */
  readonly failures: WindowCounter | null;
  readonly onRedisError: IngressConfig['limits']['onRedisError'];
  readonly log: Logger;
}

export type AuthOutcome =
  | { readonly user: string | undefined; readonly refuse?: undefined; readonly invalid?: undefined }
  /** `invalid`: wrong credentials, 535 as the SASL answer; otherwise a command error (538, 454). */
  | { readonly user?: undefined; readonly refuse: Refusal; readonly invalid?: boolean };

export async function authPhase(a: AuthAttempt, deps: AuthDeps): Promise<AuthOutcome> {
  // XCLIENT LOGIN= reaches here only from hosts in ingress.xclient.trusted.
  if (a.method === 'XCLIENT') return { user: a.username };
  if (a.listener !== 'submission' || !a.secure) return { refuse: refusal(REPLIES.encryptionRequired) };
  const f = deps.failures;
  if (f?.enabled) {
    try {
      if ((await f.current(a.ip)) >= f.max) return { refuse: refusal(REPLIES.authRateExceeded, 'auth-rate') };
    } catch (err) {
      deps.log.warn({ err }, 'auth failure counter unavailable');
      if (deps.onRedisError === 'tempfail') return { refuse: refusal(REPLIES.authTemporaryFailure) };
    }
  }
  if (await deps.users.verify(a.username ?? '', a.password ?? '')) return { user: a.username };
  deps.log.info({ ip: a.ip, user: a.username }, 'authentication failed');
  await f?.hit(a.ip).catch(() => undefined);
  return { refuse: refusal(REPLIES.authInvalid, 'auth-failed'), invalid: true };
}
