/**
 * Print every key of the configuration document with its default, read from the zod schemas themselves, so the
 * tables in docs/configuration.md can be checked against the code:
 *
 *   node --import tsx --conditions=mailgate-src scripts/config-defaults.ts            # every section
 *   node --import tsx --conditions=mailgate-src scripts/config-defaults.ts delivery   # one section
 *
 * Output: one line per leaf key, `path<TAB>default<TAB>type`. `(required)` = no default and not optional;
 * `(unset)` = optional without a default. A service that is not installed is reported and skipped.
 */
import { COMMON_SECTIONS } from '@mailgate/runtime';
import { z, type ZodTypeAny } from 'zod';

type Row = { path: string; def: string; type: string };

function show(v: unknown): string {
  return v === undefined ? '(unset)' : JSON.stringify(v);
}

/** Peel wrappers that do not change the shape; remember the default that applies to an absent key. */
function unwrap(s: ZodTypeAny): { inner: ZodTypeAny; def?: unknown; hasDef: boolean; optional: boolean } {
  let cur = s;
  let def: unknown;
  let hasDef = false;
  let optional = false;
  for (;;) {
    if (cur instanceof z.ZodDefault) {
      // optional(default(x)): an absent key stays absent, the inner default never applies.
      if (!hasDef && !optional) {
        def = cur._def.defaultValue();
        hasDef = true;
      }
      cur = cur._def.innerType;
    } else if (cur instanceof z.ZodOptional) {
      optional = true;
      cur = cur._def.innerType;
    } else if (cur instanceof z.ZodNullable) {
      cur = cur._def.innerType;
    } else if (cur instanceof z.ZodEffects) {
      cur = cur._def.schema;
    } else break;
  }
  return { inner: cur, def, hasDef, optional };
}

function typeName(s: ZodTypeAny): string {
  if (s instanceof z.ZodEnum) return (s._def.values as string[]).join(' | ');
  if (s instanceof z.ZodLiteral) return JSON.stringify(s._def.value);
  if (s instanceof z.ZodUnion)
    return (s._def.options as ZodTypeAny[]).map((o) => typeName(unwrap(o).inner)).join(' or ');
  if (s instanceof z.ZodArray) return `list of ${typeName(unwrap(s._def.type).inner)}`;
  if (s instanceof z.ZodRecord) return 'map';
  if (s instanceof z.ZodObject) return 'object';
  return s._def.typeName.replace(/^Zod/, '').toLowerCase();
}

function walk(s: ZodTypeAny, path: string, out: Row[]): void {
  const { inner, def, hasDef, optional } = unwrap(s);
  if (inner instanceof z.ZodObject) {
    const shape = inner.shape as Record<string, ZodTypeAny>;
    // An optional object without a default (e.g. ingress.tls): list it once, then its keys.
    if (!hasDef && optional && path) out.push({ path, def: '(unset)', type: 'object' });
    for (const [k, v] of Object.entries(shape)) walk(v, path ? `${path}.${k}` : k, out);
    return;
  }
  if (inner instanceof z.ZodArray) {
    const el = unwrap(inner._def.type).inner;
    out.push({ path, def: hasDef ? show(def) : optional ? '(unset)' : '(required)', type: typeName(inner) });
    if (el instanceof z.ZodObject) walk(el, `${path}[]`, out);
    return;
  }
  out.push({ path, def: hasDef ? show(def) : optional ? '(unset)' : '(required)', type: typeName(inner) });
}

const SERVICES: [section: string, pkg: string, exportName: string][] = [
  ['ingress', '@mailgate/ingress-smtp', 'ingressSchema'],
  ['dnsbl', '@mailgate/dnsbl', 'dnsblSchema'],
  ['virusScan', '@mailgate/virus-scan', 'virusScanSchema'],
  ['attachmentPolicy', '@mailgate/attachment-policy', 'attachmentPolicySchema'],
  ['spamCheck', '@mailgate/spam-check', 'spamCheckSchema'],
  ['delivery', '@mailgate/delivery', 'deliverySchema'],
  ['admin', '@mailgate/admin', 'adminSchema'],
  ['dev', '../packages/cli/src/dev-config.ts', 'devSchema'],
];

async function sections(): Promise<[string, ZodTypeAny][]> {
  const out: [string, ZodTypeAny][] = Object.entries(COMMON_SECTIONS);
  for (const [section, pkg, name] of SERVICES) {
    try {
      const mod = (await import(pkg)) as Record<string, unknown>;
      const schema = mod[name] as ZodTypeAny | undefined;
      if (!schema) throw new Error(`${pkg} does not export ${name}`);
      out.push([section, schema]);
    } catch (e) {
      console.error(`# ${section}: not available (${(e as Error).message.split('\n')[0]})`);
    }
  }
  return out;
}

const only = process.argv[2];
for (const [section, schema] of await sections()) {
  if (only && only !== section) continue;
  const rows: Row[] = [];
  walk(schema, '', rows);
  console.log(`## ${section}`);
  for (const r of rows) console.log(`${r.path}\t${r.def}\t${r.type}`);
  console.log();
}
