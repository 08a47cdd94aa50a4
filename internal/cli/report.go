package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/report"
)

func newReportCmd(e *env) *cobra.Command {
	var (
		baselines       string
		format          string
		out             string
		compare         []string
		bootstrap       int
		seed            uint64
		countUnverified bool
		policy          string
	)
	cmd := &cobra.Command{
		Use:   "report RUNS...",
		Short: "Rank methods from run directories: the paper's leaderboard as Markdown, CSV, JSON or HTML",
		Long: `report walks RUNS (run directories, or directories holding them, at any
depth) for result.json and aggregates them as PostTrainBench does: a cell
(method, seed, benchmark, base model) takes its run's score, or the base
model's zero-shot score when the run is missing, failed, has no metrics or was
flagged (or unverified, unless --count-unverified) under --policy: paper, the
original's rule, lets only the LLM judge's two judgements decide; strict also
falls back on ptb's own flags and unverified verdicts; each
benchmark is the mean over the base models; a method's score is the mean over
seeds of the weighted sum over benchmarks, its std the sample std over seeds.
Runs with the same label (spec.label, else "<agent model> (<scaffold>)") are
seeds of one method, told apart by spec.seed. See docs/REPORT.md.

Without --out the report in --format goes to stdout. With --out DIR it writes
DIR/report.<format> for each format given (comma-separated, or "all") and the
SVG figures under DIR/figures.`,
		Example: `  ptb report runs/ --format md
  ptb report runs/ imported/ --format all --out report/
  ptb report runs/ --compare "claude-opus-4-6 (Claude Code) vs gpt-5.3-codex (Codex CLI)"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("report needs at least one run directory (or a directory of them) as argument")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			formats, err := parseFormats(format)
			if err != nil {
				return err
			}
			if out == "" && len(formats) > 1 {
				return usagef("--format %s gives several files: add --out DIR", format)
			}
			if bootstrap < 0 {
				return usagef("--bootstrap %d: want 0 (no intervals) or more replicates", bootstrap)
			}
			opt := report.Options{Bootstrap: bootstrap, Seed: seed, CountUnverified: countUnverified, Policy: policy}
			if baselines != "" {
				b, err := report.LoadBaselines(baselines)
				if err != nil {
					return err
				}
				opt.Baselines = b
			}
			runs, warnings, err := report.LoadRuns(cmd.Context(), args)
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				fmt.Fprintf(e.stderr, "ptb report: no result.json under %s\n", strings.Join(args, " "))
			}
			labels := map[string]bool{}
			for _, r := range runs {
				labels[report.Label(r.Result.Spec)] = true
			}
			for _, c := range compare {
				pair, err := splitCompare(c, labels)
				if err != nil {
					return err
				}
				opt.Compare = append(opt.Compare, pair)
			}
			rep, err := report.Build(runs, opt)
			if err != nil {
				return err
			}
			rep.Warnings = append(warnings, rep.Warnings...)
			for _, w := range rep.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", w)
			}
			if out == "" {
				return report.Write(e.stdout, rep, formats[0], ".")
			}
			written, err := report.WriteDir(out, rep, formats)
			for _, p := range written {
				fmt.Fprintf(e.stderr, "wrote %s\n", p)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&baselines, "baselines", "", "baselines file (YAML or JSON; ptb.baselines/v1 or the original's baselines.json); default: the paper's published values")
	f.StringVar(&format, "format", "md", "output format: md, csv, json, html, a comma-separated list, or all")
	f.StringVar(&out, "out", "", "write report.<format> and figures/*.svg into this directory instead of stdout")
	f.StringArrayVar(&compare, "compare", nil, `compare two methods: "LABEL A vs LABEL B" (repeatable)`)
	f.IntVar(&bootstrap, "bootstrap", 2000, "bootstrap replicates for the 95% intervals (0: none)")
	f.Uint64Var(&seed, "seed", 1, "seed of the bootstrap")
	f.BoolVar(&countUnverified, "count-unverified", false, "count the scores of runs that are unverified under the policy instead of falling back")
	f.StringVar(&policy, "policy", report.PolicyPaper, "fallback policy: paper (the original's: only the LLM judge's judgements decide) or strict (also ptb's own flags and unverified verdicts)")
	return cmd
}

func parseFormats(s string) ([]string, error) {
	if s == "all" {
		return report.Formats(), nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, k := range report.Formats() {
			ok = ok || f == k
		}
		if !ok {
			return nil, usagef("--format %q: use %s, a comma-separated list of them, or all", f, strings.Join(report.Formats(), ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// splitCompare splits "A vs B" at the " vs " that leaves a known method on
// both sides.
func splitCompare(s string, labels map[string]bool) ([2]string, error) {
	const sep = " vs "
	var found [][2]string
	for i := 0; ; {
		j := strings.Index(s[i:], sep)
		if j < 0 {
			break
		}
		a, b := s[:i+j], s[i+j+len(sep):]
		if labels[a] && labels[b] {
			found = append(found, [2]string{a, b})
		}
		i += j + 1
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var names []string
		for l := range labels {
			names = append(names, fmt.Sprintf("%q", l))
		}
		return [2]string{}, usagef("--compare %q: want \"A vs B\" with two method labels; the methods are %s", s, strings.Join(names, ", "))
	}
	return [2]string{}, usagef("--compare %q: ambiguous, more than one way to split at \" vs \"", s)
}
