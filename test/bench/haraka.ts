// Haraka (npm `Haraka`, installed OUTSIDE the repository in $HARAKA_DIR, default /tmp/haraka-bench) configured with
// the checks mailgate does, against the same peers. Two plugin sets (`--haraka-checks`, BENCH_HARAKA_CHECKS):
//   full (default): dns-list (our rbldnsd zone), rcpt_to.in_host_list, spf (MAIL FROM), dkim (verify only),
//                   attachment, clamd (our clamd), rspamd (the stack's rspamd) and queue/smtp_forward to a sink: what
//                   mailgate does at ingress (sender authentication) and in its stages (dnsbl, virus, attachment,
//                   spam). Haraka 3.3.4 bundles no DMARC plugin: mailgate's DMARC evaluation has no Haraka counterpart.
//   core:           the older set, without spf, dkim and rspamd.
// Bench-only patches of that temp install (idempotent, each verified), all so Haraka does the same work on loopback
// with the same DNS server as mailgate:
//   - dns-list uses its own Resolver on the system servers: point it at our rbldnsd (HARAKA_BENCH_DNS);
//   - dns-list skips private client IPs (all of loopback): don't (HARAKA_BENCH_NO_PRIVATE_SKIP), as mailgate's
//     dnsbl is configured to look loopback clients up too (skipNetworks: []);
//   - spf and dkim resolve through node's default resolver (Haraka core has no DNS server setting): give each its
//     own Resolver on HARAKA_BENCH_DNS (as dns-list), so they ask our rbldnsd and nothing else in Haraka changes;
//   - spf's MAIL FROM check skips private client IPs that do not relay: don't (HARAKA_BENCH_NO_PRIVATE_SKIP), as
//     mailgate checks loopback clients (senderAuth.exempt.networks is empty). Its HELO check still skips them:
//     mailgate checks the HELO identity only for the null sender, which the bench does not send.
// rspamd needs no patch: check.private_ip/local_ip in rspamd.ini make it scan loopback clients.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ManagedProcess } from '@mailgate/testkit';

export const HARAKA_DIR = process.env['HARAKA_DIR'] ?? '/tmp/haraka-bench';
export const HARAKA_VERSION = process.env['HARAKA_VERSION'] ?? '3.3.4';

/**
 * Apply `edits` (each must change the file) to `file` under node_modules unless `marker` is in it already; throws if
 * an edit no longer matches (Haraka or the plugin changed), so the bench never runs on a half-patched install.
 */
function patchModule(file: string, marker: string, edits: [RegExp | string, (m: string) => string][]): void {
  const path = join(HARAKA_DIR, 'node_modules', file);
  let src = readFileSync(path, 'utf8');
  if (src.includes(marker)) return;
  for (const [from, to] of edits) {
    const next = src.replace(from, to);
    if (next === src) throw new Error(`could not patch ${path} at ${String(from)} (Haraka version changed?)`);
    src = next;
  }
  if (!src.includes(marker)) throw new Error(`could not patch ${path} (no ${marker} after patching)`);
  writeFileSync(path, src);
}

/** A Resolver on the bench's DNS server when HARAKA_BENCH_DNS is set (JS source for the patches). */
const benchResolver = (dnsPromises: string) =>
  `(process.env.HARAKA_BENCH_DNS ? (() => { const r = new ${dnsPromises}.Resolver(); ` +
  `r.setServers([process.env.HARAKA_BENCH_DNS]); return r })() : null)`;

