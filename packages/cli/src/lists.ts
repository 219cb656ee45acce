import { flagString, parseArgs, type Out } from './args.js';
import { ADMIN_OPTIONS, adminRequest, connectAdmin } from './connection.js';
import { table } from './track.js';

/**
 * `mailgate lists add|rm|ls`: the live sender/IP allow and block lists through the admin API (so every change is
 * audited with the token's name). Same connection options as `mailgate track`.
 */
export const LISTS_USAGE = `Usage:
  mailgate lists ls [--kind KIND] [--search TEXT] [--limit N] [--offset N] [--json]
  mailgate lists add <KIND> <VALUE> [--reason TEXT] [--ttl SECONDS | --expires ISO-TIME]
  mailgate lists rm <KIND> <VALUE>
KIND is ip-allow, ip-block or sender-block; VALUE an IP/CIDR, or user@domain, *@domain, *@*.domain.
${ADMIN_OPTIONS}
Exit codes: 0 done, 1 not found, 64 usage, 69 admin service unreachable, 77 token refused.`;

interface Entry {
  kind: string;
  value: string;
  reason: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
}

export async function runLists(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const args = parseArgs(argv);
  const [, cmd, kind, value] = args.positional;
  if (!cmd || args.flags['help']) {
    out.write(LISTS_USAGE + '\n');
    return cmd || args.flags['help'] ? 0 : 64;
  }
  // Lookups take the least privileged token the config has; changes need an admin token.
  const conn = connectAdmin(args, cmd === 'ls' || cmd === 'list' ? 'read' : 'admin', err);
  if (typeof conn === 'number') return conn;
  let method: 'GET' | 'POST' | 'DELETE' = 'GET';
  let path = '/api/v1/lists';
  let body: string | undefined;
  if (cmd === 'ls' || cmd === 'list') {
    const q = new URLSearchParams();
    for (const k of ['kind', 'search', 'limit', 'offset'] as const) {
      const v = flagString(args, k);
      if (v) q.set(k, v);
    }
    if ([...q.keys()].length) path += `?${q}`;
  } else if (cmd === 'add' || cmd === 'rm' || cmd === 'remove') {
    if (!kind || !value) {
      err.write(`lists ${cmd} needs a kind and a value\n\n${LISTS_USAGE}\n`);
      return 64;
    }
    if (cmd === 'add') {
      method = 'POST';
      const ttl = flagString(args, 'ttl');
      const expires = flagString(args, 'expires');
      body = JSON.stringify({
        kind,
        value,
        reason: flagString(args, 'reason') ?? '',
        ...(ttl ? { ttlSeconds: Number(ttl) } : {}),
        ...(expires ? { expiresAt: expires } : {}),
      });
    } else {
      method = 'DELETE';
      path += `?${new URLSearchParams({ kind, value })}`;
    }
  } else {
    err.write(`unknown lists command ${cmd}\n\n${LISTS_USAGE}\n`);
    return 64;
  }

  const res = await adminRequest(conn, { path, method, ...(body ? { body } : {}) }, err);
  if ('code' in res) return res.code;
  const json = res.body;
  if (args.flags['json']) {
    out.write(JSON.stringify(json, null, 2) + '\n');
    return 0;
  }
  if (method === 'GET') {
    const rows = (json['results'] as Entry[]).map((e) => [
      e.kind,
      e.value,
      e.expiresAt ?? 'never',
      e.createdBy,
      e.reason,
    ]);
    out.write(table(['KIND', 'VALUE', 'EXPIRES', 'BY', 'REASON'], rows));
    const next = json['nextOffset'];
    if (typeof next === 'number')
      err.write(`showing ${rows.length} of ${String(json['total'])}: --offset ${next} for the next page\n`);
  } else if (method === 'POST') {
    const e = json['entry'] as Entry;
    out.write(`added ${e.kind} ${e.value}${e.expiresAt ? ` until ${e.expiresAt}` : ''}\n`);
  } else out.write(`removed ${kind} ${value}\n`);
  return 0;
}
