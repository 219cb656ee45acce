import dgram from 'node:dgram';

/**
 * A UDP relay between the resolver under test and rbldnsd: counts the questions that really reach DNS (the cache
 * test) and can swallow questions under a given suffix (a zone that never answers: the timeout tests).
 */
export interface DnsRelay {
  server: string;
  /** Question names seen, in order (lower case). */
  readonly names: string[];
  /** Questions for names ending in one of these suffixes get no answer. */
  drop: Set<string>;
  count(suffix?: string): number;
  close(): Promise<void>;
}

function qname(msg: Buffer): string {
  const labels: string[] = [];
  let pos = 12;
  while (pos < msg.length) {
    const len = msg[pos]!;
    if (len === 0) break;
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('latin1'));
    pos += 1 + len;
  }
  return labels.join('.').toLowerCase();
}

export async function startRelay(upstreamPort: number): Promise<DnsRelay> {
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  const names: string[] = [];
  const drop = new Set<string>();
  const pending = new Map<number, { port: number; address: string }>();
  let nextId = 1;
  front.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const name = qname(msg);
    names.push(name);
    for (const s of drop) if (name === s || name.endsWith(`.${s}`)) return;
    // Rewrite the id so concurrent clients cannot collide; restore it on the way back.
    const id = nextId++ & 0xffff;
    const orig = msg.readUInt16BE(0);
    pending.set(id, { port: rinfo.port, address: rinfo.address });
    const fwd = Buffer.from(msg);
    fwd.writeUInt16BE(id, 0);
    origIds.set(id, orig);
    back.send(fwd, upstreamPort, '127.0.0.1');
  });
  const origIds = new Map<number, number>();
  back.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const to = pending.get(id);
    const orig = origIds.get(id);
    if (!to || orig === undefined) return;
    pending.delete(id);
    origIds.delete(id);
    const out = Buffer.from(msg);
    out.writeUInt16BE(orig, 0);
    front.send(out, to.port, to.address);
  });
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', r));
  return {
    server: `127.0.0.1:${front.address().port}`,
    names,
    drop,
    count: (suffix) => (suffix ? names.filter((n) => n === suffix || n.endsWith(`.${suffix}`)).length : names.length),
    close: async () => {
      await new Promise<void>((r) => front.close(() => r()));
      await new Promise<void>((r) => back.close(() => r()));
    },
  };
}
