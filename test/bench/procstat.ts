// CPU time and memory of a process from /proc (Linux): utime+stime (clock ticks) and VmRSS / VmHWM.
import { readFileSync } from 'node:fs';

const TICKS = 100; // _SC_CLK_TCK on Linux

export interface ProcSample {
  cpuSeconds: number;
  rssMiB: number;
  peakRssMiB: number;
}

export function sample(pid: number | undefined): ProcSample | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the ")" of the command name: state is field 3, utime 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(rest[11]) + Number(rest[12])) / TICKS;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { cpuSeconds, rssMiB: kb('VmRSS') / 1024, peakRssMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

export interface ProcUsage {
  label: string;
  /** Share of one core over the interval (100 = one core busy). */
  cpuPercent: number;
  /** CPU time over the interval (s): divided by the messages handled, the CPU cost per message. */
  cpuSeconds: number;
  rssMiB: number;
}

/** Samples a set of processes now; `finish()` later gives CPU % over the interval and current RSS. */
export function usageMeter(procs: { label: string; pid: number | undefined }[]): { finish(): ProcUsage[] } {
  const t0 = Date.now();
  const start = procs.map((p) => ({ ...p, s: sample(p.pid) }));
  return {
    finish() {
      const secs = (Date.now() - t0) / 1000;
      return start.flatMap((p) => {
        const e = sample(p.pid);
        if (!e || !p.s) return [];
        const cpu = e.cpuSeconds - p.s.cpuSeconds;
        return [{ label: p.label, cpuPercent: (cpu / secs) * 100, cpuSeconds: cpu, rssMiB: e.rssMiB }];
      });
    },
  };
}

/** What a process calls itself (rspamd titles its workers, e.g. "rspamd: normal process (127.0.0.1:11333)"). */
export function procTitle(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+/g, ' ').trim();
  } catch {
    return '';
  }
}

/**
 * rspamd's main process and its workers (normal, controller, hs_helper…), labelled `rspamd(<worker type>)`: the
 * workers do the scanning, so the main pid alone would show almost nothing.
 */
export function rspamdProcs(mainPid: number | undefined): { label: string; pid: number | undefined }[] {
  return [
    { label: 'rspamd(main)', pid: mainPid },
    ...childPids(mainPid).map((pid) => {
      const kind = /rspamd: (\S+)/.exec(procTitle(pid))?.[1] ?? 'worker';
      return { label: `rspamd(${kind} ${pid})`, pid };
    }),
  ];
}

/** Direct children of a process (Haraka runs its SMTP server in a cluster worker). */
export function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
