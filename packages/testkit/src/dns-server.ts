// A small authoritative DNS server (UDP only) for what rbldnsd cannot do: AAAA, PTR, CNAME, SERVFAIL/REFUSED on
// demand and "never answers" (timeout). The wire format is dns-packet's.
import dgram from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';
import dnsPacket from 'dns-packet';

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
  /** 'A', 'MX', 'ANY', … as dns-packet names it, or 'TYPE<n>' for a type it does not know */
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

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** The OPCODE field of the header flags, echoed from the query. */
const OPCODE_BITS = 0xf << 11;

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');
/** A name as dns-packet writes it: '.' for the root (a null MX's exchange). */
const wireName = (name: string): string => norm(name) || '.';

/** Throws on what DNS cannot carry: a bad address, an empty or over-long label. */
function checkRecord(r: DnsRecord): void {
  if (r.type === 'A' && !net.isIPv4(r.address)) throw new Error(`dns: bad IPv4 address ${r.address}`);
  if (r.type === 'AAAA' && !net.isIPv6(r.address)) throw new Error(`dns: bad IPv6 address ${r.address}`);
  const names = [r.name, r.type === 'MX' ? r.exchange : 'target' in r ? r.target : ''];
  for (const name of names) {
    const n = norm(name);
    if (n !== '' && n.split('.').some((l) => Buffer.byteLength(l) === 0 || Buffer.byteLength(l) > 63))
      throw new Error(`dns: bad label in ${JSON.stringify(name)}`);
  }
}

/** A record as dns-packet's answer; TXT strings longer than 255 bytes are split into character-strings. */
function toAnswer(r: DnsRecord): dnsPacket.Answer {
  const base = { name: wireName(r.name), ttl: r.ttl ?? 60, class: 'IN' as const };
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return { ...base, type: r.type, data: r.address };
    case 'MX':
      return { ...base, type: 'MX', data: { preference: r.priority, exchange: wireName(r.exchange) } };
    case 'TXT': {
      const strings: Buffer[] = [];
      for (const text of Array.isArray(r.text) ? r.text : [r.text]) {
        const b = Buffer.from(text, 'utf8');
        if (b.length === 0) strings.push(b);
        for (let i = 0; i < b.length; i += 255) strings.push(b.subarray(i, i + 255));
      }
      return { ...base, type: 'TXT', data: strings };
    }
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return { ...base, type: r.type, data: wireName(r.target) };
  }
}

/** Starts an authoritative UDP DNS server for every name (unknown names get NXDOMAIN). */
export async function startDnsServer(opts: StartDnsServerOptions = {}): Promise<DnsServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  let records: DnsRecord[] = [...(opts.records ?? [])];
  for (const r of records) checkRecord(r); // validate early
  const faults = new Map<string, DnsFault>(); // key: name|TYPE or name|*
  const queries: DnsQueryLogEntry[] = [];
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  let closed = false;

  const answer = (qname: string, qtype: string): { rcode: number; answers: DnsRecord[] } | 'dropped' => {
    const fault = faults.get(`${qname}|${qtype}`) || faults.get(`${qname}|*`);
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
      const direct = own.filter((r) => qtype === 'ANY' || r.type === qtype);
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
      const query = dnsPacket.decode(msg);
      const question = query.questions?.[0];
      if (query.type === 'response' || !question) return;
      const qname = norm(question.name);
      const qtype: string = question.type;
      const res = answer(qname, qtype);
      queries.push({
        name: qname,
        type: qtype.startsWith('UNKNOWN_') ? `TYPE${qtype.slice(8)}` : qtype,
        at: Date.now(),
        rcode: res === 'dropped' ? 'dropped' : res.rcode,
      });
      if (res === 'dropped') return;
      // Authoritative, opcode and RD copied from the query, no recursion available; the first question echoed.
      const flags = (query.flags ?? 0) & (OPCODE_BITS | dnsPacket.RECURSION_DESIRED);
      const reply = dnsPacket.encode({
        type: 'response',
        id: query.id ?? 0,
        flags: flags | dnsPacket.AUTHORITATIVE_ANSWER | res.rcode,
        questions: [question],
        answers: res.answers.map(toAnswer),
      });
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
      for (const r of rs) checkRecord(r);
      records = [...rs];
    },
    addRecords(...rs) {
      for (const r of rs) checkRecord(r);
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

/** How a DNS query ended, for assertions: 'ok', or the resolver error's code (ENOTFOUND, ESERVFAIL, ETIMEOUT…). */
export async function dnsOutcome(query: Promise<unknown>): Promise<string> {
  try {
    await query;
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
}
