import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_TLS_CERT, FIXTURE_TLS_KEY } from './fixtures.js';
import { makeTempDir, removeTempDir } from './process.js';

export interface TlsKeyPair {
  key: string;
  cert: string;
  /** 'openssl' when freshly generated, 'fixture' when the embedded PEMs were used. */
  source: 'openssl' | 'fixture';
}

/** SANs of the generated certificate. */
export const TEST_TLS_SUBJECT_ALT_NAMES =
  'DNS:localhost,DNS:*.test,DNS:mx1.remote.test,DNS:mx2.remote.test,IP:127.0.0.1,IP:127.0.0.12,IP:127.0.0.13,IP:::1';

let cached: TlsKeyPair | undefined;

/**
 * A self-signed EC P-256 key pair (CN=localhost), generated once per process with the `openssl` CLI, or the fixed
 * embedded fixture if openssl is missing. Clients should use `{ rejectUnauthorized: false }` or `{ ca: cert }`.
 */
export function testTlsCert(): TlsKeyPair {
  if (cached) return cached;
  const dir = makeTempDir('tls');
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '3650',
        '-subj',
        '/CN=localhost',
        '-addext',
        `subjectAltName=${TEST_TLS_SUBJECT_ALT_NAMES}`,
      ],
      { stdio: 'ignore', timeout: 10_000 },
    );
    cached = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), source: 'openssl' };
  } catch {
    cached = { key: FIXTURE_TLS_KEY, cert: FIXTURE_TLS_CERT, source: 'fixture' };
  } finally {
    void removeTempDir(dir);
  }
  return cached;
}
