// Runs the real helm binary (obtained by get-helm.sh) and parses what it renders.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '..', '..', '..');
export const CHART = join(REPO, 'helm', 'mailgate');
export const CI_VALUES = readdirSync(join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort()
  .map((f) => join(CHART, 'ci', f));
/** The Kubernetes version the chart is rendered for (Capabilities.KubeVersion). */
export const KUBE_VERSION = '1.30.0';

let cached;
/** Path of helm: $HELM if set (run.sh sets it), else whatever get-helm.sh provides. Never skips: throws. */
export function helmPath() {
  if (cached) return cached;
  cached =
    process.env.HELM ||
    execFileSync('bash', [join(HERE, '..', 'get-helm.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
  return cached;
}

function args(valuesFiles, set) {
  const out = [];
  for (const f of valuesFiles) out.push('-f', f);
  for (const [k, v] of Object.entries(set)) out.push('--set-json', `${k}=${JSON.stringify(v)}`);
  return out;
}

/** helm template: { ok, docs, stdout, stderr }. Docs are plain objects, empty documents dropped. */
export function template(valuesFiles = [], set = {}) {
  const r = spawnSync(
    helmPath(),
    ['template', 'mg', CHART, '--namespace', 'mail', '--kube-version', KUBE_VERSION, ...args(valuesFiles, set)],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const ok = r.status === 0;
  const docs = ok
    ? parseAllDocuments(r.stdout)
        .map((d) => {
          if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0].message}`);
          return d.toJS();
        })
        .filter((d) => d && typeof d === 'object')
    : [];
  return { ok, docs, stdout: r.stdout, stderr: r.stderr };
}

/** helm lint --strict with the given values files: { ok, output }. */
export function lint(valuesFiles = [], set = {}) {
  const r = spawnSync(helmPath(), ['lint', '--strict', CHART, ...args(valuesFiles, set)], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}\n${r.stderr}` };
}

export const byKind = (docs, kind) => docs.filter((d) => d.kind === kind);
export const find = (docs, kind, name) => docs.find((d) => d.kind === kind && d.metadata?.name === name);
