#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl from the
# k8s.io/kubernetes module (no packaged cluster runs on these machines), into
# $KUBE_BIN (default: $HOME/.cache/ptb-kube/<version>/bin). The staging
# modules that k8s.io/kubernetes replaces with ./staging/... (absent from the
# module zip) are pinned to their published v0.X.Y instead. A second run with
# the binaries present does nothing: CI can cache $KUBE_BIN.
set -euo pipefail
version=${KUBE_VERSION:-v1.37.2}
staging=v0.${version#v1.}
bin=${KUBE_BIN:-$HOME/.cache/ptb-kube/$version/bin}
if [[ -x $bin/kube-apiserver && -x $bin/kube-controller-manager && -x $bin/kubectl ]]; then
	echo "kube-build: $bin already has $version"
	exit 0
fi
mod=$(mktemp -d)
trap 'rm -rf "$mod"' EXIT
proxy=$(go env GOPROXY | cut -d, -f1)
curl -fsS "$proxy/k8s.io/kubernetes/@v/$version.mod" -o "$mod/upstream.mod"
{
	echo "module ptb.local/kubebuild"
	echo
	echo "go $(sed -n 's/^go //p' "$mod/upstream.mod")"
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	echo "replace ("
	sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$mod/upstream.mod"
	echo ")"
} >"$mod/go.mod"
cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
cd "$mod"
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get k8s.io/kubernetes@"$version" >/dev/null
mkdir -p "$bin"
for cmd in kube-apiserver kube-controller-manager kubectl; do
	echo "kube-build: building $cmd $version"
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$bin/$cmd" k8s.io/kubernetes/cmd/$cmd
done
echo "kube-build: $bin"
