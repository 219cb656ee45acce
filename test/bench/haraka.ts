// Haraka (npm `Haraka`, installed OUTSIDE the repository in $HARAKA_DIR, default /tmp/haraka-bench) configured with
// the checks mailgate does: dns-list (our rbldnsd zone), clamd (our clamd), attachment, and queue/smtp_forward to
// the same sink. Two bench-only patches of that temp install, both so Haraka does the same work on loopback:
//   - dns-list uses its own Resolver on the system servers: point it at our rbldnsd (HARAKA_BENCH_DNS);
//   - dns-list skips private client IPs (all of loopback): don't (HARAKA_BENCH_NO_PRIVATE_SKIP), as mailgate's
//     dnsbl is configured to look loopback clients up too (skipNetworks: []).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ManagedProcess } from '@mailgate/testkit';

export const HARAKA_DIR = process.env['HARAKA_DIR'] ?? '/tmp/haraka-bench';
export const HARAKA_VERSION = process.env['HARAKA_VERSION'] ?? '3.3.4';

/** npm install Haraka into HARAKA_DIR if missing, then apply the two bench patches (idempotent). */
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
  const dnsList = join(HARAKA_DIR, 'node_modules/haraka-plugin-dns-list/index.js');
  let src = readFileSync(dnsList, 'utf8');
  if (!src.includes('HARAKA_BENCH_DNS')) {
    src = src.replace(
      /const dns = new dnsPromises\.Resolver\(([^)]*)\)\n/,
      (m) => `${m}if (process.env.HARAKA_BENCH_DNS) dns.setServers([process.env.HARAKA_BENCH_DNS])\n`,
    );
    src = src.replace(
      'if (connection.remote.is_private) {',
      'if (connection.remote.is_private && !process.env.HARAKA_BENCH_NO_PRIVATE_SKIP) {',
    );
    if (!src.includes('HARAKA_BENCH_DNS') || !src.includes('HARAKA_BENCH_NO_PRIVATE_SKIP')) {
      throw new Error(`could not patch ${dnsList} (Haraka version changed?)`);
    }
    writeFileSync(dnsList, src);
  }
  return bin;
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
}): Promise<HarakaHandle> {
  const port = await freePort();
  const cfg = join(o.dir, 'haraka');
  mkdirSync(join(cfg, 'config'), { recursive: true });
  // Haraka's own defaults first (`haraka -i` does the same), then ours over them.
  cpSync(join(o.bin, '../../config'), join(cfg, 'config'), { recursive: true });
  const w = (name: string, text: string) => writeFileSync(join(cfg, 'config', name), text.trim() + '\n');
  // One process (no cluster): as Haraka runs by default; mailgate gets no more cores either (2 in all).
  w('smtp.ini', `listen=127.0.0.1:${port}\n[headers]\nmax_lines=1000\nmax_received=100`);
  w('plugins', ['dns-list', 'rcpt_to.in_host_list', 'attachment', 'clamd', 'queue/smtp_forward'].join('\n'));
  w('host_list', o.acceptedDomain);
  w('log.ini', '[main]\nlevel=warn\ntimestamps=false');
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
