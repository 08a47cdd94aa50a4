#!/usr/bin/env bash
# Side-by-side benchmark of `ptb report` (and `ptb import posttrainbench`)
# against the original PostTrainBench's aggregation scripts
# (scripts/aggregate_*.py), on RUNS_N runs laid out as the original leaves
# them (<method>/<task>_<provider>_<model>_<id>/ with metrics.json,
# time_taken.txt and the two judge files).
#
#   - the original: its aggregate_*.py, read at run time from the upstream
#     mirror ($PTB_UPSTREAM, a bare git dir; skipped when absent; never
#     committed here), run one after another as scripts/aggregate.sh does,
#     then the ones it leaves commented out (all but aggregate_summary and
#     aggregate_together on every method);
#   - ptb: `ptb import posttrainbench` once (timed on its own), then
#     `ptb report --format all --out DIR` with 2,000 bootstrap replicates:
#     every format and figure, which the original does not produce.
#
# Times are medians of REPS runs, CPU seconds (user+sys, GNU time) and wall
# seconds; on a shared, loaded machine wall time says more about the
# neighbours than about the code, so both ratios are printed.
#
# With PTB_OLD set to another ptb binary (for instance one built at an
# older commit), `ptb report` of the same runs is timed with both binaries
# alternately, the old/new ratio printed, and their outputs compared byte
# for byte (diff -r of --format all under --policy paper and strict, with
# two --compare) before anything else is timed.
#
# Usage: scripts/bench/report.sh
#   env: RUNS_N (10000), REPS (3), PTB_UPSTREAM, PTB (binary; built when unset), PTB_OLD, PYTHON, KEEP=1
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
upstream=${PTB_UPSTREAM:-/work/.mirror/aisa-group+PostTrainBench/repo}
n=${RUNS_N:-10000}
reps=${REPS:-3}

[ -x /usr/bin/time ] || { echo "report.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ptb-report-bench.XXXXXX")
if [ "${KEEP:-}" = 1 ]; then
	echo "keeping $work (imported runs in $work/imported)" >&2
else
	trap 'rm -rf "$work"' EXIT
fi

ptb=${PTB:-}
if [ -z "$ptb" ]; then
	ptb=$work/ptb
	(cd "$root" && go build -o "$ptb" ./cmd/ptb)
fi

# The interpreter itself, not a wrapper (a pyenv shim costs a shell and a
# lookup per script): PYTHON, else what python3 runs.
python=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}

have_upstream=0
if git --git-dir="$upstream" rev-parse --verify -q HEAD >/dev/null 2>&1; then
	have_upstream=1
	mkdir -p "$work/upstream"
	git --git-dir="$upstream" archive HEAD scripts src/eval/tasks | tar -x -C "$work/upstream"
else
	echo "note: no upstream mirror at $upstream: timing ptb only (set PTB_UPSTREAM)" >&2
fi

# The results directory: method directories of one full matrix each (7
# benchmarks x 4 base models), named as in the original's constants.py
# where it has names (all of them, even past RUNS_N), then more; a few runs without metrics, flagged by a
# judge, or without judge files; and the zero-shot baseline runs.
results=$work/results
python3 - "$results" "$n" "$work/upstream/scripts" <<'PY'
import os, random, re, sys
out, n, scripts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
benches = ["aime2025", "arenahardwriting", "bfcl", "gpqamain", "gsm8k", "healthbench", "humaneval"]
models = ["Qwen_Qwen3-1.7B-Base", "Qwen_Qwen3-4B-Base", "HuggingFaceTB_SmolLM3-3B-Base", "google_gemma-3-4b-pt"]
names = []
try:
    text = open(os.path.join(scripts, "constants.py")).read()
    block = text[text.index("HARDCODED_AGENT_MAP"):]
    block = block[:block.index("}")]
    names = list(dict.fromkeys(re.findall(r'"([^"\n]+_\d+(?:\.\d+)?h[^"\n]*)"', block)))
except (OSError, ValueError):
    pass
