// docker-compose.yml's Kafka environment, checked the way the apache/kafka image and Kafka's KRaft start-up check it
// (no Docker engine here): the cluster id is a real KRaft id, the listeners, advertised listeners, security protocol
// map and controller quorum agree with each other, and clients reach an advertised address.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { REPO } from '../lib/helm.mjs';

const compose = parse(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true });
const kafka = compose.services.kafka;
const env = kafka.environment;

/** `NAME://host:port,...` → [{ name, host, port }] (Kafka's listener list syntax; host may be empty). */
function listeners(value) {
  return String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^([A-Za-z0-9_]+):\/\/(\[[^\]]*\]|[^:]*):(\d+)$/.exec(s);
      assert.ok(m, `not a listener: ${s}`);
      return { name: m[1], host: m[2], port: Number(m[3]) };
    });
}

/**
 * What Kafka's Uuid.fromString accepts as a cluster id (and `kafka-storage random-uuid` prints): 22 characters of
 * base64url without padding that decode to exactly 16 bytes (re-encoding gives the same text), not one of the
 * reserved ids (all zeros, or 0…01 the metadata topic id), and not starting with '-' (Kafka never generates those:
 * the CLI would read them as an option).
 */
export function kraftClusterIdProblem(id) {
  if (typeof id !== 'string') return 'not a string';
  if (!/^[A-Za-z0-9_-]{22}$/.test(id)) return 'must be 22 base64url characters';
  const bytes = Buffer.from(id, 'base64url');
  if (bytes.length !== 16) return `decodes to ${bytes.length} bytes, not 16`;
  if (bytes.toString('base64url') !== id) return 'not the canonical encoding of its 16 bytes';
  const hi = bytes.readBigUInt64BE(0);
  const lo = bytes.readBigUInt64BE(8);
  if (hi === 0n && (lo === 0n || lo === 1n)) return 'a reserved Kafka UUID';
  if (id.startsWith('-')) return "starts with '-'";
  return null;
}

describe('docker-compose.yml: Kafka (KRaft)', () => {
  test('the cluster id check itself: accepts kafka-storage ids, rejects the old one', () => {
    assert.equal(kraftClusterIdProblem('MkU3OEVBNTcwNTJENDM2Qg'), null); // Kafka quickstart's example
    assert.match(kraftClusterIdProblem('bWFpbGdhdGUtZGV2LWNsdXN0ZXI'), /22 base64url/);
    assert.match(kraftClusterIdProblem('AAAAAAAAAAAAAAAAAAAAAA'), /reserved/);
    assert.match(kraftClusterIdProblem('NoxPnuqq1Kz7jDXxz4oRGB'), /canonical/);
  });

  test('CLUSTER_ID is a KRaft cluster id (base64url of 16 bytes, 22 characters)', () => {
    assert.equal(kraftClusterIdProblem(env.CLUSTER_ID), null, `CLUSTER_ID ${env.CLUSTER_ID}`);
  });

  const ls = listeners(env.KAFKA_LISTENERS);
  const adv = listeners(env.KAFKA_ADVERTISED_LISTENERS);
  const protoMap = Object.fromEntries(
    String(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP)
      .split(',')
      .map((p) => p.trim().split(':')),
  );
  const controllerNames = String(env.KAFKA_CONTROLLER_LISTENER_NAMES).split(',');
  const roles = String(env.KAFKA_PROCESS_ROLES).split(',');

  test('listeners: unique names and ports, each with a security protocol', () => {
    assert.equal(new Set(ls.map((l) => l.name)).size, ls.length, 'duplicate listener name');
    assert.equal(new Set(ls.map((l) => l.port)).size, ls.length, 'duplicate listener port');
    for (const l of ls) {
      assert.ok(protoMap[l.name], `${l.name} missing from KAFKA_LISTENER_SECURITY_PROTOCOL_MAP`);
      assert.match(protoMap[l.name], /^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$/);
    }
  });

  test('advertised listeners: declared listeners on their ports, reachable host names, no controller listener', () => {
    for (const a of adv) {
      const l = ls.find((x) => x.name === a.name);
      assert.ok(l, `advertised ${a.name} is not in KAFKA_LISTENERS`);
      assert.ok(!controllerNames.includes(a.name), `controller listener ${a.name} must not be advertised`);
      assert.ok(a.host && a.host !== '0.0.0.0', `${a.name}: advertise a host clients can reach, not "${a.host}"`);
      if (a.host === 'localhost' || a.host === '127.0.0.1') {
        // A host-side listener: the port must be published on the host.
        assert.ok(
          (kafka.ports ?? []).some((p) => String(p).endsWith(`:${a.port}:${l.port}`)),
          `${a.name}: ${a.host}:${a.port} is not a published port`,
        );
      } else {
        assert.equal(a.host, 'kafka', `${a.name}: containers reach the broker by its service name`);
        assert.equal(a.port, l.port);
      }
    }
    assert.ok(
      adv.some((a) => a.name === env.KAFKA_INTER_BROKER_LISTENER_NAME),
      'the inter-broker listener is advertised',
    );
  });

  test('KRaft controller: roles, controller listener and quorum voters agree', () => {
    assert.ok(roles.includes('controller') && roles.includes('broker'), 'single-node combined mode');
    for (const c of controllerNames)
      assert.ok(
        ls.some((l) => l.name === c),
        `controller listener ${c} not bound`,
      );
    const controllerPort = ls.find((l) => l.name === controllerNames[0]).port;
    const voters = String(env.KAFKA_CONTROLLER_QUORUM_VOTERS)
      .split(',')
      .map((v) => {
        const m = /^(\d+)@([^:]+):(\d+)$/.exec(v.trim());
        assert.ok(m, `not a quorum voter: ${v}`);
        return { id: Number(m[1]), host: m[2], port: Number(m[3]) };
      });
    const self = voters.find((v) => v.id === Number(env.KAFKA_NODE_ID));
    assert.ok(self, `KAFKA_NODE_ID ${env.KAFKA_NODE_ID} is not a quorum voter`);
    assert.equal(self.host, 'kafka');
    assert.equal(self.port, controllerPort);
  });

  test('mailgate connects to an advertised listener', () => {
    const cfg = parse(readFileSync(join(REPO, 'deploy', 'compose', 'mailgate.yaml'), 'utf8'));
    for (const b of cfg.kafka.brokers) {
      const [host, port] = b.split(':');
      assert.ok(
        adv.some((a) => a.host === host && a.port === Number(port)),
        `${b} is not an advertised listener`,
      );
    }
  });
});
