#!/usr/bin/env bash
# Check ptb's bwrap sandbox on a GPU machine: with GPU 0 bound, torch in
# the sandbox sees exactly one CUDA device, only one GPU node is visible
# under /dev, and the UUID ptb records is nvidia-smi's for GPU 0.
#
# Run as root (as a harness would), from the repository root:
#   scripts/gpu_sandbox_check.sh [PTB_BINARY] [BWRAP_BINARY]
# PTB_BINARY defaults to a fresh `go build` (or `ptb` on PATH without Go);
# BWRAP_BINARY to bwrap on PATH (a carried static bwrap works too).
# Python: python3 on PATH, with torch; its installation is bound read-only.
set -euo pipefail
cd "$(dirname "$0")/.."

ptb="${1:-}"
if [ -z "$ptb" ]; then
    if command -v go >/dev/null; then
        ptb="$(mktemp -d)/ptb"
        go build -o "$ptb" ./cmd/ptb
    else
        ptb="$(command -v ptb)"
    fi
fi
if [ -n "${2:-}" ]; then
    bdir="$(mktemp -d)"
    cp "$2" "$bdir/bwrap"
    chmod 755 "$bdir/bwrap"
    export PATH="$bdir:$PATH"
fi
command -v bwrap >/dev/null || { echo "gpu_sandbox_check: bwrap not found (pass it as the second argument)"; exit 2; }
py="$(command -v python3)"

echo "== host"
nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader || echo "(nvidia-smi failed)"
ls -l /dev/nvidia* || true
"$py" -c 'import torch; print("host torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())'

# Python's installation (interpreter, prefixes, torch) may live anywhere:
# bind what this python3 needs, read-only, as a job would with --ro.
ro=()
while IFS= read -r p; do
    [ -n "$p" ] && [ -e "$p" ] && ro+=(--ro "$p")
done < <("$py" - <<'PY'
import os, sys, site
import torch
paths = {os.path.dirname(os.path.realpath(sys.executable)), sys.prefix, sys.base_prefix,
         os.path.dirname(os.path.dirname(torch.__file__))}
paths.update(site.getsitepackages())
for p in sorted(paths):
    print(p)
PY
)

echo "== sandbox, GPU 0 bound"
out="$("$ptb" sandbox-exec --gpus 0 "${ro[@]}" -- /bin/sh -c '
    echo "nodes: $(cd /dev && ls -d nvidia* | tr "\n" " ")"
    '"$py"' -c "import torch; print(\"sandbox torch\", torch.cuda.is_available(), torch.cuda.device_count()); print(\"device\", torch.cuda.get_device_name(0)); x = torch.ones(1024, device=\"cuda\"); print(\"sum\", int(x.sum().item()))"
' 2>&1)" || { echo "$out"; echo "gpu_sandbox_check: FAIL: the sandboxed command failed"; exit 1; }
echo "$out"

fail=0
nodes="$(echo "$out" | sed -n 's/^nodes: //p')"
gpu_nodes="$(echo "$nodes" | tr ' ' '\n' | grep -E '^nvidia[0-9]+$' || true)"
if [ "$gpu_nodes" != "nvidia0" ]; then
    echo "gpu_sandbox_check: FAIL: GPU nodes visible in the sandbox: '$gpu_nodes', want only nvidia0"; fail=1
fi
if ! echo "$out" | grep -q '^sandbox torch True 1$'; then
    echo "gpu_sandbox_check: FAIL: torch in the sandbox does not see exactly one CUDA device"; fail=1
fi
if ! echo "$out" | grep -q '^sum 1024$'; then
    echo "gpu_sandbox_check: FAIL: a CUDA computation in the sandbox did not give the right answer"; fail=1
fi

echo "== preflight: a GPU that does not exist"
if "$ptb" sandbox-exec --gpus 99 -- true 2>&1; then
    echo "gpu_sandbox_check: FAIL: a job asking for GPU 99 started"; fail=1
fi

[ "$fail" = 0 ] && echo "gpu_sandbox_check: OK"
exit "$fail"
