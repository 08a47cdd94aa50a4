#!/usr/bin/env bash
# End-to-end benchmark of the contamination scan: `ptb audit WORKSPACE --task
# gsm8k` on warm files, against a warm `cat` of the same bytes (the hardware
# anchor), for three workspace shapes:
#   empty  no files: the fixed cost (process start, test set, index, the
#          other checks)
#   ws1    ONE file of SIZE_MB MiB of GSM8K train JSONL (split across cores)
#   ws16   the same bytes as 16 files of SIZE_MB/16 MiB
# Each round runs, per workspace, a warm-up cat, a timed cat, then each
# binary in turn (PTB_OLD first when set: old and new alternate, so both see
# the same load). Per run it prints wall and CPU seconds (user+sys), MB/s,
# MB per CPU-second and x-cat (audit wall over cat wall), with the load
# average; then medians per workspace and binary, new over old CPU, and
# whether both binaries printed the same report (they must).
#
# Usage: scripts/bench/scan.sh
#   env: PTB      binary to measure (default: built from this tree)
#        PTB_OLD  a reference binary to alternate with (e.g. main's); optional
#        SIZE_MB  workspace size in MiB (1024: 1,074 MB)
#        ROUNDS   rounds (3)
#        WS_DIR   where the workspaces are made, or reused when present
#                 (default: a temporary directory, removed at the end)
#        PTB_SHARED  shared/ (../shared): datasets/gsm8k
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${PTB_SHARED:-$root/../shared}
size_mb=${SIZE_MB:-1024}
rounds=${ROUNDS:-3}
data=$shared/datasets
train=$data/gsm8k/train.jsonl
[ -f "$train" ] || { echo "scan.sh: no $train (set PTB_SHARED)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "scan.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ptb-scan-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
ws=${WS_DIR:-$work/ws}

ptb=${PTB:-}
if [ -z "$ptb" ]; then
	ptb=$work/ptb
	(cd "$root" && go build -o "$ptb" ./cmd/ptb)
fi
bins=(new)
declare -A binpath=([new]=$ptb)
if [ -n "${PTB_OLD:-}" ]; then
	bins=(old new)
	binpath[old]=$PTB_OLD
fi

# Workspaces: made once, reused when WS_DIR already holds them at this size.
[ $((size_mb % 16)) = 0 ] || { echo "scan.sh: SIZE_MB must be a multiple of 16" >&2; exit 2; }
bytes=$((size_mb << 20))
mkdir -p "$ws/empty" "$ws/ws1" "$ws/ws16"
if [ "$(stat -c %s "$ws/ws1/one.jsonl" 2>/dev/null || echo 0)" != "$bytes" ]; then
	echo "making $ws (ws1: one file of $size_mb MiB; ws16: 16 files)" >&2
	rm -f "$ws"/ws1/* "$ws"/ws16/*
	{ while cat "$train"; do :; done 2>/dev/null || true; } | head -c "$bytes" >"$ws/ws1/one.jsonl"
	for i in $(seq -w 0 15); do
		dd if="$ws/ws1/one.jsonl" of="$ws/ws16/c$i.jsonl" bs=1M skip=$((10#$i * size_mb / 16)) \
			count=$((size_mb / 16)) status=none
	done
fi

load() { cut -d' ' -f1 /proc/loadavg; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
res=$work/results # lines: ws bin wall cpu
: >"$res"
printf '%-5s %-5s %5s | %-4s %7s %7s %8s %9s %7s %6s\n' round ws load bin wall cpu MB/s MB/cpu-s x-cat same
for ((r = 1; r <= rounds; r++)); do
	for w in empty ws1 ws16; do
		dir=$ws/$w
		nb=$(du -sb "$dir" | cut -f1)
		files=("$dir"/*)
		[ -e "${files[0]}" ] || files=(/dev/null)
		cat "${files[@]}" >/dev/null
		/usr/bin/time -f '%e' -o "$work/t" cat "${files[@]}" >/dev/null
		catw=$(cat "$work/t")
		for b in "${bins[@]}"; do
			l=$(load)
			# exit 1 is the verdict "unverified" (no final_model, no trace here)
			/usr/bin/time -f '%e %U %S' -o "$work/t" "${binpath[$b]}" audit "$dir" --task gsm8k \
				--base-model qwen3-1.7b --data-dir "$data" >"$work/$w.$b.out" 2>"$work/err" || [ $? = 1 ] ||
				{ echo "audit failed ($b $w):" >&2; cat "$work/err" >&2; exit 1; }
			read -r wall u s < <(tail -n1 "$work/t") # GNU time writes "Command exited with non-zero status 1" first
			cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')
			same=-
			[ "$b" = new ] && [ -n "${PTB_OLD:-}" ] && { cmp -s "$work/$w.old.out" "$work/$w.new.out" && same=yes || same=NO; }
			echo "$w $b $wall $cpu $nb $catw" >>"$res"
			awk -v r="$r" -v w="$w" -v l="$l" -v b="$b" -v wall="$wall" -v cpu="$cpu" -v nb="$nb" -v c="$catw" -v same="$same" 'BEGIN {
				printf "%-5s %-5s %5s | %-4s %7.2f %7.2f %8.0f %9.0f %7.1f %6s\n", r, w, l, b, wall, cpu,
					nb/1e6/wall, nb/1e6/cpu, (c > 0 ? wall/c : 0), same }'
		done
	done
done
echo
echo "medians over $rounds rounds (MB/s and MB/cpu-s from the median wall and CPU; x-cat: median audit wall over median cat wall)"
printf '%-5s %-4s %7s %7s %8s %9s %7s\n' ws bin wall cpu MB/s MB/cpu-s x-cat
for w in empty ws1 ws16; do
	for b in "${bins[@]}"; do
		wall=$(awk -v w="$w" -v b="$b" '$1==w && $2==b {print $3}' "$res" | median)
		cpu=$(awk -v w="$w" -v b="$b" '$1==w && $2==b {print $4}' "$res" | median)
		catw=$(awk -v w="$w" -v b="$b" '$1==w && $2==b {print $6}' "$res" | median)
		nb=$(awk -v w="$w" '$1==w {print $5; exit}' "$res")
		awk -v w="$w" -v b="$b" -v wall="$wall" -v cpu="$cpu" -v nb="$nb" -v c="$catw" 'BEGIN {
			printf "%-5s %-4s %7.2f %7.2f %8.0f %9.0f %7.1f\n", w, b, wall, cpu, nb/1e6/wall, nb/1e6/cpu, (c > 0 ? wall/c : 0) }'
	done
	if [ -n "${PTB_OLD:-}" ]; then
		awk -v w="$w" '$1==w && $2=="old" {o+=$4} $1==w && $2=="new" {n+=$4} END {
			if (n > 0) printf "%-5s new/old CPU %.2f (old/new %.2fx)\n", w, n/o, o/n }' "$res"
	fi
done
