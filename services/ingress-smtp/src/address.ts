import net from 'node:net';
import { domainToASCII } from 'node:url';

/**
 * Strict parsing of SMTP paths (RFC 5321 §4.1.2) as the client sent them, independent of smtp-server's own
 * (lenient, Unicode-converting) parser. Relay control decides on what this returns, so every classic relay
 * trick has to come out either as a syntax error or as a mailbox whose *routing* is visible:
 *
 *   `%` hack `user%foreign@ours`, bang path `foreign!user@ours`, quoted `"user@foreign"@ours`
 *       → parsed, `routed: true` (the local part carries another destination). Relay control never treats a
 *         routed mailbox as local mail, so an untrusted client gets "relaying denied".
 *   source route `<@ours:user@foreign>` → the route is dropped (RFC 5321 Appendix C: MUST accept, SHOULD
 *       ignore) and the final mailbox `user@foreign` is what relay control sees.
 *   `user@foreign@ours`, `user@ours.` (trailing dot), `user@[...]` with a bad literal, control characters,
 *       over-long parts → syntax error.
 *   address literal `user@[192.0.2.1]` → parsed, `literal: true` (never an accepted domain).
 *   case and IDN: the domain is compared as lower-case ASCII (IDNA), so `OURS.TEST` is ours and a homograph
 *       such as `ours.tеst` (Cyrillic е) is `xn--…`, i.e. foreign.
 */

export interface Mailbox {
  /** Local part as it must be written on the wire: dot-string, or quoted-string when it needs quoting. */
  readonly local: string;
  /** Local part with quoting removed (what the mailbox owner's system sees). */
  readonly localUnquoted: string;
  /** Lower-case ASCII domain (IDNA), or the address literal in brackets, e.g. `[192.0.2.1]`. */
  readonly domain: string;
  /** `local@domain`, the form stored in the envelope. */
  readonly address: string;
  /** The domain is an address literal. */
  readonly literal: boolean;
  /** The local part contains `@`, `%` or `!`: it names another destination (relay tricks). */
  readonly routed: boolean;
}

export type PathParse =
  | { readonly ok: true; readonly mailbox: Mailbox | null; readonly sourceRoute: boolean; readonly params: string }
  | { readonly ok: false; readonly reason: string };

const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;
const MAX_PATH = 256;

// RFC 5322 atext plus UTF-8 (RFC 6531). `%` and `!` are valid atext: they are flagged as routing, not refused.
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
// Characters no address may contain anywhere (controls, DEL, C1, zero-width/format characters).
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060\ufeff]/u;
const ROUTING = /[@%!]/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function fail(reason: string): PathParse {
  return { ok: false, reason };
}

/** Parse a dot-string local part. */
function dotString(s: string): boolean {
  if (!s || s.startsWith('.') || s.endsWith('.') || s.includes('..')) return false;
  return s.split('.').every((atom) => ATEXT.test(atom));
}

/**
 * Normalise a domain: IDNA to lower-case ASCII, strict LDH labels, no trailing dot. Returns null when invalid.
 * Exported for the accepted-domain list, which must be normalised the same way.
 */
export function normalizeDomain(raw: string): string | null {
  if (!raw || raw.length > MAX_DOMAIN || raw.endsWith('.') || raw.startsWith('.') || UNSAFE.test(raw)) return null;
  // domainToASCII also maps full-width dots and case; it returns '' for what IDNA rejects.
  const ascii = /^[\x21-\x7e]*$/.test(raw) ? raw.toLowerCase() : domainToASCII(raw);
  if (!ascii || ascii.length > MAX_DOMAIN || ascii.endsWith('.')) return null;
  const labels = ascii.split('.');
  if (!labels.every((l) => LABEL.test(l))) return null;
  return ascii;
}

function parseLiteral(lit: string): string | null {
  const inner = lit.slice(1, -1);
  if (/^ipv6:/i.test(inner)) {
    const v6 = inner.slice(5);
    return net.isIPv6(v6) ? `[IPv6:${v6.toLowerCase()}]` : null;
  }
  return net.isIPv4(inner) ? `[${inner}]` : null;
}

/** Parse a quoted-string local part at the start of `s`; returns [unquoted, restIndex] or null. */
function quotedString(s: string): [string, number] | null {
  let out = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      const n = s[i + 1];
      if (n === undefined || n < ' ' || n > '~') return null; // quoted-pair = "\" %d32-126
      out += n;
      i++;
    } else if (c === '"') {
      return [out, i + 1];
    } else if (c < ' ' || c === '\x7f') {
      return null;
    } else {
      out += c;
    }
  }
  return null;
}

