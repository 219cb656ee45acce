import { headerFields, stripComments, unfold } from './header-bytes.js';
import type { AuthResults } from './results.js';

/**
 * Authentication-Results (RFC 8601): building ours, and removing incoming ones that claim to be ours.
 * A downstream filter (Exchange transport rules, Sieve, a mail client) trusts an A-R header by its authserv-id,
 * so a forged one with our id must never survive ingress.
 */

/** RFC 2045 token: printable ASCII except SPACE and tspecials. */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
/** RFC 5321 dot-string local part @ domain, as RFC 8601 pvalue allows without quoting. */
const ADDR =
  /^[!#$%&'*+\-/=?^_`{|}~A-Za-z0-9]+(\.[!#$%&'*+\-/=?^_`{|}~A-Za-z0-9]+)*@[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** A property value: token or address as is, otherwise a quoted-string. */
export function pvalue(v: string): string {
  if (TOKEN.test(v) || ADDR.test(v)) return v;
  // eslint-disable-next-line no-control-regex
  return `"${v.replace(/[\x00-\x1f\x7f]/g, '?').replace(/(["\\])/g, '\\$1')}"`;
}

/** A comment: control characters dropped, parentheses and backslashes escaped, length capped. */
export function comment(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 200);
  return `(${clean.replace(/([()\\])/g, '\\$1')})`;
}

export interface AuthResultsOptions {
  /** DMARC disposition applied (RFC 7489 §11.2 "dis"), shown in the dmarc comment. */
  readonly disposition?: 'none' | 'quarantine' | 'reject';
  /** Client IP for arc's smtp.remote-ip (RFC 8617 §10.2). */
  readonly remoteIp?: string;
}

/** The resinfo clauses (method=result ptype.prop=value …), in RFC 8601 order of usefulness: spf, dkim, dmarc, arc. */
export function authResultsClauses(results: AuthResults, opts: AuthResultsOptions = {}): string[] {
  const out: string[] = [];
  const { spf, dkim, dmarc, arc } = results;
  if (spf) {
    const props = spf.identity === 'helo' ? `smtp.helo=${pvalue(spf.helo)}` : `smtp.mailfrom=${pvalue(spf.mailFrom)}`;
    out.push(`spf=${spf.result}${spf.reason ? ` ${comment(spf.reason)}` : ''} ${props}`);
  }
  if (dkim) {
    if (dkim.signatures.length === 0) out.push('dkim=none');
    for (const s of dkim.signatures) {
      const why = s.reason ?? (s.result === 'pass' && s.keyBits ? `${s.keyBits}-bit key` : undefined);
      const props = [
        s.domain ? `header.d=${pvalue(s.domain)}` : '',
        s.selector ? `header.s=${pvalue(s.selector)}` : '',
        s.algorithm ? `header.a=${pvalue(s.algorithm)}` : '',
        s.b ? `header.b=${pvalue(s.b)}` : '',
      ].filter(Boolean);
      out.push([`dkim=${s.result}`, why ? comment(why) : '', ...props].filter(Boolean).join(' '));
    }
  }
  if (dmarc) {
    const c = [
      dmarc.p ? `p=${dmarc.p.toUpperCase()}` : '',
      dmarc.sp && dmarc.sp !== dmarc.p ? `sp=${dmarc.sp.toUpperCase()}` : '',
      dmarc.pct !== undefined && dmarc.pct < 100 ? `pct=${dmarc.pct}` : '',
      opts.disposition ? `dis=${opts.disposition.toUpperCase()}` : '',
      dmarc.result !== 'pass' && dmarc.result !== 'none' && dmarc.reason ? dmarc.reason : '',
    ]
      .filter(Boolean)
      .join(' ');
    const from = dmarc.fromDomain ? ` header.from=${pvalue(dmarc.fromDomain)}` : '';
    out.push(`dmarc=${dmarc.result}${c ? ` ${comment(c)}` : ''}${from}`);
  }
  if (arc) {
    const c = [
      arc.instance ? `i=${arc.instance}` : '',
      arc.sealer ? `sealer=${arc.sealer}` : '',
      arc.result !== 'pass' && arc.reason ? arc.reason : '',
    ]
      .filter(Boolean)
      .join(' ');
    const ip = opts.remoteIp ? ` smtp.remote-ip=${pvalue(opts.remoteIp)}` : '';
    out.push(`arc=${arc.result}${c ? ` ${comment(c)}` : ''}${ip}`);
  }
  return out;
}

