// A small authoritative DNS server (UDP only) for what rbldnsd cannot do: AAAA, PTR, CNAME, SERVFAIL/REFUSED on
// demand and "never answers" (timeout). Hand-written RFC 1035 encoding, no compression in answers.
import dgram from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';

export type DnsRecord =
  | { name: string; type: 'A'; address: string; ttl?: number }
  | { name: string; type: 'AAAA'; address: string; ttl?: number }
  | { name: string; type: 'MX'; priority: number; exchange: string; ttl?: number } // exchange '.' = null MX
  | { name: string; type: 'TXT'; text: string | string[]; ttl?: number }
  | { name: string; type: 'CNAME'; target: string; ttl?: number }
  | { name: string; type: 'PTR'; target: string; ttl?: number }
  | { name: string; type: 'NS'; target: string; ttl?: number };

export type DnsRecordType = DnsRecord['type'];
/** servfail/refused/nxdomain: answer with that RCODE; timeout: never answer. */
export type DnsFault = 'servfail' | 'refused' | 'nxdomain' | 'timeout';

export interface DnsQueryLogEntry {
  name: string;
  /** 'A', 'MX', … or 'TYPE<n>' */
  type: string;
  at: number;
  rcode: number | 'dropped';
}

export interface StartDnsServerOptions {
  records?: DnsRecord[];
  host?: string;
  port?: number;
}

export interface DnsServerHandle {
  host: string;
  port: number;
  /** 'HOST:PORT' for resolver.setServers(). */
  server: string;
  /** Every query received, in order. */
  queries: DnsQueryLogEntry[];
  setRecords(records: DnsRecord[]): void;
  addRecords(...records: DnsRecord[]): void;
  /** Removes all records of `name` (only of `type` if given). */
  removeRecords(name: string, type?: DnsRecordType): void;
  /** Make queries for `name` (only of `type` if given) fail; `null` removes the fault. Faults win over records. */
  setFault(name: string, fault: DnsFault | null, type?: DnsRecordType): void;
  clearFaults(): void;
  /** A dns.promises.Resolver pointed at this server (timeout 500 ms, 1 try unless overridden). */
  resolver(opts?: { timeout?: number; tries?: number }): dnsPromises.Resolver;
  close(): Promise<void>;
  /** Alias of close(). */
  stop(): Promise<void>;
}

const TYPE_CODES: Record<DnsRecordType, number> = { A: 1, NS: 2, CNAME: 5, PTR: 12, MX: 15, TXT: 16, AAAA: 28 };
const CODE_TYPES = new Map<number, DnsRecordType>(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as DnsRecordType]));
const QTYPE_ANY = 255;
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

