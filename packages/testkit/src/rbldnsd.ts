import { promises as dnsPromises } from 'node:dns';
import { chmod, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  freeUdpPort,
  ManagedProcess,
  makeTempDir,
  removeDirOnFailure,
  removeTempDir,
  sleep,
  waitUntilReady,
  withPortRetry,
} from '@mailgate/devstack';

export type RbldnsdDatasetType = 'ip4set' | 'ip6trie' | 'dnset' | 'generic';

export interface RbldnsdZone {
  /** Zone (base) name, e.g. 'bl.test' or 'remote.test'. The same name may appear with several datasets. */
  name: string;
  type: RbldnsdDatasetType;
  /** Zone file lines (see README / `man rbldnsd`). */
  lines: string[];
}

export interface StartRbldnsdOptions {
  port?: number;
  /** Startup timeout, default 10 s. */
  timeoutMs?: number;
  /**
   * Pass `-f` (reload in a forked child while serving). Default false: with -f the forked child keeps answering
   * with the OLD data for ~0.5 s after "zones reloaded", so update() would not be synchronous.
   */
  fork?: boolean;
  /**
   * Throw (from startRbldnsd / update) if rbldnsd logs a bad zone line (`invalid/unrecognized entry`, e.g. an AAAA
   * or CNAME in a generic zone — rbldnsd just skips those). Default true.
   */
  strict?: boolean;
}

export interface RbldnsdHandle {
  host: string;
  port: number;
  /** '127.0.0.1:PORT' — for `resolver.setServers([server])`. */
  server: string;
  dir: string;
  readonly pid: number | undefined;
  /**
   * Rewrites a zone file (atomically, with a strictly increasing mtime), sends SIGHUP and resolves once rbldnsd
   * logged the reload — queries made after the promise resolves see the new data. `type` disambiguates when one
   * zone name has several datasets.
   */
  update(zoneName: string, lines: string[], type?: RbldnsdDatasetType): Promise<void>;
  /** A dns.promises.Resolver pointed at this server (timeout 1 s, 1 try). */
  resolver(): dnsPromises.Resolver;
  stop(): Promise<void>;
  output(): string;
}

const HOST = '127.0.0.1';

function checkZoneWarnings(text: string): void {
  const bad = text.split('\n').filter((l) => /invalid|unrecognized|unable to|error/i.test(l));
  if (bad.length > 0) throw new Error(`rbldnsd rejected zone data:\n  ${bad.join('\n  ')}`);
}

interface ZoneFile {
  zone: RbldnsdZone;
  file: string;
  mtime: number; // seconds; rbldnsd only notices changes of the (1 s resolution) mtime
}

/**
 * Runs `rbldnsd -n -b 127.0.0.1/PORT -w DIR zone:type:file ...` (foreground, no chroot, no -f) on a free UDP port.
 * rbldnsd answers only for the configured zones (REFUSED for other names); `generic` serves A, TXT, MX only.
 */
export async function startRbldnsd(zones: RbldnsdZone[], opts: StartRbldnsdOptions = {}): Promise<RbldnsdHandle> {
  if (zones.length === 0) throw new Error('startRbldnsd: at least one zone is required');
  const dir = makeTempDir('rbldnsd');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const strict = opts.strict ?? true;
  let proc: ManagedProcess | undefined;
  let stopped = false;
  const files: ZoneFile[] = zones.map((zone, i) => ({
    zone: { ...zone, lines: [...zone.lines] },
    file: `${i}-${zone.name.replace(/[^A-Za-z0-9.-]/g, '_')}.${zone.type}`,
    mtime: 0,
  }));

  const writeZone = async (zf: ZoneFile): Promise<void> => {
    const path = join(dir, zf.file);
    await writeFile(`${path}.tmp`, zf.zone.lines.join('\n') + '\n', { mode: 0o644 });
    zf.mtime = Math.max(Math.floor(Date.now() / 1000), zf.mtime + 1);
    await utimes(`${path}.tmp`, zf.mtime, zf.mtime);
    await rename(`${path}.tmp`, path);
  };

  const port = await removeDirOnFailure(dir, async () => {
    // Started as root, rbldnsd drops to user `rbldns` before reading zones: the mkdtemp dir (0700) must be readable.
    await chmod(dir, 0o755);
    for (const zf of files) await writeZone(zf);
    return withPortRetry(
      opts.port,
      () => freeUdpPort(HOST),
      async (p) => {
        const args = [
          '-n',
          ...(opts.fork ? ['-f'] : []),
          '-b',
          `${HOST}/${p}`,
          '-w',
          dir,
          ...files.map((f) => `${f.zone.name}:${f.zone.type}:${f.file}`),
        ];
        const mp = new ManagedProcess(`rbldnsd:${p}`, 'rbldnsd', args, { cwd: dir });
        proc = mp;
        await waitUntilReady(mp, async () => /\bstarted\b/.test(mp.output()), timeoutMs, 20);
        if (strict) {
          // zone warnings come on stderr, "started" on stdout: give the other pipe a moment
          await sleep(30);
          try {
            checkZoneWarnings(mp.output());
          } catch (err) {
            await mp.kill();
            throw err;
          }
        }
        return p;
      },
    );
  });

  return {
    host: HOST,
    port,
    server: `${HOST}:${port}`,
    dir,
    get pid() {
      return proc?.pid;
    },
    async update(zoneName, lines, type) {
      const p = proc;
      if (stopped || !p || !p.isRunning()) throw new Error('rbldnsd: update() on a stopped server');
      const matches = files.filter((f) => f.zone.name === zoneName && (type === undefined || f.zone.type === type));
      if (matches.length !== 1) {
        throw new Error(
          `rbldnsd.update: ${matches.length} datasets match ${zoneName}${type ? `:${type}` : ''}; pass the type`,
        );
      }
      const zf = matches[0]!;
      zf.zone.lines = [...lines];
      await writeZone(zf);
      const since = p.mark();
      p.signal('SIGHUP');
      await p.waitForOutput(/zones reloaded/, { since, timeoutMs: 5000 });
      if (strict) {
        await sleep(30);
        checkZoneWarnings(p.output().slice(Math.max(0, since - (p.mark() - p.output().length))));
      }
    },
    resolver() {
      const r = new dnsPromises.Resolver({ timeout: 1000, tries: 1 });
      r.setServers([`${HOST}:${port}`]);
      return r;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc?.stop('SIGTERM', 3000);
      await removeTempDir(dir);
    },
    output() {
      return proc?.output() ?? '';
    },
  };
}