/** npm install Haraka into HARAKA_DIR if missing, then apply the bench patches (idempotent). */
export function ensureHaraka(log: (l: string) => void): string {
  const bin = join(HARAKA_DIR, 'node_modules/Haraka/bin/haraka');
  if (!existsSync(bin)) {
    mkdirSync(HARAKA_DIR, { recursive: true });
    if (!existsSync(join(HARAKA_DIR, 'package.json')))
      writeFileSync(join(HARAKA_DIR, 'package.json'), '{"private":true}\n');
    log(`installing Haraka@${HARAKA_VERSION} into ${HARAKA_DIR} (npm)…`);
    execFileSync('npm', ['install', `Haraka@${HARAKA_VERSION}`, '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: HARAKA_DIR,
      stdio: 'inherit',
    });
  }
  // dns-list: its own Resolver → our rbldnsd; look loopback clients up.
  patchModule('haraka-plugin-dns-list/index.js', 'HARAKA_BENCH_NO_PRIVATE_SKIP', [
    [
      /const dns = new dnsPromises\.Resolver\(([^)]*)\)\n/,
      (m) => `${m}if (process.env.HARAKA_BENCH_DNS) dns.setServers([process.env.HARAKA_BENCH_DNS])\n`,
    ],
    [
      'if (connection.remote.is_private) {',
      () => 'if (connection.remote.is_private && !process.env.HARAKA_BENCH_NO_PRIVATE_SKIP) {',
    ],
  ]);
  // spf: node's default resolver → a Resolver on our rbldnsd (one per process, not per check).
  patchModule('haraka-plugin-spf/lib/spf.js', 'HARAKA_BENCH_DNS', [
    ["const dns = require('node:dns/promises')\n", (m) => `${m}const benchResolver = ${benchResolver('dns')}\n`],
    ['    this.resolver = dns\n', () => '    this.resolver = benchResolver ?? dns\n'],
  ]);
  // spf: check MAIL FROM of loopback (private) clients too.
  patchModule('haraka-plugin-spf/index.js', 'HARAKA_BENCH_NO_PRIVATE_SKIP', [
    [
      '  if (connection.remote?.is_private) {',
      () => '  if (connection.remote?.is_private && !process.env.HARAKA_BENCH_NO_PRIVATE_SKIP) {',
    ],
  ]);
  // dkim (verify): node's default resolver → a Resolver on our rbldnsd.
  patchModule('haraka-plugin-dkim/lib/dkim-object.js', 'HARAKA_BENCH_DNS', [
    ["const dns = require('node:dns')\n", (m) => `${m}const benchResolver = ${benchResolver('dns.promises')}\n`],
    ['dns.promises.resolveTxt(lookup)', () => '(benchResolver ?? dns.promises).resolveTxt(lookup)'],
  ]);
  return bin;
}

/** Which Haraka plugins run (see the top of this file). */
export type HarakaChecks = 'core' | 'full';

export function harakaPlugins(checks: HarakaChecks): string[] {
  return checks === 'full'
    ? ['dns-list', 'rcpt_to.in_host_list', 'spf', 'dkim', 'attachment', 'clamd', 'rspamd', 'queue/smtp_forward']
    : ['dns-list', 'rcpt_to.in_host_list', 'attachment', 'clamd', 'queue/smtp_forward'];
}

export interface HarakaHandle {
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
  output(): string;
}

