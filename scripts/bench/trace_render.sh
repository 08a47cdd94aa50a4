#!/usr/bin/env bash
# Side-by-side benchmark of `ptb trace render` against the original
# PostTrainBench's per-CLI trace parsers (agents/<cli>/human_readable_trace.py).
#
# For each CLI it builds a ~SIZE_MB trace by repeating the real captured trace
# in $PTB_SHARED/fixtures/traces/<cli>.jsonl, then times (median of RUNS runs)
# and measures peak resident memory (GNU time's %M) of:
#   - the original's parser, read at run time from the upstream mirror
#     ($PTB_UPSTREAM, a bare git dir; skipped when absent; never committed here)
#   - `ptb trace render --agent <cli>` (the ptb binary in $PTB, built when unset)
# and prints the speed ratio. Both write their transcript to a file.
# Times are CPU seconds (user+sys, GNU time's %U+%S): on a shared, loaded
# machine wall time says more about the neighbours than about the code. The
# wall-clock ratio is printed too.
#
# With BASE set to another ptb binary (say main's: `go build -o /tmp/ptb-main
# ./cmd/ptb` in a checkout of main), it also runs BASE and PTB alternately,
# RUNS times each, on the same trace, checks that their transcripts are
# byte-identical (cmp) and prints both medians and new/base ratios, with the
# load average: an A/B pair that a loaded machine skews less than two runs
# of the script.
#
# Usage: scripts/bench/trace_render.sh [cli...]
#   env: SIZE_MB (100), RUNS (3), PTB_SHARED (../shared), PTB_UPSTREAM, PTB, BASE, KEEP=1
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/bench/lib.sh"
shared=${PTB_SHARED:-$root/../shared}
upstream=${PTB_UPSTREAM:-/work/.mirror/aisa-group+PostTrainBench/repo}
size_mb=${SIZE_MB:-100}
runs=${RUNS:-3}
clis=("$@")
[ ${#clis[@]} -gt 0 ] || clis=(claude codex gemini opencode)

[ -x /usr/bin/time ] || { echo "trace_render.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ptb-trace-bench.XXXXXX")
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT

ptb=${PTB:-}
if [ -z "$ptb" ]; then
	ptb=$work/ptb
	(cd "$root" && go build -o "$ptb" ./cmd/ptb)
fi

have_upstream=0
if git --git-dir="$upstream" rev-parse --verify -q HEAD >/dev/null 2>&1; then
	have_upstream=1
else
	echo "note: no upstream mirror at $upstream: timing ptb only (set PTB_UPSTREAM)" >&2
fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# RUNS runs of a command; prints "cpu_seconds wall_seconds peak_kib"
# (medians of the times, the largest peak)
measure() {
	local out=$1; shift
	local i cs=() ws=() ms=() u s w m
	for ((i = 0; i < runs; i++)); do
		/usr/bin/time -f '%U %S %e %M' -o "$work/time" "$@" >"$out" 2>"$work/stderr" || {
			echo "command failed: $*" >&2; cat "$work/stderr" >&2; return 1; }
		read -r u s w m <"$work/time"
		cs+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')"); ws+=("$w"); ms+=("$m")
	done
	echo "$(printf '%s\n' "${cs[@]}" | median) $(printf '%s\n' "${ws[@]}" | median) $(printf '%s\n' "${ms[@]}" | sort -g | tail -1)"
}

ratio() { awk -v o="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%.1fx", o / p; else print "inf" }'; }

printf '%-9s %6s | %8s %8s %8s | %8s %8s %8s | %7s %7s\n' cli MB orig_cpu orig_wall orig_MiB ptb_cpu ptb_wall ptb_MiB cpu_x wall_x
for cli in "${clis[@]}"; do
	src=$shared/fixtures/traces/$cli.jsonl
	[ -f "$src" ] || { echo "missing fixture $src" >&2; exit 2; }
	big=$work/$cli.jsonl
	repeat_to_size "$src" "$big" "$size_mb"
	bytes=$(stat -c %s "$big")
	read -r pc pw pm < <(measure "$work/$cli.ptb.txt" "$ptb" trace render --agent "$cli" "$big")
	oc=- ow=- om=- rc=- rw=-
	if [ $have_upstream = 1 ]; then
		parser=$work/$cli.parser.py
		git --git-dir="$upstream" show "HEAD:agents/$cli/human_readable_trace.py" >"$parser"
		read -r oc ow om < <(measure /dev/null python3 "$parser" "$big" -o "$work/$cli.orig.txt")
		rc=$(ratio "$oc" "$pc"); rw=$(ratio "$ow" "$pw")
		om=$((om / 1024))
	fi
	printf '%-9s %6.1f | %8s %8s %8s | %8s %8s %8s | %7s %7s\n' "$cli" "$(awk -v b="$bytes" 'BEGIN{print b/1048576}')" \
		"$oc" "$ow" "$om" "$pc" "$pw" "$((pm / 1024))" "$rc" "$rw"
	if [ -n "${BASE:-}" ]; then
		"$BASE" trace render --agent "$cli" "$big" >"$work/$cli.base.txt"
		same=identical
		cmp -s "$work/$cli.base.txt" "$work/$cli.ptb.txt" || same=DIFFERENT
		bc=() bw=() nc=() nw=()
		for ((i = 0; i < runs; i++)); do
			for which in base new; do
				bin=$ptb
				[ $which = base ] && bin=$BASE
				/usr/bin/time -f '%U %S %e' -o "$work/time" "$bin" trace render --agent "$cli" "$big" >/dev/null
				read -r u s w <"$work/time"
				c=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')
				if [ $which = base ]; then bc+=("$c"); bw+=("$w"); else nc+=("$c"); nw+=("$w"); fi
			done
		done
		mbc=$(printf '%s\n' "${bc[@]}" | median) mbw=$(printf '%s\n' "${bw[@]}" | median)
		mnc=$(printf '%s\n' "${nc[@]}" | median) mnw=$(printf '%s\n' "${nw[@]}" | median)
		printf '  %-7s A/B, %d alternating runs, load %s: base cpu %s wall %s | ptb cpu %s wall %s | new/base cpu %s wall %s | transcripts %s\n' \
			"$cli" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)" "$mbc" "$mbw" "$mnc" "$mnw" \
			"$(awk -v a="$mnc" -v b="$mbc" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$mnw" -v b="$mbw" 'BEGIN{printf "%.2f", a/b}')" "$same"
	fi
	rm -f "$big" "$work/$cli".*.txt
done
