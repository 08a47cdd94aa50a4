#!/usr/bin/env bash
# Capture the nvidia-smi output ptb's monitor and preflight parse, for the
# stand-in nvidia-smi of internal/monitor/testdata/nvidia-smi. Run on a GPU
# machine, ideally while something trains, and commit the files it writes:
#   scripts/capture_nvidia_smi.sh [DIR]   (default: internal/monitor/testdata/nvidia-smi)
# The queries must match monitor.GPUQuery and monitor.AppsQuery
# (internal/monitor/monitor_test.go checks that they do).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-internal/monitor/testdata/nvidia-smi}
mkdir -p "$dir"
nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw --format=csv,noheader,nounits > "$dir/query-gpu.csv"
nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader,nounits > "$dir/query-compute-apps.csv"
nvidia-smi -L > "$dir/L.txt"
for f in query-gpu.csv query-compute-apps.csv L.txt; do
    echo "== $dir/$f"
    cat "$dir/$f"
done
