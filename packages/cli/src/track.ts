import { flagString, parseArgs, type Out } from './args.js';
import { ADMIN_OPTIONS, adminRequest, connectAdmin, EXIT } from './connection.js';

/**
 * `mailgate trace <message-id>` and `mailgate track --rcpt A | --from A | --ip IP`: the admin API's message
 * tracking in the terminal. Talks HTTP to the admin service (found as connection.ts says: flags, env, the config
 * file); needs nothing else installed.
 */
export const TRACK_USAGE = `Usage:
  mailgate trace <message-id> [--json]                      one message's timeline: every service, verdict, delivery reply
  mailgate track [--rcpt ADDR|@DOMAIN] [--from ADDR|@DOMAIN|<>] [--ip IP] [--message-id ID]
                 [--subject WORDS] [--status STATUS] [--auth fail|pass|none] [--since TIME] [--until TIME]
                 [--limit N | --all] [--cursor C] [--json]   search (newest first; criteria combine)
${ADMIN_OPTIONS}
--status: the message's current status: in-pipeline, held, quarantined, dead-lettered, released, deferred,
partially-delivered, delivered, bounced, deleted, or refused (refused during the SMTP session).
--since/--until: the time range of the message's first event.
--auth fail: messages whose SPF, DKIM or DMARC check failed, including those refused for it during SMTP.
TIME is ISO 8601 (2026-03-01T10:00:00Z) or milliseconds since the epoch. Results come in pages of 200, followed
up to --limit (default 1000; --all for every one); when more exist it says so on stderr with the --cursor that
continues from there.
Exit codes: 0 found, 1 nothing found, 64 usage, 69 admin service unreachable, 77 token refused.`;

const PAGE = 200;
const DEFAULT_LIMIT = 1000;

interface Summary {
  id: string;
  mailFrom: string;
  rcptTo: string[];
  clientIp: string;
  traceId: string;
  status: string;
  firstSeen: string;
  ingressHost: string;
  /** Sender authentication class: pass, fail, none (older admin services do not send it). */
  auth?: string;
  /** Each recipient's own status (older admin services do not send it). */
  recipients?: { rcpt: string; status: string; at: string; reply?: string; remoteHost?: string }[];
}

interface Event {
  type: string;
  at: string;
  service: string;
  host: string;
  details?: Record<string, unknown>;
}

/** Plain text table, columns padded to their widest cell (the last column is not padded). */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** One line saying what an event means: the verdict and reason, the remote reply, who released it. */
export function describeEvent(e: Event): string {
  const d = e.details ?? {};
  const parts: string[] = [];
  const v = d['verdict'] as { kind?: string; reason?: string } | undefined;
  if (v?.kind) parts.push(v.reason ? `${v.kind}: ${v.reason}` : v.kind);
  for (const k of ['rcpt', 'mx', 'reply', 'error', 'by', 'topic', 'reason']) {
    const x = d[k];
    if (x !== undefined && x !== null && x !== '' && !(k === 'reason' && v?.reason))
      parts.push(`${k}=${typeof x === 'string' ? x : JSON.stringify(x)}`);
  }
  if (typeof d['durationMs'] === 'number') parts.push(`${d['durationMs']} ms`);
  if (parts.length === 0 && Object.keys(d).length) parts.push(JSON.stringify(d));
  const s = parts.join(', ');
  return s.length > 160 ? s.slice(0, 159) + '…' : s;
}

function timeParam(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v)) return v;
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) throw new UsageError(`not a time: ${v}`);
  return String(ms);
}

class UsageError extends Error {}

