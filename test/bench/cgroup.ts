// CPU quotas per process through Linux cgroups, for the scale-out benchmark: every replica gets the same share of
// a core, so "twice the replicas" means twice the CPU and the speed-up measures the design, not the machine.
// cgroup v1: <root>/cpu/<group>/cpu.cfs_quota_us + cpu.cfs_period_us; cgroup v2: <root>/<group>/cpu.max.
// Needs root (or a delegated subtree). Every failure says what was tried and why it did not work.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';
const PERIOD_US = 100_000;

export class CgroupError extends Error {}

export interface CpuGroup {
  readonly path: string;
  /** Moves a whole process (all its threads) into the group. */
  add(pid: number): void;
  /** Throttling so far: periods in which the group used up its quota, of all periods it ran in. */
  throttling(): { periods: number; throttled: number };
  remove(): void;
}

export interface CgroupDriver {
  readonly version: 'v1' | 'v2';
  /** A group whose processes together get at most `cores` of CPU time. */
  create(name: string, cores: number): CpuGroup;
}

function write(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch (e) {
    throw new CgroupError(`cannot write "${value}" to ${file}: ${(e as Error).message}`);
  }
}

function statOf(file: string): { periods: number; throttled: number } {
  const text = readFileSync(file, 'utf8');
  const n = (k: string) => Number(new RegExp(`^${k} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { periods: n('nr_periods'), throttled: n('nr_throttled') };
}

function group(path: string, procsFile: string, statFile: string): CpuGroup {
  return {
    path,
    add(pid) {
      write(join(path, procsFile), String(pid));
    },
    throttling: () => statOf(join(path, statFile)),
    remove() {
      // A group with processes cannot be removed; move stragglers to the parent first.
      const parent = join(path, '..');
      for (const pid of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(parent, 'cgroup.procs'), pid);
        } catch {
          // exited meanwhile
        }
      }
      try {
        rmdirSync(path);
      } catch {
        // best effort: a leftover empty group is harmless
      }
    },
  };
}

function v1(base: string): CgroupDriver {
  return {
    version: 'v1',
    create(name, cores) {
      const path = join(base, name);
      mkdirSync(path, { recursive: true });
      write(join(path, 'cpu.cfs_period_us'), String(PERIOD_US));
      write(join(path, 'cpu.cfs_quota_us'), String(Math.round(cores * PERIOD_US)));
      const got = Number(readFileSync(join(path, 'cpu.cfs_quota_us'), 'utf8'));
      if (got !== Math.round(cores * PERIOD_US)) throw new CgroupError(`${path}: quota reads back as ${got}`);
      return group(path, 'cgroup.procs', 'cpu.stat');
    },
  };
}

function v2(base: string): CgroupDriver {
  return {
    version: 'v2',
    create(name, cores) {
      const path = join(base, name);
      mkdirSync(path, { recursive: true });
      write(join(path, 'cpu.max'), `${Math.round(cores * PERIOD_US)} ${PERIOD_US}`);
      return group(path, 'cgroup.procs', 'cpu.stat');
    },
  };
}

/**
 * The cgroup CPU controller of this machine, with a `mailgate-bench` parent group made and a quota written and read
 * back, or a CgroupError that says why quotas cannot be set here.
 */
export function cpuCgroups(): CgroupDriver {
  const v1Base = join(ROOT, 'cpu');
  if (existsSync(join(v1Base, 'cpu.cfs_quota_us'))) {
    const driver = v1(join(v1Base, 'mailgate-bench'));
    driver.create('probe', 0.5).remove();
    return driver;
  }
  if (existsSync(join(ROOT, 'cgroup.controllers'))) {
    const controllers = readFileSync(join(ROOT, 'cgroup.controllers'), 'utf8');
    if (!/\bcpu\b/.test(controllers)) throw new CgroupError(`cgroup v2 at ${ROOT} has no cpu controller`);
    const base = join(ROOT, 'mailgate-bench');
    mkdirSync(base, { recursive: true });
    // Children of a v2 group get the cpu controller only if the parents delegate it.
    write(join(ROOT, 'cgroup.subtree_control'), '+cpu');
    write(join(base, 'cgroup.subtree_control'), '+cpu');
    const driver = v2(base);
    driver.create('probe', 0.5).remove();
    return driver;
  }
  throw new CgroupError(`no cgroup cpu controller found under ${ROOT} (neither v1 cpu/ nor v2 cgroup.controllers)`);
}