/** Parse `local@domain` (no angle brackets). */
export function parseMailbox(s: string): Mailbox | { error: string } {
  if (UNSAFE.test(s)) return { error: 'control or invisible characters in address' };
  let local: string;
  let localUnquoted: string;
  let rest: string;
  if (s.startsWith('"')) {
    const q = quotedString(s);
    if (!q) return { error: 'unterminated or invalid quoted local part' };
    [localUnquoted] = q;
    rest = s.slice(q[1]);
    if (!rest.startsWith('@')) return { error: 'expected @ after quoted local part' };
    // A quoted string that is a valid dot-string is the same mailbox unquoted (RFC 5321 §4.1.2).
    local = dotString(localUnquoted) ? localUnquoted : `"${localUnquoted.replace(/(["\\])/g, '\\$1')}"`;
  } else {
    const at = s.indexOf('@');
    if (at <= 0) return { error: 'missing local part or @' };
    local = localUnquoted = s.slice(0, at);
    rest = s.slice(at);
    if (!dotString(local)) return { error: 'invalid local part' };
  }
  const rawDomain = rest.slice(1);
  if (!rawDomain) return { error: 'missing domain' };
  if (Buffer.byteLength(local) > MAX_LOCAL) return { error: 'local part longer than 64 octets' };
  let domain: string | null;
  let literal = false;
  if (rawDomain.startsWith('[')) {
    if (!rawDomain.endsWith(']')) return { error: 'invalid address literal' };
    domain = parseLiteral(rawDomain);
    literal = true;
  } else {
    if (rawDomain.includes('@')) return { error: 'more than one @ outside a quoted local part' };
    domain = normalizeDomain(rawDomain);
  }
  if (!domain) return { error: `invalid domain ${JSON.stringify(rawDomain)}` };
  const address = `${local}@${domain}`;
  if (Buffer.byteLength(address) > MAX_PATH - 2) return { error: 'path longer than 256 octets' };
  return { local, localUnquoted, domain, address, literal, routed: ROUTING.test(localUnquoted) };
}

/**
 * Parse the argument of `MAIL FROM:` or `RCPT TO:` exactly as received: `<path> [params]`.
 * `allowNull` accepts `<>` (reverse-path only).
 */
export function parsePath(arg: string, opts: { allowNull: boolean }): PathParse {
  const s = arg.trimStart();
  if (!s.startsWith('<')) return fail('path must be enclosed in <>');
  // The path ends at the first '>' that is not inside a quoted local part.
  let end = -1;
  let inQuote = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (inQuote && c === '\\') i++;
    else if (c === '"') inQuote = !inQuote;
    else if (!inQuote && c === '>') {
      end = i;
      break;
    } else if (!inQuote && c === '<') return fail('nested <');
  }
  if (end < 0) return fail('missing closing >');
  let inner = s.slice(1, end);
  const params = s.slice(end + 1);
  if (params && !/^ /.test(params)) return fail('parameters must be separated by a space');
  let sourceRoute = false;
  // A-d-l: "@" domain *( "," "@" domain ) ":" — accepted and ignored (RFC 5321 §4.1.2, Appendix C).
  const route = /^@[^\s,:@"]+(?:,@[^\s,:@"]+)*:/.exec(inner);
  if (route) {
    const hops = route[0].slice(0, -1).split(',');
    if (!hops.every((h) => normalizeDomain(h.slice(1)) !== null || /^@\[.*\]$/.test(h))) {
      return fail('invalid source route');
    }
    inner = inner.slice(route[0].length);
    sourceRoute = true;
  }
  if (inner === '') {
    if (sourceRoute) return fail('source route without a mailbox');
    return opts.allowNull ? { ok: true, mailbox: null, sourceRoute, params: params.trim() } : fail('empty path');
  }
  const mb = parseMailbox(inner);
  if ('error' in mb) return fail(mb.error);
  return { ok: true, mailbox: mb, sourceRoute, params: params.trim() };
}

/**
 * Split an SMTP command line `MAIL FROM:<…> params` / `RCPT TO:<…> params` into verb and argument.
 * Returns null when the line is not that command.
 */
export function commandArgument(line: string, verb: 'MAIL FROM' | 'RCPT TO'): string | null {
  const m = /^(MAIL\s+FROM|RCPT\s+TO)\s*:(.*)$/is.exec(line);
  if (!m) return null;
  if (m[1]!.replace(/\s+/, ' ').toUpperCase() !== verb) return null;
  return m[2]!;
}
