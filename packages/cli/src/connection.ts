import { existsSync, readFileSync } from 'node:fs';
import { ConfigErrors, loadConfig } from '@mailgate/runtime';
import { flagString, type Out, type ParsedArgs } from './args.js';

/**
 * Where the CLI's client commands (queue, trace, track, lists, spam) find the gateway: flags first, then the
 * environment, then the configuration file the services themselves run with — so on a pod, or next to
 * `mailgate dev --config deploy/mailgate.dev.yaml`, `--config` (or nothing, with $MAILGATE_CONFIG set) is enough.
 */

/** Where the image and the Helm chart mount the configuration: the fallback when neither --config nor $MAILGATE_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = '/etc/mailgate/mailgate.yaml';

const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9106';

/** A usage problem (exit 64): no token found, an unreadable token file, an unknown --token-name. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
}

/** `--config FILE`, else $MAILGATE_CONFIG, else /etc/mailgate/mailgate.yaml when it exists; undefined = defaults + env. */
export function configFileFor(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (
    flagString(args, 'config') ??
    (env['MAILGATE_CONFIG'] || undefined) ??
    (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined)
  );
}

/** The options every admin-API command takes (printed in each command's usage). */
export const ADMIN_OPTIONS = `Connection (first found wins):
  --url URL          admin service: --url, $MAILGATE_ADMIN_URL, else admin.http of the config, else ${DEFAULT_ADMIN_URL}
  --token TOKEN      API token: --token, --token-file FILE, $MAILGATE_ADMIN_TOKEN, $MAILGATE_ADMIN_TOKEN_FILE, else
                     one of the config's admin.tokens (--token-name NAME picks one; otherwise the first read token
                     for lookups and the first admin token for changes)
  --config FILE      configuration file (default $MAILGATE_CONFIG, else ${DEFAULT_CONFIG_FILE} if present)`;

export interface AdminConnection {
  /** Base URL without a trailing slash. */
  readonly url: string;
  readonly token: string;
  /** Where the token came from ("--token", "admin.tokens[1] (ops) of file x.yaml"…), for error messages. */
  readonly tokenSource: string;
}

interface RawToken {
  name?: unknown;
  token?: unknown;
  tokenFile?: unknown;
  role?: unknown;
}

function readTokenFile(file: string, what: string): string {
  let t: string;
  try {
    t = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConnectionError(`cannot read the token file of ${what}: ${(e as Error).message}`);
  }
  if (!t) throw new ConnectionError(`the token file of ${what} (${file}) is empty`);
  return t;
}

/** A listen address as a client address: the wildcard binds mean "this machine". */
function clientHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * Resolve the admin service's URL and an API token. `need` says which role the command requires: lookups take the
 * least privileged token the config has, changes an admin token. The config file is only read when a flag or the
 * environment did not already answer. Throws ConnectionError (usage) or ConfigErrors (configuration).
 */
export function resolveAdmin(
  args: ParsedArgs,
  need: 'read' | 'admin',
  env: NodeJS.ProcessEnv = process.env,
): AdminConnection {
  let url = flagString(args, 'url') ?? (env['MAILGATE_ADMIN_URL'] || undefined);
  let token: string | undefined;
  let tokenSource = '';
  const tokenFlag = flagString(args, 'token');
  const tokenFileFlag = flagString(args, 'token-file');
  if (tokenFlag) [token, tokenSource] = [tokenFlag, '--token'];
  else if (tokenFileFlag) [token, tokenSource] = [readTokenFile(tokenFileFlag, '--token-file'), '--token-file'];
  else if (env['MAILGATE_ADMIN_TOKEN']) [token, tokenSource] = [env['MAILGATE_ADMIN_TOKEN'], '$MAILGATE_ADMIN_TOKEN'];
  else if (env['MAILGATE_ADMIN_TOKEN_FILE'])
    [token, tokenSource] = [
      readTokenFile(env['MAILGATE_ADMIN_TOKEN_FILE'], '$MAILGATE_ADMIN_TOKEN_FILE'),
      '$MAILGATE_ADMIN_TOKEN_FILE',
    ];

  const file = configFileFor(args, env);
  if (!url || !token) {
    // No service sections: the admin section is read as written (plus MAILGATE__ADMIN__… overrides), so a CLI on a
    // workstation is not refused for a tokenFile path that only exists in the pod.
    const config = loadConfig({ file, env }) as unknown as { admin?: { http?: { host?: unknown; port?: unknown } } };
    const admin = (config.admin ?? {}) as { http?: { host?: unknown; port?: unknown }; tokens?: unknown };
    if (!url) {
      const host = typeof admin.http?.host === 'string' ? admin.http.host : '127.0.0.1';
      const port = typeof admin.http?.port === 'number' ? admin.http.port : 9106;
      url = admin.http ? `http://${clientHost(host)}:${port}` : DEFAULT_ADMIN_URL;
    }
    if (!token) {
      const tokens = (Array.isArray(admin.tokens) ? admin.tokens : []) as RawToken[];
      const roleOf = (t: RawToken) => (t.role === 'read' ? 'read' : 'admin');
      const wanted = flagString(args, 'token-name');
      let i: number;
      if (wanted) {
        i = tokens.findIndex((t) => t.name === wanted);
        if (i < 0) throw new ConnectionError(`no token named ${wanted} in admin.tokens${file ? ` of ${file}` : ''}`);
      } else {
        i = tokens.findIndex((t) => roleOf(t) === need);
        if (i < 0 && need === 'read') i = tokens.findIndex((t) => roleOf(t) === 'admin');
      }
      const t = tokens[i];
      if (t) {
        const what = `admin.tokens[${i}] (${String(t.name)})${file ? ` of ${file}` : ''}`;
        tokenSource = what;
        if (typeof t.token === 'string' && t.token) token = t.token;
        else if (typeof t.tokenFile === 'string') token = readTokenFile(t.tokenFile, what);
      }
    }
  }
  if (!token)
    throw new ConnectionError(
      `no API token${need === 'admin' ? ' with the admin role' : ''}: pass --token or --token-file, set ` +
        `MAILGATE_ADMIN_TOKEN or MAILGATE_ADMIN_TOKEN_FILE, or give --config with admin.tokens` +
        (file ? ` (${file} has none${need === 'admin' ? ' with role admin' : ''})` : ''),
    );
  return { url: url.replace(/\/+$/, ''), token, tokenSource };
}

