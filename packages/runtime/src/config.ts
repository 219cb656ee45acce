import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z, type ZodTypeAny } from 'zod';
import { COMMON_SECTIONS, SERVICE_SECTIONS, type CommonConfig, type ServiceSection } from './config-sections.js';

export * from './config-sections.js';

/**
 * One configuration document for the whole gateway: a YAML file plus environment overrides, validated at
 * start-up. Every service reads the same document; the common sections are declared here, each service
 * declares its own section's schema beside its code and passes it in (see `SERVICE_SECTIONS`).
 *
 * Environment overrides: `MAILGATE__<SECTION>__<KEY>...=<YAML scalar or flow value>`, e.g.
 *   MAILGATE__KAFKA__BROKERS='[kafka-0:9092, kafka-1:9092]'
 *   MAILGATE__VIRUS_SCAN__HTTP__PORT=9103
 * Segments match keys case-insensitively ignoring `_` and `-` (VIRUS_SCAN → virusScan).
 * `MAILGATE_CONFIG` names the file when no --config is given.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** Dotted key path, e.g. `kafka.brokers[0]`. */
    readonly key: string,
    /** Where the bad value came from: `file deploy/x.yaml` or `env MAILGATE__KAFKA__BROKERS`. */
    readonly source: string,
  ) {
    super(`config error at ${key || '(root)'} (${source}): ${message}`);
  }
}

/** Errors from one load, all of them (an operator fixes a file once, not once per error). */
export class ConfigErrors extends Error {
  override readonly name = 'ConfigErrors';
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
  }
}

export type LoadedConfig<S extends Partial<Record<ServiceSection, ZodTypeAny>>> = CommonConfig & {
  [K in keyof S]: S[K] extends ZodTypeAny ? z.infer<S[K]> : never;
} & { readonly $source: { file?: string } };

export interface LoadConfigOptions<S extends Partial<Record<ServiceSection, ZodTypeAny>>> {
  /** YAML file; falls back to env MAILGATE_CONFIG; none = defaults + env only. */
  file?: string | undefined;
  /** Inline document (tests); merged under the file. */
  document?: unknown;
  env?: NodeJS.ProcessEnv;
  /** Section schemas of the services that will use this config. */
  sections?: S;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const ENV_PREFIX = 'MAILGATE__';

function norm(s: string): string {
  return s.toLowerCase().replace(/[_-]/g, '');
}

function camel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

interface EnvOrigin {
  readonly variable: string;
  /** The value as written in the environment (used when the key wants a string, e.g. a password "123456"). */
  readonly raw: string;
  /** The container and key the value was written to, so it can be replaced by `raw`. */
  readonly parent: Record<string, Json>;
  readonly key: string;
}

/**
 * Apply MAILGATE__A__B=value overrides; returns which dotted paths came from which variable.
 * `MAILGATE__A__B_FILE=/path` reads the value from a file (a mounted secret), verbatim, as a string.
 */
function applyEnv(doc: Record<string, Json>, env: NodeJS.ProcessEnv): Map<string, EnvOrigin> {
  const origins = new Map<string, EnvOrigin>();
  const names = Object.keys(env)
    .filter((k) => k.startsWith(ENV_PREFIX))
    .sort();
  for (const name of names) {
    let raw = env[name] ?? '';
    let segments = name.slice(ENV_PREFIX.length).split('__').filter(Boolean);
    if (segments.length === 0) continue;
    let fromFile = false;
    const lastSeg = segments[segments.length - 1]!;
    if (lastSeg.endsWith('_FILE')) {
      segments = [...segments.slice(0, -1), lastSeg.slice(0, -'_FILE'.length)];
      try {
        raw = readFileSync(raw, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new ConfigErrors([new ConfigError(`cannot read: ${(e as Error).message}`, '', `env ${name}`)]);
      }
      fromFile = true;
    }
    let node: Record<string, Json> = doc;
    const path: string[] = [];
    segments.forEach((seg, i) => {
      const existing = Object.keys(node).find((k) => norm(k) === norm(seg));
      const key = existing ?? camel(seg);
      path.push(key);
      if (i === segments.length - 1) {
        let value: Json = raw;
        if (!fromFile) {
          const parsed = parseDocument(raw);
          // `null`/`~` mean null (e.g. dev.broker.dataDir: null); an unparsable value is taken verbatim.
          value = parsed.errors.length > 0 ? raw : raw.trim() === '' ? raw : (parsed.toJS() as Json);
        }
        node[key] = value;
        origins.set(path.join('.'), { variable: name, raw, parent: node, key });
      } else {
        const next = node[key];
        if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
        node = node[key] as Record<string, Json>;
      }
    });
  }
  return origins;
}

function deepMerge(base: Json, over: Json): Json {
  if (
    typeof base === 'object' &&
    base !== null &&
    !Array.isArray(base) &&
    typeof over === 'object' &&
    over !== null &&
    !Array.isArray(over)
  ) {
    const out: Record<string, Json> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k]!, v) : v;
    return out;
  }
  return over;
}

