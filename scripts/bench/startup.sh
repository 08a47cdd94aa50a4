#!/usr/bin/env bash
# A/B benchmark of the ptb binary's start-up (package inits, runtime start,
# page faults): CPU seconds (user+sys) of `ptb version`, and optionally of
# `ptb trace render` on a ~SIZE_MB trace, for two binaries run alternately.
#
#   A: the binary built from BASE (a git ref of this repository; default main),
#      or $PTB_A when set
#   B: the binary built from the working tree, or $PTB_B when set
#
# Each round runs A then B (N `ptb version` each, timed as one loop by GNU
# time); the rounds alternate so that a neighbour's load falls on both. It
# prints per round the CPU milliseconds per `ptb version` and the load
# average, then the medians and the ratio A/B. With TRACE=<cli> it also
# times `ptb trace render --agent <cli>` on a ~SIZE_MB trace made by
# repeating $PTB_SHARED/fixtures/traces/<cli>.jsonl, output to a file as
# scripts/bench/trace_render.sh does, and `cmp`s the two transcripts.
#
# Usage: scripts/bench/startup.sh
#   env: BASE (main), PTB_A, PTB_B, ROUNDS (5), N (20), TRACE (unset: none),
#        SIZE_MB (100), PTB_SHARED (../shared), KEEP=1
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/bench/lib.sh"
shared=${PTB_SHARED:-$root/../shared}
base=${BASE:-main}
rounds=${ROUNDS:-5}
n=${N:-20}
size_mb=${SIZE_MB:-100}

[ -x /usr/bin/time ] || { echo "startup.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ptb-startup-bench.XXXXXX")
cleanup() {
	if [ -d "$work/base" ]; then git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; fi
	[ "${KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

a=${PTB_A:-}
if [ -z "$a" ]; then
	git -C "$root" worktree add --detach -q "$work/base" "$base"
	(cd "$work/base" && go build -o "$work/ptb-a" ./cmd/ptb)
	a=$work/ptb-a
fi
b=${PTB_B:-}
if [ -z "$b" ]; then
	(cd "$root" && go build -o "$work/ptb-b" ./cmd/ptb)
	b=$work/ptb-b
fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
load() { cut -d' ' -f1 /proc/loadavg; }

# cpu BIN ARGS...: CPU seconds (user+sys) of N runs of BIN ARGS, output to $work/out
cpu() {
	local u s
	/usr/bin/time -f '%U %S' -o "$work/time" bash -c 'for ((i = 0; i < $0; i++)); do "$@" >"'"$work"'/out"; done' "$n" "$@"
	read -r u s <"$work/time"
	awk -v u="$u" -v s="$s" 'BEGIN{print u+s}'
}

trace=${TRACE:-}
big=
if [ -n "$trace" ]; then
	src=$shared/fixtures/traces/$trace.jsonl
	[ -f "$src" ] || { echo "missing fixture $src" >&2; exit 2; }
	big=$work/$trace.jsonl
	repeat_to_size "$src" "$big" "$size_mb"
fi

printf '%-6s %10s %10s %7s' round A_ms B_ms load
[ -z "$trace" ] || printf ' %10s %10s %7s' A_render_s B_render_s load
printf '\n'
av=() bv=() ar=() br=()
for ((r = 1; r <= rounds; r++)); do
	l1=$(load)
	x=$(cpu "$a" version); y=$(cpu "$b" version)
	av+=("$(awk -v x="$x" -v n="$n" 'BEGIN{printf "%.1f", 1000*x/n}')")
	bv+=("$(awk -v x="$y" -v n="$n" 'BEGIN{printf "%.1f", 1000*x/n}')")
	printf '%-6s %10s %10s %7s' "$r" "${av[-1]}" "${bv[-1]}" "$l1"
	if [ -n "$trace" ]; then
		l2=$(load)
		/usr/bin/time -f '%U %S' -o "$work/time" "$a" trace render --agent "$trace" "$big" >"$work/a.txt"
		read -r u s <"$work/time"; ar+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')")
		/usr/bin/time -f '%U %S' -o "$work/time" "$b" trace render --agent "$trace" "$big" >"$work/b.txt"
		read -r u s <"$work/time"; br+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')")
		cmp -s "$work/a.txt" "$work/b.txt" || { echo "transcripts differ (round $r): $work/a.txt $work/b.txt" >&2; KEEP=1; exit 1; }
		printf ' %10s %10s %7s' "${ar[-1]}" "${br[-1]}" "$l2"
	fi
	printf '\n'
done
ma=$(printf '%s\n' "${av[@]}" | median); mb=$(printf '%s\n' "${bv[@]}" | median)
printf 'median ptb version CPU ms: A %s  B %s  A/B %s\n' "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN{printf "%.2f", a/b}')"
if [ -n "$trace" ]; then
	ma=$(printf '%s\n' "${ar[@]}" | median); mb=$(printf '%s\n' "${br[@]}" | median)
	printf 'median trace render (%s, %s MB) CPU s: A %s  B %s  A/B %s  (transcripts identical)\n' "$trace" "$size_mb" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN{printf "%.2f", a/b}')"
fi
