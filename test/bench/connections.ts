// TCP connections opened on this machine during an interval, by the listening port they went to: read from
// /proc/net/tcp{,6} (Linux), no tools needed. A connection leaves a TIME_WAIT entry for 60 s after it closes, so
// polling every 250 ms sees every connection of an interval shorter than that, however short-lived (a socket
// closed with a reset skips TIME_WAIT and may be missed: a lower bound then).
import { readFileSync } from 'node:fs';

const LISTEN = '0A';

interface Entry {
  local: string;
  remote: string;
  state: string;
}

function read(): Entry[] {
  const out: Entry[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(f, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 3) out.push({ local: c[1]!, remote: c[2]!, state: c[3]! });
    }
  }
  return out;
}

const port = (addr: string): number => parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);

export interface ConnectionCount {
  label: string;
  port: number;
  connections: number;
}

/**
 * Starts counting now; `finish()` gives the connections first seen after the start, per listening port (both
 * ends of a loopback connection appear in /proc: counted once). `labels` names the ports of interest; only
 * those are reported, busiest first.
 */
export function connectionCounter(labels: { label: string; port: number }[]): { finish(): ConnectionCount[] } {
  const key = (e: Entry) => [e.local, e.remote].sort().join('|');
  const before = new Set(read().map(key));
  const seen = new Map<string, Entry>();
  const poll = () => {
    for (const e of read()) {
      if (e.state === LISTEN) continue;
      const k = key(e);
      if (!before.has(k) && !seen.has(k)) seen.set(k, e);
    }
  };
  const timer = setInterval(poll, 250);
  return {
    finish() {
      poll();
      clearInterval(timer);
      const counts = new Map<number, number>();
      for (const e of seen.values()) {
        for (const p of new Set([port(e.local), port(e.remote)])) counts.set(p, (counts.get(p) ?? 0) + 1);
      }
      return labels
        .map((l) => ({ ...l, connections: counts.get(l.port) ?? 0 }))
        .sort((a, b) => b.connections - a.connections);
    },
  };
}