function encodeName(name: string): Buffer {
  const n = norm(name);
  if (n === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of n.split('.')) {
    const b = Buffer.from(label, 'utf8');
    if (b.length === 0 || b.length > 63) throw new Error(`dns: bad label in ${JSON.stringify(name)}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Reads a (possibly compressed) name at `off`; returns the name and the offset after it. */
function readName(msg: Buffer, off: number): [string, number] {
  const labels: string[] = [];
  let pos = off;
  let end = -1;
  for (let hops = 0; hops < 64; hops++) {
    const len = msg.readUInt8(pos);
    if (len === 0) {
      return [labels.join('.'), end === -1 ? pos + 1 : end];
    }
    if ((len & 0xc0) === 0xc0) {
      if (end === -1) end = pos + 2;
      pos = ((len & 0x3f) << 8) | msg.readUInt8(pos + 1);
      continue;
    }
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('utf8'));
    pos += 1 + len;
  }
  throw new Error('dns: name too long / loop');
}

function encodeIPv6(addr: string): Buffer {
  if (!net.isIPv6(addr)) throw new Error(`dns: bad IPv6 address ${addr}`);
  let a = addr;
  const v4 = a.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    a = a.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), i * 2));
  return buf;
}

function encodeRdata(r: DnsRecord): Buffer {
  switch (r.type) {
    case 'A': {
      if (!net.isIPv4(r.address)) throw new Error(`dns: bad IPv4 address ${r.address}`);
      return Buffer.from(r.address.split('.').map(Number));
    }
    case 'AAAA':
      return encodeIPv6(r.address);
    case 'MX': {
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(r.priority);
      return Buffer.concat([pref, encodeName(r.exchange)]);
    }
    case 'TXT': {
      const strings = Array.isArray(r.text) ? r.text : [r.text];
      const parts: Buffer[] = [];
      for (const s of strings) {
        const b = Buffer.from(s, 'utf8');
        if (b.length === 0) parts.push(Buffer.from([0]));
        for (let i = 0; i < b.length; i += 255) {
          const chunk = b.subarray(i, i + 255);
          parts.push(Buffer.from([chunk.length]), chunk);
        }
      }
      return Buffer.concat(parts);
    }
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return encodeName(r.target);
  }
}

function encodeRR(r: DnsRecord): Buffer {
  const rdata = encodeRdata(r);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE_CODES[r.type], 0);
  fixed.writeUInt16BE(1, 2); // IN
  fixed.writeUInt32BE(r.ttl ?? 60, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(r.name), fixed, rdata]);
}

/** Starts an authoritative UDP DNS server for every name (unknown names get NXDOMAIN). */
export async function startDnsServer(opts: StartDnsServerOptions = {}): Promise<DnsServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  let records: DnsRecord[] = [...(opts.records ?? [])];
  for (const r of records) encodeRR(r); // validate early
  const faults = new Map<string, DnsFault>(); // key: name|TYPE or name|*
  const queries: DnsQueryLogEntry[] = [];
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  let closed = false;

  const answer = (qname: string, qtype: number): { rcode: number; answers: DnsRecord[] } | 'dropped' => {
    const typeName = CODE_TYPES.get(qtype);
    const fault = (typeName && faults.get(`${qname}|${typeName}`)) || faults.get(`${qname}|*`);
    if (fault === 'timeout') return 'dropped';
    if (fault === 'servfail') return { rcode: RCODE.SERVFAIL, answers: [] };
    if (fault === 'refused') return { rcode: RCODE.REFUSED, answers: [] };
    if (fault === 'nxdomain') return { rcode: RCODE.NXDOMAIN, answers: [] };
    const exists = records.some((r) => norm(r.name) === qname || norm(r.name).endsWith(`.${qname}`));
    if (!exists) return { rcode: RCODE.NXDOMAIN, answers: [] };
    const answers: DnsRecord[] = [];
    let name = qname;
    for (let hop = 0; hop < 8; hop++) {
      const own = records.filter((r) => norm(r.name) === name);
      const direct = own.filter((r) => qtype === QTYPE_ANY || TYPE_CODES[r.type] === qtype);
      if (direct.length > 0) {
        answers.push(...direct);
        break;
      }
      const cname = own.find((r): r is Extract<DnsRecord, { type: 'CNAME' }> => r.type === 'CNAME');
      if (!cname) break;
      answers.push(cname);
      name = norm(cname.target);
    }
    return { rcode: RCODE.NOERROR, answers };
  };

  sock.on('message', (msg, rinfo) => {
    try {
      if (msg.length < 12) return;
      const id = msg.readUInt16BE(0);
      const flags = msg.readUInt16BE(2);
      if (flags & 0x8000) return; // a response, ignore
      const qd = msg.readUInt16BE(4);
      if (qd < 1) return;
      const [rawName, after] = readName(msg, 12);
      const qtype = msg.readUInt16BE(after);
      const question = msg.subarray(12, after + 4);
      const qname = norm(rawName);
      const res = answer(qname, qtype);
      queries.push({
        name: qname,
        type: CODE_TYPES.get(qtype) ?? (qtype === QTYPE_ANY ? 'ANY' : `TYPE${qtype}`),
        at: Date.now(),
        rcode: res === 'dropped' ? 'dropped' : res.rcode,
      });
      if (res === 'dropped') return;
      const header = Buffer.alloc(12);
      header.writeUInt16BE(id, 0);
      // QR=1, opcode copied, AA=1, RD copied, RA=0
      header.writeUInt16BE(0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | res.rcode, 2);
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(res.answers.length, 6);
      const reply = Buffer.concat([header, question, ...res.answers.map(encodeRR)]);
      sock.send(reply, rinfo.port, rinfo.address);
    } catch {
      /* malformed query: ignore */
    }
  });

  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port ?? 0, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  sock.on('error', () => {
    /* keep serving */
  });
  const port = sock.address().port;
  const server = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;

  const close = (): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve();
      closed = true;
      sock.close(() => resolve());
    });

  return {
    host,
    port,
    server,
    queries,
    setRecords(rs) {
      for (const r of rs) encodeRR(r);
      records = [...rs];
    },
    addRecords(...rs) {
      for (const r of rs) encodeRR(r);
      records.push(...rs);
    },
    removeRecords(name, type) {
      const n = norm(name);
      records = records.filter((r) => !(norm(r.name) === n && (type === undefined || r.type === type)));
    },
    setFault(name, fault, type) {
      const key = `${norm(name)}|${type ?? '*'}`;
      if (fault === null) faults.delete(key);
      else faults.set(key, fault);
    },
    clearFaults() {
      faults.clear();
    },
    resolver(ropts) {
      const r = new dnsPromises.Resolver({ timeout: ropts?.timeout ?? 500, tries: ropts?.tries ?? 1 });
      r.setServers([server]);
      return r;
    },
    close,
    stop: close,
  };
}
