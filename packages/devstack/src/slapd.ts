import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import net from 'node:net';
import { freePort } from './net.js';
import { ManagedProcess, makeTempDir, removeTempDir, waitUntilReady, launchOnPort } from './process.js';
import { testTlsCert } from './tls.js';

const run = promisify(execFile);

export const SLAPD_BINARY = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';

export interface SlapdUser {
  /** uid / cn of the entry (ou=people). */
  uid: string;
  mail?: string;
  /** AD-style `smtp:alias@domain` / `SMTP:primary@domain` values. */
  proxyAddresses?: string[];
}

export interface StartSlapdOptions {
  /** Default dc=example,dc=test. */
  suffix?: string;
  users?: SlapdUser[];
  /** Password of the service account cn=mailgate,<suffix> (read access to the tree). Default 'mailgate-secret'. */
  servicePassword?: string;
  /** Also listen with LDAPS (testTlsCert(): CN=localhost, IP:127.0.0.1; it is its own CA). Default false. */
  ldaps?: boolean;
  /** Plain LDAP port (default: a free one). */
  port?: number;
  timeoutMs?: number;
}

export interface SlapdHandle {
  host: string;
  port: number;
  /** ldap://127.0.0.1:PORT */
  url: string;
  /** ldaps://127.0.0.1:PORT (when started with ldaps). */
  ldapsUrl?: string;
  /** PEM of the CA (self-signed certificate) that verifies the LDAPS listener. */
  caPem?: string;
  suffix: string;
  bindDn: string;
  bindPassword: string;
  dir: string;
  /** Stop the server (data kept): an outage. */
  kill(): Promise<void>;
  /** Start it again on the same ports with the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** This directory as a `recipients.sources` entry of type ldap (plain LDAP, the directory's own bind). */
export function ldapSource(slapd: SlapdHandle): {
  type: 'ldap';
  url: string;
  bindDn: string;
  bindPassword: string;
  baseDn: string;
} {
  return { type: 'ldap', url: slapd.url, bindDn: slapd.bindDn, bindPassword: slapd.bindPassword, baseDn: slapd.suffix };
}

const HOST = '127.0.0.1';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// Active Directory's proxyAddresses (its real OID), as an auxiliary class on top of inetOrgPerson.
const AD_SCHEMA = `attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.55555.1.1 NAME 'mailgateProxyAddresses' SUP top AUXILIARY MAY proxyAddresses )
`;

function ldif(suffix: string, servicePassword: string, users: SlapdUser[]): string {
  const dc = /^dc=([^,]+)/.exec(suffix)?.[1] ?? 'example';
  const out = [
    `dn: ${suffix}\nobjectClass: dcObject\nobjectClass: organization\no: ${dc}\ndc: ${dc}\n`,
    `dn: ou=people,${suffix}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: cn=mailgate,${suffix}\nobjectClass: person\ncn: mailgate\nsn: service\nuserPassword: ${servicePassword}\n`,
  ];
  for (const u of users) {
    const lines = [
      `dn: uid=${u.uid},ou=people,${suffix}`,
      'objectClass: inetOrgPerson',
      'objectClass: mailgateProxyAddresses',
      `uid: ${u.uid}`,
      `cn: ${u.uid}`,
      `sn: ${u.uid}`,
      ...(u.mail ? [`mail: ${u.mail}`] : []),
      ...(u.proxyAddresses ?? []).map((p) => `proxyAddresses: ${p}`),
    ];
    out.push(lines.join('\n') + '\n');
  }
  return out.join('\n');
}

/**
 * Debian's slapd as a child process on free loopback ports: a generated slapd.conf (core, cosine, inetorgperson and
 * an AD-like proxyAddresses schema, mdb backend) and a directory loaded with slapadd before start. The service
 * account cn=mailgate,<suffix> may read everything; anonymous may only bind.
 */
export async function startSlapd(opts: StartSlapdOptions = {}): Promise<SlapdHandle> {
  const suffix = opts.suffix ?? 'dc=example,dc=test';
  const bindPassword = opts.servicePassword ?? 'mailgate-secret';
  const bindDn = `cn=mailgate,${suffix}`;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const dir = makeTempDir('slapd');
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'db'));
  const tls = opts.ldaps ? testTlsCert() : null;
  if (tls) {
    await writeFile(join(dir, 'cert.pem'), tls.cert);
    await writeFile(join(dir, 'key.pem'), tls.key, { mode: 0o600 });
  }
  await writeFile(join(dir, 'ad.schema'), AD_SCHEMA);
  const conf = [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    `include ${join(dir, 'ad.schema')}`,
    `pidfile ${join(dir, 'slapd.pid')}`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    ...(tls ? [`TLSCertificateFile ${join(dir, 'cert.pem')}`, `TLSCertificateKeyFile ${join(dir, 'key.pem')}`] : []),
    'database mdb',
    `suffix "${suffix}"`,
    `rootdn "cn=admin,${suffix}"`,
    'rootpw admin-secret',
    `directory ${join(dir, 'db')}`,
    'maxsize 16777216',
    'index objectClass eq',
    'index mail eq',
    'index proxyAddresses eq',
    'access to attrs=userPassword by anonymous auth by * none',
    `access to * by dn.exact="${bindDn}" read by * none`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'slapd.conf'), conf);
  await writeFile(join(dir, 'data.ldif'), ldif(suffix, bindPassword, opts.users ?? []));
  await run(SLAPADD, ['-f', join(dir, 'slapd.conf'), '-l', join(dir, 'data.ldif')], { timeout: timeoutMs });

  let proc: ManagedProcess | undefined;
  let ldapsPort = 0;
  const launch = async (port: number): Promise<void> => {
    ldapsPort = tls ? ldapsPort || (await freePort(HOST)) : 0;
    const urls = [`ldap://${HOST}:${port}/`, ...(tls ? [`ldaps://${HOST}:${ldapsPort}/`] : [])].join(' ');
    // -d 0: stay in the foreground (so the child is ours to kill) without debug output.
    const p = new ManagedProcess(
      `slapd:${port}`,
      SLAPD_BINARY,
      ['-d', '0', '-f', join(dir, 'slapd.conf'), '-h', urls],
      {
        cwd: dir,
      },
    );
    proc = p;
    await waitUntilReady(
      p,
      async () => {
        const ports = [port, ...(tls ? [ldapsPort] : [])];
        return (await Promise.all(ports.map(canConnect))).every(Boolean);
      },
      timeoutMs,
      30,
    );
  };
  const port = await launchOnPort(opts.port, () => freePort(HOST), launch);
  let stopped = false;
  const handle: SlapdHandle = {
    host: HOST,
    port,
    url: `ldap://${HOST}:${port}`,
    ...(tls ? { ldapsUrl: `ldaps://${HOST}:${ldapsPort}`, caPem: tls.cert } : {}),
    suffix,
    bindDn,
    bindPassword,
    dir,
    async kill() {
      await proc?.kill();
    },
    async restart() {
      await proc?.kill();
      await launch(port);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc?.kill();
      await removeTempDir(dir);
    },
    output: () => proc?.output() ?? '',
  };
  return handle;
}