export async function startHaraka(o: {
  bin: string;
  dir: string;
  dnsServer: string;
  clamd: { host: string; port: number };
  sink: { host: string; port: number };
  acceptedDomain: string;
  checks: HarakaChecks;
  /** The rspamd normal worker (required for `full`). */
  rspamd?: { host: string; port: number };
  /** Haraka's log level (default warn; info logs each plugin's result per message). */
  logLevel?: string;
  /** Instead of the `checks` set (experiments: which plugin costs what). */
  plugins?: string[];
  /** Haraka cluster workers (smtp.ini `nodes`; default 1, Haraka's single worker). */
  nodes?: number;
}): Promise<HarakaHandle> {
  const port = await freePort();
  const cfg = join(o.dir, 'haraka');
  mkdirSync(join(cfg, 'config'), { recursive: true });
  // Haraka's own defaults first (`haraka -i` does the same), then ours over them.
  cpSync(join(o.bin, '../../config'), join(cfg, 'config'), { recursive: true });
  const w = (name: string, text: string) => writeFileSync(join(cfg, 'config', name), text.trim() + '\n');
  // One worker by default, as Haraka runs out of the box; `nodes` 2 gives it a worker per core of this machine
  // (BENCH_HARAKA_NODES), as mailgate's processes use both cores.
  const nodes = o.nodes && o.nodes > 1 ? `nodes=${o.nodes}\n` : '';
  w('smtp.ini', `listen=127.0.0.1:${port}\n${nodes}[headers]\nmax_lines=1000\nmax_received=100`);
  w('plugins', (o.plugins ?? harakaPlugins(o.checks)).join('\n'));
  w('host_list', o.acceptedDomain);
  w('log.ini', `[main]\nlevel=${o.logLevel ?? 'warn'}\ntimestamps=false`);
  w('dns-list.ini', '[main]\nperiodic_checks=0\nzones[]=bl.test\nsearch=all\n[stats]\n[bl.test]\nipv6=false');
  w(
    'clamd.ini',
    `clamd_socket=${o.clamd.host}:${o.clamd.port}\ntimeout=30\nconnect_timeout=10\nonly_with_attachments=false\nmax_size=62914560`,
  );
  w('attachment.ini', '[main]\ntimeout=30');
  w(
    'smtp_forward.ini',
    `host=${o.sink.host}\nport=${o.sink.port}\nenable_tls=false\nenable_outbound=false\nmax_connections=100`,
  );
  if (o.checks === 'full') {
    if (!o.rspamd) throw new Error('startHaraka: checks=full needs rspamd');
    // SPF of MAIL FROM; defaults otherwise (no rejection on any result: mailgate records SPF, DMARC decides).
    // Per-query DNS timeout 1 s, as mailgate's senderAuth.dns.timeoutMs.
    w('spf.ini', '[main]\nlookup_timeout=10\ndns_timeout=1');
    // Verification only, no signing (mailgate signs outbound mail only; the bench's mail is inbound).
    w('dkim.ini', '[sign]\nenabled=false\n[verify]\nenabled=true\ntimeout=10');
    // As mailgate's spam-check stage with the bench's config: every message scanned (loopback too), headers added
    // to every message (spamCheck.headers.always), no subject rewrite, and no reject or defer on rspamd's action
    // (mailgate's stage runs after the 250 and its thresholds only tag below 10; both systems must deliver all).
    w(
      'rspamd.ini',
      [
        `[main]\nhost=${o.rspamd.host}\nport=${o.rspamd.port}\nadd_headers=always\ntimeout=15`,
        // Loopback clients scanned too; authenticated and relaying sessions skipped (spamCheck.skip defaults).
        '[check]\nprivate_ip=true\nlocal_ip=true',
        '[reject]\nspam=false\nauthenticated=false',
        '[soft_reject]\nenabled=false',
        '[rewrite_subject]\nenabled=false',
        '[defer]\nerror=false\ntimeout=false',
        '[header]\nbar=X-Rspamd-Bar\nreport=X-Rspamd-Report\nscore=X-Rspamd-Score',
      ].join('\n'),
    );
  }
  const proc = new ManagedProcess('haraka', process.execPath, [o.bin, '-c', cfg], {
    cwd: cfg,
    env: { ...process.env, HARAKA_BENCH_DNS: o.dnsServer, HARAKA_BENCH_NO_PRIVATE_SKIP: '1' },
  });
  // Ready when the port answers with a 220 greeting.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!proc.isRunning()) throw proc.describeFailure('exited before listening');
    const ok = await new Promise<boolean>((resolve) => {
      import('node:net').then(({ default: net }) => {
        const s = net.connect(port, '127.0.0.1');
        s.setTimeout(1000, () => (s.destroy(), resolve(false)));
        s.once('data', (d) => (s.destroy(), resolve(d.toString().startsWith('220'))));
        s.once('error', () => resolve(false));
      });
    });
    if (ok) break;
    if (Date.now() > deadline) {
      await proc.kill();
      throw proc.describeFailure('not listening within 60 s');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    port,
    pid: proc.pid,
    async stop() {
      await proc.stop('SIGTERM', 5000);
    },
    output: () => proc.output(),
  };
}
