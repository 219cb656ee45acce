import type { IngressConfig, ListenerKind } from '../config.js';
import { REPLIES, replyText, type SmtpReply } from '../replies.js';
import { BARE_CR, type CommandRefusal } from '../smtp-guard.js';

/**
 * Every command line, before smtp-server parses it (smtp-guard.ts `beforeCommand`): the session clock, line
 * endings, line length, PROXY from untrusted peers, talking before the greeting, AUTH before STARTTLS and the
 * unknown-command budget — Postfix's smtpd line checks, as one pure function of the line and the session.
 */

/** RFC 4954 §4: an AUTH command line (with its initial response) and SASL response lines may be this long. */
export const AUTH_LINE_OCTETS = 12_288;

export interface CommandLine {
  readonly listener: ListenerKind;
  /** The line as one char per octet, without its CRLF. */
  readonly line: string;
  /** BARE_LF / BARE_CR flags smtp-guard found in it. */
  readonly flags: number;
  readonly expired: boolean;
  /** The greeting was sent (smtp-server answers early talkers itself). */
  readonly ready: boolean;
  readonly secure: boolean;
  /** The line is a SASL response, not a command. */
  readonly inAuthExchange: boolean;
  /** smtp-server knows the command. */
  readonly known: boolean;
  /** Unrecognised commands earlier in this session. */
  readonly unknownSoFar: number;
}

export type CommandSettings = Pick<IngressConfig, 'lineEndings'> & {
  readonly limits: Pick<IngressConfig['limits'], 'maxCommandLineOctets' | 'maxUnknownCommands'>;
};

export interface CommandDecision {
  /** Refusal reasons to count (also when the line goes on: a normalised bare LF, an early talker). */
  readonly reasons: readonly string[];
  /** Answer the line ourselves (and close when told); absent = smtp-server handles it. */
  readonly refuse?: CommandRefusal;
  /** A command (not a SASL response): remember it, MAIL/RCPT arguments are parsed from it. */
  readonly remember?: boolean;
  /** An unrecognised command: count it (ingress keeps the limit, not the library). */
  readonly unknownCommand?: boolean;
  /** Drop the SASL exchange in progress: the client's next line is a command again. */
  readonly cancelAuthExchange?: boolean;
}

const answer = (r: SmtpReply, close: boolean): CommandRefusal => ({ code: r.code, text: replyText(r), close });

export function commandPhase(c: CommandLine, s: CommandSettings): CommandDecision {
  if (c.expired) return { reasons: [], refuse: answer(REPLIES.sessionExpired, true) };
  const reasons: string[] = [];
  if (c.flags) {
    reasons.push('bare-cr-lf');
    if (s.lineEndings === 'reject') return { reasons, refuse: answer(REPLIES.bareLineEndingInCommand, true) };
    if (c.flags & BARE_CR) return { reasons, refuse: answer(REPLIES.bareCrInCommand, false) };
    // normalize: a bare LF ends the line like CRLF (which is how smtp-server already split it).
  }
  const name = (c.line.split(' ', 1)[0] ?? '').toUpperCase();
  // The limit counts the CRLF (RFC 5321).
  const octets = c.line.length + 2;
  if (octets > s.limits.maxCommandLineOctets) {
    const auth = c.inAuthExchange || name === 'AUTH';
    if (!auth || octets > AUTH_LINE_OCTETS) {
      // The line is dropped whole and the session stays usable (smtp-server already split it off the stream).
      // A SASL exchange is cancelled, so the client's next line is read as a command again.
      reasons.push('line-too-long');
      if (!auth) return { reasons, refuse: answer(REPLIES.lineTooLong, false) };
      return { reasons, refuse: answer(REPLIES.authLineTooLong, false), cancelAuthExchange: true };
    }
  }
  if (name === 'PROXY' && !c.inAuthExchange) {
    reasons.push('proxy-untrusted');
    return { reasons, refuse: answer(REPLIES.proxyNotAccepted, true) };
  }
  if (!c.ready) {
    reasons.push('pregreet');
    return { reasons }; // smtp-server answers "421 You talk too soon" and closes
  }
  if (c.inAuthExchange) return { reasons };
  if (c.listener === 'submission' && name === 'AUTH' && !c.secure) {
    reasons.push('auth-before-tls');
    return { reasons, remember: true, refuse: answer(REPLIES.startTlsFirst, false) };
  }
  if (c.known) return { reasons, remember: true };
  if (c.unknownSoFar + 1 < s.limits.maxUnknownCommands) return { reasons, remember: true, unknownCommand: true };
  reasons.push('unknown-commands');
  return { reasons, remember: true, unknownCommand: true, refuse: answer(REPLIES.tooManyUnknownCommands, true) };
}