rng = random.Random(7)
def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
runs, m = 0, 0
while runs < n or m < len(names):
    method = names[m] if m < len(names) else "claude_agent-%d_10h_run%d" % (m // 3, m % 3 + 1)
    m += 1
    for b in benches:
        for mo in models:
            if runs >= n and m > len(names):
                break
            d = os.path.join(out, method, "%s_%s_%d" % (b, mo, 1000 + runs))
            os.makedirs(d)
            s = rng.randrange(3600, 36000)
            write(d, "time_taken.txt", "%d:%02d:%02d\n" % (s // 3600, s % 3600 // 60, s % 60))
            if rng.random() > 0.05:
                write(d, "metrics.json", '{\n  "accuracy": %r,\n  "stderr": 0.01\n}' % rng.random())
            if rng.random() > 0.03:
                write(d, "contamination_judgement.txt", "contamination detected\n" if rng.random() < 0.05 else "no contamination detected\n")
                write(d, "disallowed_model_judgement.txt", "disallowed use detected\n" if rng.random() < 0.03 else "only allowed use detected\n")
            runs += 1
for b in benches:
    for mo in models:
        d = os.path.join(out, "baseline_zeroshot", "%s_%s_1" % (b, mo))
        os.makedirs(d)
        write(d, "metrics.json", '{"accuracy": %r}' % rng.random())
        write(d, "time_taken.txt", "0:10:00\n")
PY

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v o="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%.1fx", o / p; else print "inf" }'; }

# one timed command: prints "cpu_seconds wall_seconds"
timed() {
	/usr/bin/time -f '%U %S %e' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr" || {
		echo "command failed: $*" >&2; tail -20 "$work/stderr" >&2; return 1; }
	awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$work/time"
}

# REPS runs of a shell function; prints the medians "cpu wall"
measure() {
	local i cs=() ws=() c w
	for ((i = 0; i < reps; i++)); do
		read -r c w < <("$@")
		cs+=("$c"); ws+=("$w")
	done
	echo "$(printf '%s\n' "${cs[@]}" | median) $(printf '%s\n' "${ws[@]}" | median)"
}

original() {
	# Each script reads the results directory and writes its CSVs there;
	# start every repetition from the runs alone. They run from the
	# original's root, as scripts/aggregate.sh does (some read src/eval/tasks).
	find "$results" -maxdepth 1 -name '*.csv' -delete
	local c=0 w=0 s cw
	local scripts=(aggregate_methods aggregate_time_baselines aggregate_contamination aggregate_time
		aggregate_final aggregate_avg_stddev aggregate_avg_stddev_over_benchmarks aggregate_time_avg_stddev)
	for s in "${scripts[@]}"; do
		cw=$(cd "$work/upstream" && POST_TRAIN_BENCH_RESULTS_DIR=$results timed "$python" "scripts/$s.py")
		echo "  $s.py: $cw" >&2
		c=$(awk -v a="$c" -v b="${cw% *}" 'BEGIN{printf "%.3f", a + b}'); w=$(awk -v a="$w" -v b="${cw#* }" 'BEGIN{printf "%.3f", a + b}')
	done
	local methods
	methods=$(cd "$results" && ls -d */ | tr -d / | grep -v '^baseline')
	for s in aggregate_summary aggregate_together; do
		# shellcheck disable=SC2086
		cw=$(cd "$work/upstream" && POST_TRAIN_BENCH_RESULTS_DIR=$results timed "$python" "scripts/$s.py" $methods)
		echo "  $s.py: $cw" >&2
		c=$(awk -v a="$c" -v b="${cw% *}" 'BEGIN{printf "%.3f", a + b}'); w=$(awk -v a="$w" -v b="${cw#* }" 'BEGIN{printf "%.3f", a + b}')
	done
	echo "$c $w"
}

imported=$work/imported
import_once() { rm -rf "$imported"; timed "$ptb" import posttrainbench "$results" --out "$imported"; }
# report_once [BINARY [OUT]]
report_once() {
	local bin=${1:-$ptb} out=${2:-$work/report}
	rm -rf "$out"
	timed "$bin" report "$imported" --format all --out "$out" --bootstrap 2000
}
load() { cut -d' ' -f1 /proc/loadavg; }

n=$(find "$results" -mindepth 2 -maxdepth 2 -type d -not -path '*/baseline*' | wc -l)
read -r ic iw < <(measure import_once)
echo "load average $(load) after the import" >&2

if [ -n "${PTB_OLD:-}" ]; then
	# Same bytes first: both policies, two comparisons of the first
	# methods the import lists.
	mapfile -t labels < <(cut -f2 "$work/stdout" | sed -e 's/ seed [0-9]*$//' -e 's/^"//' -e 's/"$//' | sort -u | head -2)
	for policy in paper strict; do
		for b in old new; do
			bin=$ptb; [ "$b" = old ] && bin=$PTB_OLD
			rm -rf "$work/same-$b"
			"$bin" report "$imported" --format all --out "$work/same-$b" --policy "$policy" \
				--compare "${labels[0]} vs ${labels[1]}" --compare "${labels[1]} vs ${labels[0]}" >/dev/null 2>&1
		done
		if diff -r "$work/same-old" "$work/same-new" >/dev/null; then
			echo "outputs identical under --policy $policy ($(find "$work/same-new" -type f | wc -l) files)"
		else
			echo "outputs DIFFER under --policy $policy: diff -r $work/same-old $work/same-new (KEEP=1 keeps them)"
			exit 1
		fi
	done
	oc=() ow=() nc=() nw=()
	for ((i = 0; i < reps; i++)); do
		read -r c w < <(report_once "$PTB_OLD" "$work/report-old")
		oc+=("$c"); ow+=("$w")
		echo "  old: $c cpu_s $w wall_s, load $(load)" >&2
		read -r c w < <(report_once)
		nc+=("$c"); nw+=("$w")
		echo "  new: $c cpu_s $w wall_s, load $(load)" >&2
	done
	pc=$(printf '%s\n' "${nc[@]}" | median) pw=$(printf '%s\n' "${nw[@]}" | median)
	qc=$(printf '%s\n' "${oc[@]}" | median) qw=$(printf '%s\n' "${ow[@]}" | median)
else
	read -r pc pw < <(measure report_once)
fi
printf '%-28s %8s %8s\n' "" cpu_s wall_s
printf '%-28s %8s %8s\n' "ptb import ($n runs)" "$ic" "$iw"
if [ -n "${PTB_OLD:-}" ]; then
	printf '%-28s %8s %8s\n' "ptb report (PTB_OLD)" "$qc" "$qw"
fi
printf '%-28s %8s %8s\n' "ptb report, all formats" "$pc" "$pw"
if [ -n "${PTB_OLD:-}" ]; then
	echo "report: old/new $(ratio "$qc" "$pc") CPU, $(ratio "$qw" "$pw") wall (medians of $reps alternating runs, load $(load))"
fi
echo "report: $pw s wall (goal: under 0.5 s on a quiet 2-core machine), load average $(load)"
if [ "$have_upstream" = 1 ]; then
	read -r oc ow < <(measure original)
	printf '%-28s %8s %8s\n' "original aggregate_*.py" "$oc" "$ow"
	echo "report: $(ratio "$oc" "$pc") less CPU, $(ratio "$ow" "$pw") less wall time than the original's scripts"
fi
