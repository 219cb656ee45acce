// Independent sender-authentication implementations for tests: dkimpy (Debian python3-dkim) signs and verifies
// DKIM and ARC with its key lookups sent to a loopback DNS server, and OpenDKIM's opendkim-testmsg verifies inside
// a private network namespace whose 127.0.0.1:53 is our DNS server (libopendkim uses the system resolver and has
// no option for another server or port).
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DnsRecord } from './dns-server.js';
import { makeTempDir, removeTempDir } from '@mailgate/devstack';

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command to completion with `input` on stdin (killed after `timeoutMs`). */
export function run(
  cmd: string,
  args: readonly string[],
  input?: Buffer | string,
  timeoutMs = 60_000,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading everything */
    });
    child.stdin.end(input ?? '');
  });
}

/** Debian's python3 (with python3-dkim); a pyenv/virtualenv `python3` first in PATH usually lacks it. */
export const DKIMPY_PYTHON = ['/usr/bin/python3', '/bin/python3'].find((p) => existsSync(p)) ?? 'python3';

export interface DnsAddress {
  host: string;
  port: number;
}

// dkimpy helper: one script, a JSON job on argv[1], the message on stdin, the result on stdout.
const DKIMPY = String.raw`
import sys, json, dkim, dns.resolver, dns.exception
job = json.loads(sys.argv[1])
msg = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [job['dns']['host']]
    r.port = job['dns']['port']
    r.lifetime = timeout
    n = name.decode() if isinstance(name, bytes) else name
    try:
        ans = r.resolve(n, 'TXT')
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    for rr in ans:
        return b''.join(rr.strings)
    return None
op = job['op']
if op == 'sign':
    sig = dkim.sign(msg, job['selector'].encode(), job['domain'].encode(), job['key'].encode(),
                    canonicalize=tuple(c.encode() for c in job['canonicalize']),
                    signature_algorithm=job['algorithm'].encode(),
                    include_headers=[h.encode() for h in job['headers']] if job.get('headers') else None,
                    length=job.get('length', False))
    sys.stdout.buffer.write(sig + msg)
elif op == 'verify':
    d = dkim.DKIM(msg)
    n = len([1 for (k, v) in d.headers if k.lower() == b'dkim-signature'])
    out = []
    for i in range(n):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
            out.append({'ok': bool(ok), 'domain': (d.domain or b'').decode(), 'selector': (d.selector or b'').decode()})
        except Exception as e:
            out.append({'ok': False, 'error': str(e)})
    sys.stdout.write(json.dumps(out))
elif op == 'arc-sign':
    hs = dkim.arc_sign(msg, job['selector'].encode(), job['domain'].encode(), job['key'].encode(),
                       job['srvId'].encode(),
                       signature_algorithm=job.get('algorithm', 'rsa-sha256').encode())
    sys.stdout.buffer.write(b''.join(hs) + msg)
elif op == 'arc-verify':
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    sys.stdout.write(json.dumps({'cv': cv.decode() if isinstance(cv, bytes) else cv, 'comment': comment}))
`;