function pathToString(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function originFor(path: string, origins: Map<string, EnvOrigin>): EnvOrigin | undefined {
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const bare = p.replace(/\[\d+\]$/, '');
    const o = origins.get(bare) ?? origins.get(p);
    if (o) return o;
  }
  return undefined;
}

function sourceFor(path: string, origins: Map<string, EnvOrigin>, fileSource: string): string {
  const o = originFor(path, origins);
  return o ? `env ${o.variable}` : fileSource;
}

/** Load, merge and validate the configuration document. Throws ConfigErrors naming each key and its source. */
export function loadConfig<S extends Partial<Record<ServiceSection, ZodTypeAny>> = Record<never, never>>(
  opts: LoadConfigOptions<S> = {},
): LoadedConfig<S> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env['MAILGATE_CONFIG'];
  const fileSource = file ? `file ${file}` : 'defaults';
  let doc: Json = (opts.document as Json) ?? {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigErrors([new ConfigError(`cannot read: ${(e as Error).message}`, '', `file ${file}`)]);
    }
    const parsed = parseDocument(text, { prettyErrors: true });
    if (parsed.errors.length > 0) {
      throw new ConfigErrors(
        parsed.errors.map((e) => new ConfigError(`YAML: ${e.message.split('\n')[0]}`, '', `file ${file}`)),
      );
    }
    doc = deepMerge(doc, (parsed.toJS() as Json) ?? {});
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ConfigErrors([new ConfigError('the document must be a mapping', '', fileSource)]);
  }
  const origins = applyEnv(doc, env);

  const sections = (opts.sections ?? {}) as Record<string, ZodTypeAny>;
  const shape: Record<string, ZodTypeAny> = { ...COMMON_SECTIONS };
  for (const key of SERVICE_SECTIONS) shape[key] = sections[key] ?? z.unknown();
  const schema = z.object(shape).strict();
  let result = schema.safeParse(doc);
  if (!result.success) {
    // An environment value that YAML read as a number/boolean where the key wants a string (a password
    // "123456", a token "true") is taken verbatim instead.
    let retried = false;
    for (const issue of result.error.issues) {
      if (issue.code !== 'invalid_type' || issue.expected !== 'string') continue;
      const o = origins.get(pathToString(issue.path));
      if (o) {
        o.parent[o.key] = o.raw;
        retried = true;
      }
    }
    if (retried) result = schema.safeParse(doc);
  }
  if (!result.success) {
    const errors = result.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => {
          const key = pathToString([...issue.path, k]);
          return new ConfigError('unknown key', key, sourceFor(key, origins, fileSource));
        });
      }
      const key = pathToString(issue.path);
      return [new ConfigError(issue.message, key, sourceFor(key, origins, fileSource))];
    });
    throw new ConfigErrors(errors);
  }
  return Object.assign(result.data as object, { $source: file ? { file } : {} }) as LoadedConfig<S>;
}