/** resolveAdmin for a command: a problem is written to `err` and returned as the exit code (64 usage, 78 config). */
export function connectAdmin(
  args: ParsedArgs,
  need: 'read' | 'admin',
  err: Out,
  env: NodeJS.ProcessEnv = process.env,
): AdminConnection | number {
  try {
    return resolveAdmin(args, need, env);
  } catch (e) {
    if (e instanceof ConnectionError) {
      err.write(`${e.message}\n`);
      return 64;
    }
    if (e instanceof ConfigErrors) {
      for (const x of e.errors) err.write(`${x.message}\n`);
      return 78;
    }
    throw e;
  }
}

/** The exit codes an admin-API command returns (sysexits.h where one fits). */
export const EXIT = { notFound: 1, usage: 64, unavailable: 69, noPermission: 77 } as const;

export interface AdminRequest {
  /** Path and query below the admin URL, e.g. `/api/v1/lists?kind=ip-block`. */
  readonly path: string;
  readonly method?: 'GET' | 'POST' | 'DELETE';
  readonly body?: string | Buffer;
  /** Content type of `body` (default application/json). */
  readonly contentType?: string;
  /** Default 15 s; learning a message waits for rspamd's Redis writes and takes longer. */
  readonly timeoutMs?: number;
  /** HTTP statuses that mean "not found or not possible" (exit 1); default 404. */
  readonly notFound?: readonly number[];
}

/**
 * One admin-API call as the CLI's client commands make it: bearer token, JSON answer. A failure is written to `err`
 * and returned as the exit code: 69 unreachable or a server error, 77 token refused, 1 not found, 64 bad request.
 */
export async function adminRequest(
  conn: AdminConnection,
  req: AdminRequest,
  err: Out,
): Promise<{ code: number } | { body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(conn.url + req.path, {
      method: req.method ?? 'GET',
      headers: {
        authorization: `Bearer ${conn.token}`,
        accept: 'application/json',
        ...(req.body !== undefined ? { 'content-type': req.contentType ?? 'application/json' } : {}),
      },
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal: AbortSignal.timeout(req.timeoutMs ?? 15_000),
    });
  } catch (e) {
    const cause = (e as Error).cause;
    err.write(
      `cannot reach the admin service at ${conn.url}: ${cause instanceof Error ? cause.message : (e as Error).message}\n`,
    );
    return { code: EXIT.unavailable };
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status === 401 || res.status === 403) {
    err.write(`the admin service refused the token (${res.status}): ${String(body['message'] ?? '')}\n`);
    return { code: EXIT.noPermission };
  }
  if ((req.notFound ?? [404]).includes(res.status)) {
    err.write(`${String(body['message'] ?? 'not found')}\n`);
    return { code: EXIT.notFound };
  }
  if (!res.ok) {
    err.write(`admin service error ${res.status}: ${String(body['message'] ?? '')}\n`);
    return { code: res.status === 400 ? EXIT.usage : EXIT.unavailable };
  }
  return { body };
}