async function dkimpy(job: Record<string, unknown>, input: Buffer): Promise<Buffer> {
  const r = await run(DKIMPY_PYTHON, ['-c', DKIMPY, JSON.stringify(job)], input);
  if (r.code !== 0) throw new Error(`dkimpy ${String(job['op'])} failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}

export interface DkimpySignOptions {
  domain: string;
  selector: string;
  /** PEM for RSA; for Ed25519 dkimpy wants the base64 32-byte seed. */
  key: string;
  algorithm?: 'rsa-sha256' | 'ed25519-sha256' | 'rsa-sha1';
  canonicalize?: ['simple' | 'relaxed', 'simple' | 'relaxed'];
  headers?: string[];
  /** Add l= (body length) to the signature. */
  length?: boolean;
}

/** The message signed by dkimpy (its DKIM-Signature prepended). */
export function dkimpySign(raw: Buffer, o: DkimpySignOptions): Promise<Buffer> {
  return dkimpy(
    {
      op: 'sign',
      domain: o.domain,
      selector: o.selector,
      key: o.key,
      algorithm: o.algorithm ?? 'rsa-sha256',
      canonicalize: o.canonicalize ?? ['relaxed', 'relaxed'],
      headers: o.headers ?? null,
      length: o.length ?? false,
    },
    raw,
  );
}

export interface DkimpyVerdict {
  ok: boolean;
  domain?: string;
  selector?: string;
  error?: string;
}

/** dkimpy's verdict for every DKIM-Signature of the message, top first; keys looked up at `dns`. */
export async function dkimpyVerify(raw: Buffer, dns: DnsAddress): Promise<DkimpyVerdict[]> {
  const out = await dkimpy({ op: 'verify', dns }, raw);
  return JSON.parse(out.toString()) as DkimpyVerdict[];
}

export interface DkimpyArcSignOptions {
  domain: string;
  selector: string;
  key: string;
  /**
   * authserv-id of the Authentication-Results header dkimpy turns into the ARC-Authentication-Results; its arc=
   * result becomes cv= (none when absent, which is only valid for i=1).
   */
  srvId: string;
}

/** The message with an ARC set added by dkimpy. */
export function dkimpyArcSign(raw: Buffer, o: DkimpyArcSignOptions): Promise<Buffer> {
  return dkimpy({ op: 'arc-sign', domain: o.domain, selector: o.selector, key: o.key, srvId: o.srvId }, raw);
}

/** dkimpy's ARC chain validation: cv = pass / fail / none. */
export async function dkimpyArcVerify(raw: Buffer, dns: DnsAddress): Promise<{ cv: string; comment: string }> {
  const out = await dkimpy({ op: 'arc-verify', dns }, raw);
  return JSON.parse(out.toString()) as { cv: string; comment: string };
}

const SANDBOX_CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'dns-sandbox-child.ts');

/**
 * Runs `cmd` in a private network and mount namespace (unshare, as root or through a user namespace) where
 * /etc/resolv.conf says `nameserver 127.0.0.1` and a testkit DNS server with `records` listens on 127.0.0.1:53.
 * For tools that only use the system resolver. Needs util-linux `unshare` and iproute2 `ip`.
 */
export async function runWithSandboxDns(
  records: readonly DnsRecord[],
  cmd: string,
  args: readonly string[],
  input?: Buffer,
): Promise<RunResult> {
  const dir = makeTempDir('dns-sandbox');
  try {
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n');
    const jobFile = join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify({ records, cmd, args }));
    const inputFile = join(dir, 'input');
    writeFileSync(inputFile, input ?? Buffer.alloc(0));
    const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p)) ?? 'unshare';
    const r = await run(unshare, [
      ...(process.getuid?.() === 0 ? [] : ['--user', '--map-root-user']),
      '--mount',
      '--net',
      '--',
      'sh',
      '-c',
      'ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"',
      'sandbox',
      resolv,
      process.execPath,
      '--import',
      'tsx',
      '--conditions=mailgate-src',
      SANDBOX_CHILD,
      jobFile,
      inputFile,
    ]);
    if (r.code !== 0) throw new Error(`DNS sandbox failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
    const res = JSON.parse(r.stdout.toString()) as { code: number | null; stdout: string; stderr: string };
    return { code: res.code, stdout: Buffer.from(res.stdout, 'base64'), stderr: res.stderr };
  } finally {
    await removeTempDir(dir);
  }
}

/** OpenDKIM's verdict (opendkim-testmsg, libopendkim 2.11): exit code 0 = every signature verified. */
export async function opendkimVerify(
  raw: Buffer,
  records: readonly DnsRecord[],
): Promise<{ ok: boolean; output: string }> {
  const bin =
    ['/usr/sbin/opendkim-testmsg', '/usr/bin/opendkim-testmsg'].find((p) => existsSync(p)) ?? 'opendkim-testmsg';
  const r = await runWithSandboxDns(records, bin, [], raw);
  return { ok: r.code === 0, output: (r.stdout.toString() + r.stderr).trim() };
}
