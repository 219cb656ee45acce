import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { ConfigErrors, httpSchema, loadConfig } from '@mailgate/runtime';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-config-'));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}
const sections = {
  virusScan: z
    .object({
      http: httpSchema(9103),
      clamd: z
        .object({ endpoints: z.array(z.object({ host: z.string(), port: z.number() }).strict()).min(1) })
        .strict(),
    })
    .strict(),
};

function errorsOf(fn: () => unknown): ConfigErrors {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, `expected ConfigErrors, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a config error');
}

test('a valid file loads, with defaults filled in', () => {
  const f = file(
    'ok.yaml',
    'kafka:\n  brokers: [k1:9092, k2:9092]\nvirusScan:\n  clamd:\n    endpoints: [{ host: clamd, port: 3310 }]\n',
  );
  const c = loadConfig({ file: f, env: {}, sections });
  assert.deepEqual(c.kafka.brokers, ['k1:9092', 'k2:9092']);
  assert.equal(c.kafka.topics.partitions, 6);
  assert.equal(c.virusScan.http.port, 9103);
  assert.equal(c.redis.keyPrefix, 'mailgate:');
});

test('an unknown key is an error naming the key and the file', () => {
  const f = file(
    'unknown.yaml',
    'kafka:\n  brokerz: [k1:9092]\nvirusScan:\n  clamd: { endpoints: [{ host: c, port: 1 }] }\n',
  );
  const e = errorsOf(() => loadConfig({ file: f, env: {}, sections }));
  assert.equal(e.errors[0]!.key, 'kafka.brokerz');
  assert.equal(e.errors[0]!.source, `file ${f}`);
  assert.match(e.message, /kafka\.brokerz.*unknown key/);
});

test('an unknown top-level section is an error', () => {
  const f = file('top.yaml', 'kafak: {}\nvirusScan:\n  clamd: { endpoints: [{ host: c, port: 1 }] }\n');
  const e = errorsOf(() => loadConfig({ file: f, env: {}, sections }));
  assert.equal(e.errors[0]!.key, 'kafak');
});

test('a wrong type is an error naming the key and the file', () => {
  const f = file('type.yaml', 'virusScan:\n  clamd:\n    endpoints: [{ host: clamd, port: "3310" }]\n');
  const e = errorsOf(() => loadConfig({ file: f, env: {}, sections }));
  assert.equal(e.errors[0]!.key, 'virusScan.clamd.endpoints[0].port');
  assert.match(e.errors[0]!.message, /Expected number, received string/);
  assert.ok(e.errors[0]!.message.includes(f));
});

test('a missing required value is an error naming the key', () => {
  const f = file('missing.yaml', 'virusScan: {}\n');
  const e = errorsOf(() => loadConfig({ file: f, env: {}, sections }));
  assert.equal(e.errors[0]!.key, 'virusScan.clamd');
  assert.match(e.errors[0]!.message, /Required/);
});

test('environment overrides win over the file, and errors in them name the variable', () => {
  const f = file('env.yaml', 'virusScan:\n  clamd:\n    endpoints: [{ host: clamd, port: 3310 }]\n');
  const c = loadConfig({
    file: f,
    env: { MAILGATE__KAFKA__BROKERS: '[a:1, b:2]', MAILGATE__VIRUS_SCAN__HTTP__PORT: '9999' },
    sections,
  });
  assert.deepEqual(c.kafka.brokers, ['a:1', 'b:2']);
  assert.equal(c.virusScan.http.port, 9999);
  const e = errorsOf(() => loadConfig({ file: f, env: { MAILGATE__KAFKA__PRODUCE_TIMEOUT_MS: 'soon' }, sections }));
  assert.equal(e.errors[0]!.key, 'kafka.produceTimeoutMs');
  assert.equal(e.errors[0]!.source, 'env MAILGATE__KAFKA__PRODUCE_TIMEOUT_MS');
});

test('invalid YAML and a missing file are errors naming the file', () => {
  const f = file('bad.yaml', 'kafka: [unclosed\n');
  assert.match(errorsOf(() => loadConfig({ file: f, env: {}, sections })).message, /YAML/);
  assert.match(
    errorsOf(() => loadConfig({ file: path.join(dir, 'nope.yaml'), env: {}, sections })).message,
    /cannot read/,
  );
});

test('an environment value the key wants as a string is taken verbatim (a numeric password)', () => {
  const c = loadConfig({
    env: {
      MAILGATE__KAFKA__SASL__MECHANISM: 'plain',
      MAILGATE__KAFKA__SASL__USERNAME: 'gw',
      MAILGATE__KAFKA__SASL__PASSWORD: '123456',
      MAILGATE__VIRUS_SCAN__CLAMD__ENDPOINTS: '[{host: c, port: 1}]',
    },
    sections,
  });
  assert.equal(c.kafka.sasl?.password, '123456');
});

test('MAILGATE__…_FILE reads the value from a file (a mounted secret)', () => {
  const secret = file('password.txt', 'a: b # not yaml\n');
  const c = loadConfig({
    env: {
      MAILGATE__KAFKA__SASL__MECHANISM: 'plain',
      MAILGATE__KAFKA__SASL__USERNAME: 'gw',
      MAILGATE__KAFKA__SASL__PASSWORD_FILE: secret,
      MAILGATE__VIRUS_SCAN__CLAMD__ENDPOINTS: '[{host: c, port: 1}]',
    },
    sections,
  });
  assert.equal(c.kafka.sasl?.password, 'a: b # not yaml');
});

test('an environment value of null sets null (not the string "null")', () => {
  const c = loadConfig({
    env: { MAILGATE__DEV__BROKER__DATA_DIR: 'null', MAILGATE__VIRUS_SCAN__CLAMD__ENDPOINTS: '[{host: c, port: 1}]' },
    sections: {
      ...sections,
      dev: z.object({ broker: z.object({ dataDir: z.string().nullable() }).strict() }).strict(),
    },
  });
  assert.equal(c.dev.broker.dataDir, null);
});