/** The value after "Authentication-Results:" (no line ends): what ARC sealing records as AAR. */
export function authResultsValue(authservId: string, results: AuthResults, opts: AuthResultsOptions = {}): string {
  const clauses = authResultsClauses(results, opts);
  return `${authservId}; ${clauses.length ? clauses.join('; ') : 'none'}`;
}

/** The full header field, one resinfo per folded line, CRLF-terminated; prepend it to the message. */
export function authResultsHeader(authservId: string, results: AuthResults, opts: AuthResultsOptions = {}): string {
  const clauses = authResultsClauses(results, opts);
  if (clauses.length === 0) return `Authentication-Results: ${authservId}; none\r\n`;
  return `Authentication-Results: ${authservId};\r\n\t${clauses.join(';\r\n\t')}\r\n`;
}

/**
 * The authserv-id of an Authentication-Results value (unfolded or not): leading CFWS skipped, then a token or a
 * quoted-string. Lower-cased, a trailing dot dropped. The optional version after it is not part of the id.
 */
export function authservIdOf(value: string): string | undefined {
  const v = stripComments(unfold(value)).replace(/^[ \t\r\n]+/, '');
  if (v.startsWith('"')) {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const c = v[i]!;
      if (c === '\\') {
        out += v[++i] ?? '';
        continue;
      }
      if (c === '"') return out.toLowerCase().replace(/\.$/, '');
      out += c;
    }
    return undefined; // unterminated quote
  }
  const m = /^[^\s;()"]+/.exec(v);
  return m ? m[0].toLowerCase().replace(/\.$/, '') : undefined;
}

export interface RemovedHeaders {
  readonly raw: Buffer;
  /** Number of fields removed. */
  readonly removed: number;
}

/**
 * Removes every Authentication-Results field whose authserv-id is one of `ids` (case-insensitive), with all its
 * continuation lines, leaving every other byte as it was. With `all`, removes every Authentication-Results
 * field (RFC 8601 §5 allows a border MTA to do so). ARC-Authentication-Results are never touched: they belong
 * to the ARC chain.
 */
export function removeAuthResults(raw: Buffer, ids: readonly string[], opts: { all?: boolean } = {}): RemovedHeaders {
  const want = new Set(ids.map((i) => i.toLowerCase().replace(/\.$/, '')));
  return removeFieldsWhere(raw, (key, value) => {
    if (key !== 'authentication-results') return false;
    if (opts.all) return true;
    const id = authservIdOf(value);
    return id !== undefined && want.has(id);
  });
}

/** Removes every header field with one of these names (case-insensitive). */
export function removeFields(raw: Buffer, names: readonly string[]): RemovedHeaders {
  const want = new Set(names.map((n) => n.toLowerCase()));
  return removeFieldsWhere(raw, (key) => want.has(key));
}

function removeFieldsWhere(raw: Buffer, drop: (key: string, rawValue: string) => boolean): RemovedHeaders {
  const { fields } = headerFields(raw);
  const cut = fields.filter((f) => drop(f.key, f.rawValue));
  if (cut.length === 0) return { raw, removed: 0 };
  const parts: Buffer[] = [];
  let pos = 0;
  for (const f of cut) {
    parts.push(raw.subarray(pos, f.start));
    pos = f.end;
  }
  parts.push(raw.subarray(pos));
  return { raw: Buffer.concat(parts), removed: cut.length };
}