export async function runTrack(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const args = parseArgs(argv);
  const positional = [...args.positional];
  if (positional[0] === 'trace' || positional[0] === 'track') positional.shift();
  if (args.flags['help']) {
    out.write(TRACK_USAGE + '\n');
    return 0;
  }
  const conn = connectAdmin(args, 'read', err);
  if (typeof conn === 'number') return conn;
  const asJson = args.flags['json'] === true;
  let path: string;
  let wanted = Infinity;
  try {
    if (positional.length > 1) throw new UsageError('one message id at a time');
    if (positional[0]) {
      path = `/api/v1/messages/${encodeURIComponent(positional[0])}`;
    } else {
      const q = new URLSearchParams();
      for (const k of ['rcpt', 'from', 'ip', 'status', 'subject', 'auth'] as const) {
        const v = flagString(args, k);
        if (v !== undefined) q.set(k, v);
      }
      const mid = flagString(args, 'message-id');
      if (mid !== undefined) q.set('messageId', mid);
      const lim = flagString(args, 'limit');
      if (lim !== undefined && !/^[1-9]\d*$/.test(lim)) throw new UsageError(`--limit: not a positive number: ${lim}`);
      if (args.flags['all'] !== true) wanted = lim ? Number(lim) : DEFAULT_LIMIT;
      for (const k of ['since', 'until'] as const) {
        const v = timeParam(flagString(args, k));
        if (v !== undefined) q.set(k, v);
      }
      const auth = q.get('auth');
      if (auth !== null && !['fail', 'pass', 'none'].includes(auth))
        throw new UsageError(`--auth: one of fail, pass, none (not ${auth})`);
      if (!['rcpt', 'from', 'ip', 'status', 'messageId', 'subject', 'auth'].some((k) => q.has(k)))
        throw new UsageError('give a message id, or --rcpt, --from, --ip, --message-id, --subject, --auth or --status');
      path = `/api/v1/messages?${q}`;
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`${e.message}\n\n${TRACK_USAGE}\n`);
    return EXIT.usage;
  }

  const get = (p: string) => adminRequest(conn, { path: p }, err);

  let body: Record<string, unknown>;
  if (positional[0]) {
    const r = await get(path);
    if ('code' in r) return r.code;
    body = r.body;
  } else {
    // Follow the pages (the API caps a page) up to --limit; say so when more remain rather than stopping silently.
    const results: unknown[] = [];
    let cursor = flagString(args, 'cursor');
    for (;;) {
      const size = Math.min(PAGE, wanted - results.length);
      const r = await get(`${path}&limit=${size}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if ('code' in r) return r.code;
      results.push(...((r.body['results'] as unknown[]) ?? []));
      cursor = r.body['nextCursor'] as string | undefined;
      if (!cursor || results.length >= wanted) break;
    }
    body = { results, ...(cursor ? { nextCursor: cursor } : {}) };
    if (cursor)
      err.write(
        `more than ${results.length} messages match: narrow the search, pass --limit N or --all, or --cursor ${cursor} for the next page\n`,
      );
  }
  if (asJson) {
    out.write(JSON.stringify(body, null, 2) + '\n');
    return 0;
  }

  if (positional[0]) {
    const s = body['summary'] as Summary;
    const events = body['events'] as Event[];
    out.write(
      [
        `Message   ${s.id}`,
        `From      ${s.mailFrom || '<>'}`,
        ...(s.recipients?.length
          ? s.recipients.map(
              (r, i) =>
                `${i === 0 ? 'To' : '  '}        ${r.rcpt}  ${r.status}${r.reply ? `  ${r.reply}` : ''}${r.remoteHost ? `  (${r.remoteHost})` : ''}`,
            )
          : [`To        ${s.rcptTo.join(', ')}`]),
        `Client    ${s.clientIp}${s.ingressHost ? `  (accepted by ${s.ingressHost})` : ''}`,
        `Status    ${s.status}`,
        ...(s.auth ? [`Auth      ${s.auth}`] : []),
        `Trace     ${s.traceId || '-'}${body['traceUrl'] ? `  ${String(body['traceUrl'])}` : ''}`,
        '',
      ].join('\n') + '\n',
    );
    out.write(
      table(
        ['TIME', 'SERVICE', 'INSTANCE', 'EVENT', 'DETAILS'],
        events.map((e) => [e.at, e.service, e.host, e.type, describeEvent(e)]),
      ),
    );
    return 0;
  }
  const results = body['results'] as Summary[];
  if (results.length === 0) {
    err.write('no messages found\n');
    return EXIT.notFound;
  }
  out.write(
    table(
      ['ID', 'FIRST SEEN', 'FROM', 'TO', 'CLIENT', 'STATUS'],
      results.map((m) => [m.id, m.firstSeen, m.mailFrom || '<>', m.rcptTo.join(','), m.clientIp, m.status]),
    ),
  );
  return 0;
}
