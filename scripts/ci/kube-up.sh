#!/usr/bin/env bash
# Brings up a Kubernetes control plane on localhost for the kube executor's
# tests: Debian's etcd, kube-apiserver and kube-controller-manager built from
# the k8s.io/kubernetes module (scripts/ci/kube-build.sh). There is no
# kubelet and no scheduler: the tests start a fake node
# (internal/campaign/kube/kubetest) that binds pods to itself and runs their
# commands as local processes. Idempotent: a plane already answering is
# left as it is. Prints the variables to export.
#
#   eval "$(scripts/ci/kube-up.sh)"     # PTB_KUBECONFIG, PTB_KUBECTL
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${KUBE_VERSION:-v1.37.2}
bin=${KUBE_BIN:-$HOME/.cache/ptb-kube/$version/bin}
dir=${PTB_KUBE_DIR:-/tmp/ptb-kube}
port=${PTB_KUBE_PORT:-16443}
etcd_port=${PTB_KUBE_ETCD_PORT:-12379}
log() { echo "kube-up: $*" >&2; }

KUBE_BIN=$bin "$here/kube-build.sh" >&2
if ! command -v etcd >/dev/null; then
	log "installing etcd-server"
	apt-get update -qq >&2
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq etcd-server openssl >&2
fi
mkdir -p "$dir"
kubeconfig=$dir/kubeconfig
exports() {
	echo "export PTB_KUBECONFIG=$kubeconfig"
	echo "export PTB_KUBECTL=$bin/kubectl"
}
if [[ -f $kubeconfig ]] && "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
	log "control plane already up at https://127.0.0.1:$port"
	exports
	exit 0
fi

start=$(date +%s)
if [[ ! -f $dir/token ]]; then
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token"
	echo "$(cat "$dir/token"),ptb-admin,ptb-admin,system:masters" >"$dir/tokens.csv"
	openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
	openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
fi
cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ptb
  cluster:
    server: https://127.0.0.1:$port
    insecure-skip-tls-verify: true
users:
- name: ptb-admin
  user:
    token: $(cat "$dir/token")
contexts:
- name: ptb
  context: {cluster: ptb, user: ptb-admin, namespace: default}
current-context: ptb
KC

running() { [[ -f $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }
if ! running etcd; then
	log "starting etcd on 127.0.0.1:$etcd_port"
	setsid etcd --name ptb --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
		--initial-cluster "ptb=http://127.0.0.1:$((etcd_port + 1))" >"$dir/etcd.log" 2>&1 </dev/null &
	echo $! >"$dir/etcd.pid"
fi
if ! running apiserver; then
	log "starting kube-apiserver on 127.0.0.1:$port"
	setsid "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --secure-port "$port" --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
		--cert-dir "$dir/pki" --token-auth-file "$dir/tokens.csv" --authorization-mode AlwaysAllow \
		--service-account-issuer https://kubernetes.default.svc --service-account-key-file "$dir/sa.pub" \
		--service-account-signing-key-file "$dir/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
		--disable-admission-plugins ServiceAccount,DefaultStorageClass,StorageObjectInUseProtection \
		>"$dir/apiserver.log" 2>&1 </dev/null &
	echo $! >"$dir/apiserver.pid"
fi
for i in $(seq 1 240); do
	if "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
		break
	fi
	if ! running apiserver; then
		log "kube-apiserver exited; its log:"
		tail -30 "$dir/apiserver.log" >&2
		exit 1
	fi
	sleep 0.5
done
"$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null
if ! running controller-manager; then
	log "starting kube-controller-manager (job and garbage-collector controllers)"
	setsid "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" --leader-elect=false \
		--controllers job,garbagecollector,ttl-after-finished --bind-address 127.0.0.1 --secure-port 0 \
		>"$dir/controller-manager.log" 2>&1 </dev/null &
	echo $! >"$dir/controller-manager.pid"
fi
log "up in $(($(date +%s) - start)) s (logs in $dir)"
exports
