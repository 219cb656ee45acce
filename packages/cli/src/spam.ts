import { readFile } from 'node:fs/promises';
import { flagString, parseArgs, type Out } from './args.js';
import { ADMIN_OPTIONS, adminRequest, connectAdmin } from './connection.js';
import { table } from './track.js';

/**
 * `mailgate spam not-spam|mark|stat`: teach rspamd's Bayes filter through the admin API (every action audited with
 * the token's name). Same connection options as `mailgate track` and `mailgate lists`.
 */
export const SPAM_USAGE = `Usage:
  mailgate spam not-spam <ID> [--recheck]     release a message spam-check quarantined; rspamd learns it as ham
  mailgate spam mark <ID> [--eml FILE]        rspamd learns a tracked message as spam (bytes from the quarantine,
                                              or FILE for a delivered message, e.g. the .eml a user reported)
  mailgate spam stat [--json]                 rspamd's Bayes statistics (learned messages per class)
${ADMIN_OPTIONS}
Exit codes: 0 done, 1 not found or not possible, 64 usage, 69 admin service or rspamd unreachable, 77 token refused.`;

export async function runSpam(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const args = parseArgs(argv);
  const [, cmd, id] = args.positional;
  if (!cmd || args.flags['help']) {
    out.write(SPAM_USAGE + '\n');
    return cmd || args.flags['help'] ? 0 : 64;
  }
  // Lookups take the least privileged token the config has; changes need an admin token.
  const conn = connectAdmin(args, cmd === 'stat' ? 'read' : 'admin', err);
  if (typeof conn === 'number') return conn;
  let method: 'GET' | 'POST' = 'POST';
  let path: string;
  let body: string | Buffer | undefined;
  let contentType: string | undefined;
  if (cmd === 'stat') {
    method = 'GET';
    path = '/api/v1/spam/stat';
  } else if (cmd === 'not-spam' || cmd === 'mark') {
    if (!id) {
      err.write(`spam ${cmd} needs a message id\n\n${SPAM_USAGE}\n`);
      return 64;
    }
    if (cmd === 'not-spam') {
      path = `/api/v1/quarantine/${encodeURIComponent(id)}/not-spam`;
      body = JSON.stringify({ recheck: args.flags['recheck'] === true || args.flags['recheck'] === 'true' });
      contentType = 'application/json';
    } else {
      path = `/api/v1/messages/${encodeURIComponent(id)}/mark-spam`;
      const eml = flagString(args, 'eml');
      if (eml) {
        try {
          body = await readFile(eml);
        } catch (e) {
          err.write(`cannot read ${eml}: ${(e as Error).message}\n`);
          return 64;
        }
        contentType = 'message/rfc822';
      }
    }
  } else {
    err.write(`unknown spam command ${cmd}\n\n${SPAM_USAGE}\n`);
    return 64;
  }

  const res = await adminRequest(
    conn,
    // Learning waits for rspamd's Redis writes: longer than a lookup. 409: not a spam-check quarantine.
    { path, method, ...(body !== undefined ? { body } : {}), contentType, timeoutMs: 60_000, notFound: [404, 409] },
    err,
  );
  if ('code' in res) return res.code;
  const json = res.body;
  if (args.flags['json']) {
    out.write(JSON.stringify(json, null, 2) + '\n');
    return 0;
  }
  const learned = json['learned'] as { class: string; learned: boolean; alreadyLearned: boolean } | undefined;
  const verb = (l: NonNullable<typeof learned>) =>
    l.alreadyLearned ? `rspamd had already learned it as ${l.class}` : `rspamd learned it as ${l.class}`;
  if (cmd === 'stat') {
    const files = (json['statfiles'] as { symbol: string; learned: number }[]) ?? [];
    out.write(
      table(
        ['STATFILE', 'LEARNED'],
        files.map((f) => [f.symbol, String(f.learned)]),
      ),
    );
    out.write(`total learned ${String(json['learned'])}, scanned ${String(json['scanned'])}\n`);
  } else if (cmd === 'not-spam') {
    const r = json['released'] as { topic: string };
    out.write(`released ${id} to ${r.topic}; ${verb(learned!)}\n`);
  } else out.write(`marked ${id} as spam; ${verb(learned!)}\n`);
  return 0;
}
