package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Polling of the executor and the run directories: status --watch and
// up --wait query the scheduler once per interval (one query each).
// --watch never polls more often than every 30 s; --wait may, for CI
// campaigns with budgets of seconds.
const (
	defaultPollInterval = 30 * time.Second
	minWatchInterval    = 30 * time.Second
	minPollInterval     = time.Second
)

// loadedCampaign is a campaign file with its cells and executor.
type loadedCampaign struct {
	file  *campaign.File
	reg   *registry.Registry
	cells []campaign.Cell
	ex    campaign.Executor
}

func loadCampaign(e *env, path string) (*loadedCampaign, error) {
	f, err := campaign.ParseFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	reg, err := registry.Load(f.Registry)
	if err != nil {
		return nil, usagef("%s: registry: %v", f.Path, err)
	}
	cells, err := f.Expand(reg, runSpecifier(e, reg))
	if err != nil {
		return nil, usagef("%v", err)
	}
	ex, err := f.NewExecutor()
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &loadedCampaign{file: f, reg: reg, cells: cells, ex: ex}, nil
}

// notSpecFlags are the `ptb run` flags that do not make the job spec
// (how the process runs, or what the campaign sets per allocation).
var notSpecFlags = []string{"resume", "redo", "monitor-interval", "json", "verbose", "gpus", "out", "run-id"}

// runSpecifier parses a cell's `ptb run` arguments with ptb run's own flag
// set and makes the normalized spec as runRun does, so that the campaign's
// spec hash is the hash `ptb run --run-id` computes from the same args.
func runSpecifier(e *env, reg *registry.Registry) campaign.Specifier {
	return func(args []string) (job.Spec, error) {
		cmd := newRunCmd(e)
		fl := cmd.Flags()
		if err := fl.Parse(args); err != nil {
			return job.Spec{}, fmt.Errorf("ptb run arguments %q: %w", strings.Join(args, " "), err)
		}
		if fl.NArg() > 0 {
			return job.Spec{}, fmt.Errorf("ptb run takes no positional arguments, got %q", fl.Args())
		}
		for _, n := range notSpecFlags {
			if n != "gpus" && n != "out" && fl.Changed(n) {
				return job.Spec{}, fmt.Errorf("--%s is not a job setting: remove it from the campaign's args", n)
			}
		}
		str := func(n string) string { v, _ := fl.GetString(n); return v }
		arr := func(n string) []string {
			// nil when not given, as in ptb run's own spec (an empty slice
			// would make Gateway non-zero and change the hash).
			if v, _ := fl.GetStringArray(n); len(v) > 0 {
				return v
			}
			return nil
		}
		dur := func(n string) time.Duration { v, _ := fl.GetDuration(n); return v }
		num := func(n string) int { v, _ := fl.GetInt(n); return v }
		flt := func(n string) float64 { v, _ := fl.GetFloat64(n); return v }
		s := job.Spec{
			Agent: str("agent"), AgentModel: str("agent-model"), BaseModel: str("base-model"), Benchmark: str("benchmark"),
			Hours: flt("hours"), Seed: num("seed"), OutRoot: str("out"), Label: str("label"),
			Sandbox: str("sandbox"), Network: sandbox.Network(str("network")), Grace: dur("grace"),
			PassEnv: arr("env"), ReadOnly: arr("ro"), Endpoint: str("endpoint"), Credentials: str("credentials"),
			Reprompt: dur("reprompt"), Script: str("script"),
			Gateway: job.GatewaySpec{SpendCapUSD: flt("spend-cap"), AllowModels: arr("allow-model"), HubEndpoint: str("hub-endpoint")},
			Eval: job.EvalSpec{Backend: str("eval-backend"), Version: str("eval-version"), Responses: str("eval-responses"),
				BaseURL: str("eval-base-url"), Limit: num("eval-limit"), DataDir: str("data-dir")},
			Judge: job.JudgeSpec{Agent: str("judge-agent"), Model: str("judge-model"), Endpoint: str("judge-endpoint"), Runs: num("judge-runs")},
		}
		if r := str("registry"); r != "" {
			s.Registry, _ = filepath.Abs(r)
		}
		if fl.Changed("hours") && !(s.Hours > 0) {
			return job.Spec{}, fmt.Errorf("--hours %v: want a positive number of hours", s.Hours)
		}
		if p := str("agents-prefix"); p != "" {
			if err := agentsPrefixEnv(&s, p, os.Getenv("PATH")); err != nil {
				return job.Spec{}, err
			}
		}
		for _, l := range arr("limit") {
			if err := s.SetLimit(l); err != nil {
				return job.Spec{}, fmt.Errorf("--limit: %w", err)
			}
		}
		if err := s.Normalize(reg); err != nil {
			return job.Spec{}, err
		}
		return s, nil
	}
}

func newCampaignUpCmd(e *env) *cobra.Command {
	var (
		dryRun, wait bool
		exe          string
		interval     time.Duration
	)
	c := &cobra.Command{
		Use:   "up FILE [--dry-run] [--wait] [--exe PATH]",
		Short: "Submit every cell of the campaign that is neither done nor running",
		Long: `up expands the campaign file into its cells (agents x base models x
benchmarks x seeds, less exclude, plus include and baselines), gives each a
stable run id and a place in the append-only index OUT/.campaign/NAME/index.jsonl,
and reconciles: a cell with a result.json is done and never submitted again;
one with a live job at the executor, a held run lock or a fresh solve
heartbeat is running; every other is submitted, up to limits.max_parallel and
the agents' caps. Running up again is safe: it submits only what is missing.

--dry-run prints the plan and writes nothing. --wait reconciles every
--interval until every cell is done or failed for good (retry caps), and
exits 1 if any failed. See docs/CAMPAIGN.md.`,
		Example: `  ptb campaign up study.yaml --dry-run
  ptb campaign up study.yaml
  ptb campaign up study.yaml --wait --interval 1m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < minPollInterval {
				return usagef("--interval %s: want at least %s", interval, minPollInterval)
			}
			lc, err := loadCampaign(e, args[0])
			if err != nil {
				return err
			}
			if exe != "" {
				if exe, err = filepath.Abs(exe); err != nil {
					return err
				}
				if st, err := os.Stat(exe); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
					return usagef("--exe %s: not an executable file", exe)
				}
			}
			ctx := cmd.Context()
			for _, name := range lc.file.Secrets {
				if os.Getenv(name) == "" {
					fmt.Fprintf(e.stderr, "ptb: warning: secrets: %s is not set here; the allocations get it only from their own environment\n", name)
				}
			}
			if !dryRun {
				if err := lc.ex.Check(ctx); err != nil {
					return fmt.Errorf("executor %s cannot be used: %w", lc.ex.Name(), err)
				}
			}
			o := campaign.UpOptions{Exe: exe, DryRun: dryRun}
			if !wait || dryRun {
				p, err := campaign.Up(ctx, lc.file, lc.ex, lc.cells, o)
				if p != nil {
					printPlan(e.stdout, lc.file, p, dryRun)
				}
				return err
			}
			p, err := campaign.Wait(ctx, lc.file, lc.ex, lc.cells, o, interval, func(p *campaign.Plan) {
				fmt.Fprintf(e.stderr, "ptb: %s %s: %s\n", time.Now().UTC().Format(time.TimeOnly), lc.file.Name, planCounts(p))
			})
			if p != nil {
				printPlan(e.stdout, lc.file, p, false)
			}
			if err != nil {
				return err
			}
			if n := p.Count(campaign.CellFailed); n > 0 {
				return fmt.Errorf("%d of %d cell(s) failed for good; see ptb campaign status %s", n, len(p.Rows), args[0])
			}
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (id, state, action) and change nothing")
	c.Flags().BoolVar(&wait, "wait", false, "reconcile every --interval until every cell is done or failed for good")
	c.Flags().DurationVar(&interval, "interval", defaultPollInterval, "with --wait: time between reconciles (one executor query each)")
	c.Flags().StringVar(&exe, "exe", "", "the ptb binary the allocations run (default: this one); it must be readable where the jobs run")
	return c
}

func planCounts(p *campaign.Plan) string {
	var parts []string
	for _, s := range []string{campaign.CellDone, campaign.CellRunning, campaign.CellQueued, campaign.CellIdle, campaign.CellFailed} {
		if n := p.Count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if n := len(p.Submitted); n > 0 {
		parts = append(parts, fmt.Sprintf("%d submitted now", n))
	}
	return strings.Join(parts, ", ")
}

func printPlan(w io.Writer, f *campaign.File, p *campaign.Plan, dryRun bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "index\trun id\tstate\taction\twhy")
	for _, r := range p.Rows {
		idx := strconv.Itoa(r.Index)
		if r.New {
			idx += "+"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", idx, r.RunID, r.State, r.Action, r.Why)
	}
	tw.Flush()
	verb := "campaign"
	if dryRun {
		verb = "dry run of campaign"
	}
	fmt.Fprintf(w, "%s %s (%s, %s): %s\n", verb, f.Name, f.ExecutorName, f.Dir(), planCounts(p))
	if p.BackendErr != "" {
		fmt.Fprintf(w, "warning: the executor's view is missing (%s): running jobs may be shown as idle\n", p.BackendErr)
	}
	if dryRun {
		fmt.Fprintln(w, "(+: a new index entry; nothing was written or submitted)")
	}
}

func newCampaignStatusCmd(e *env) *cobra.Command {
	var (
		watch, asJSON bool
		interval      time.Duration
	)
	c := &cobra.Command{
		Use:   "status FILE [--watch] [--json]",
		Short: "Show the campaign's runs: counts, a table, and why each failed or stuck run failed",
		Long: `status merges the run directories (stage, solve time from the heartbeat,
score, verdict) with the executor's view (one query: queue reason, restarts)
and the requeue records, and prints counts and a table. Every run that failed,
is stuck, or finished with a problem gets a triage reason from its run
directory and its scheduler log: agent API error, usage or spend limit hit,
hub rate limit (HF 429), CUDA unavailable, deadline, harness error, no
metrics, flagged, unverified, requeue or submit cap hit. status writes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch && interval < minWatchInterval {
				return usagef("--interval %s: --watch polls the scheduler at most every %s", interval, minWatchInterval)
			}
			lc, err := loadCampaign(e, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			for {
				rep, err := campaign.CampaignStatus(ctx, lc.file, lc.ex, lc.cells, campaign.StatusOptions{AgentSaid: agentFailure})
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					if !watch {
						enc.SetIndent("", "  ")
					}
					if err := enc.Encode(rep); err != nil {
						return err
					}
				} else {
					printStatus(e.stdout, rep)
				}
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	c.Flags().BoolVar(&watch, "watch", false, "print the status again every --interval until interrupted")
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (with --watch: one object a line)")
	c.Flags().DurationVar(&interval, "interval", defaultPollInterval, "with --watch: time between polls (one executor query each)")
	return c
}

func printStatus(w io.Writer, rep *campaign.Report) {
	var counts []string
	for _, s := range []string{campaign.CellDone, campaign.CellRunning, campaign.CellQueued, campaign.CellIdle, campaign.CellFailed} {
		if n := rep.Counts[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(w, "campaign %s (%s) at %s: %d run(s): %s; %d need a look\n", rep.Campaign, rep.Executor, rep.At, len(rep.Runs), strings.Join(counts, ", "), rep.Attention)
	if rep.BackendErr != "" {
		fmt.Fprintf(w, "warning: the executor could not be queried (%s): running jobs may be shown as idle\n", rep.BackendErr)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run id\tstate\tstage\tsolve\tscore\tverdict\tbackend\trequeues")
	for _, r := range rep.Runs {
		stage := "-"
		if r.Stage != "" {
			stage = r.Stage + " " + r.StageStatus
		} else if r.State == campaign.CellDone {
			stage = "all done"
		}
		solve := "-"
		if r.BudgetS > 0 {
			solve = fmt.Sprintf("%s/%s", clock(time.Duration(r.ElapsedS*float64(time.Second))), clock(time.Duration(r.BudgetS*float64(time.Second))))
		}
		score := "-"
		if r.Score != nil {
			score = strconv.FormatFloat(*r.Score, 'f', 4, 64)
		}
		backend := "-"
		if b := r.Backend; b != nil {
			backend = b.BackendID + " " + string(b.State)
			if b.Reason != "" {
				backend += " (" + b.Reason + ")"
			}
			if b.Restarts > 0 {
				backend += fmt.Sprintf(", %d restart(s)", b.Restarts)
			}
		}
		rq := "-"
		if r.Requeues.Preemptions+r.Requeues.Timeouts > 0 {
			rq = fmt.Sprintf("%dp %dt", r.Requeues.Preemptions, r.Requeues.Timeouts)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.RunID, r.State, stage, solve, score, orDash(r.Verdict), backend, rq)
	}
	tw.Flush()
	if n := len(rep.NotInFile); n > 0 {
		fmt.Fprintf(w, "note: %d run(s) of the index are no longer in the file (left alone): %s\n", n, strings.Join(rep.NotInFile, " "))
	}
	for _, r := range rep.Runs {
		if len(r.Triage) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s):\n", r.RunID, r.State)
		for _, t := range r.Triage {
			fmt.Fprintf(w, "  %s\n", t)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCampaignCancelCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel FILE [RUN_ID...]",
		Short: "Cancel the campaign's jobs (all, or the runs named); a cancelled run resumes when submitted again",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lc, err := loadCampaign(e, args[0])
			if err != nil {
				return err
			}
			ids := args[1:]
			known := map[string]bool{}
			for _, c := range lc.cells {
				known[c.RunID] = true
			}
			for _, id := range ids {
				if !known[id] {
					return usagef("%s is no run of campaign %s (see ptb campaign status %s)", id, lc.file.Name, args[0])
				}
			}
			ctx := cmd.Context()
			if len(ids) == 0 {
				st, err := lc.ex.List(ctx, lc.file.Ref())
				if err != nil {
					return fmt.Errorf("list the campaign's jobs (%s): %w", lc.ex.Name(), err)
				}
				for _, s := range st {
					if s.State.Live() && !slices.Contains(ids, s.RunID) {
						ids = append(ids, s.RunID)
					}
				}
			}
			if len(ids) == 0 {
				fmt.Fprintf(e.stdout, "campaign %s has no live job\n", lc.file.Name)
				return nil
			}
			if err := lc.ex.Cancel(ctx, lc.file.Ref(), ids); err != nil {
				return fmt.Errorf("cancel %d job(s) at %s: %w", len(ids), lc.ex.Name(), err)
			}
			fmt.Fprintf(e.stdout, "cancelled %d job(s) of campaign %s: %s\n", len(ids), lc.file.Name, strings.Join(ids, " "))
			return nil
		},
	}
}

// maxLogPrint bounds what logs prints of each file (its end).
const maxLogPrint = 1 << 20

func newCampaignLogsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logs FILE RUN_ID",
		Short: "Print a job's scheduler output (the end of each log file, oldest first)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lc, err := loadCampaign(e, args[0])
			if err != nil {
				return err
			}
			return printLogs(cmd.Context(), e, lc, args[1])
		},
	}
}

func printLogs(ctx context.Context, e *env, lc *loadedCampaign, id string) error {
	if !slices.ContainsFunc(lc.cells, func(c campaign.Cell) bool { return c.RunID == id }) {
		return usagef("%s is no run of campaign %s (see ptb campaign status %s)", id, lc.file.Name, lc.file.Path)
	}
	paths, err := lc.ex.Logs(ctx, lc.file.Ref(), id)
	if err != nil {
		return fmt.Errorf("find the logs of %s at %s: %w", id, lc.ex.Name(), err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("%s has no scheduler log yet at %s (was it submitted? see ptb campaign status %s)", id, lc.ex.Name(), lc.file.Path)
	}
	for _, p := range paths {
		fmt.Fprintf(e.stdout, "==> %s <==\n", p)
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(e.stdout, "(unreadable: %v)\n", err)
			continue
		}
		if st, err := f.Stat(); err == nil && st.Size() > maxLogPrint {
			fmt.Fprintf(e.stdout, "(the last %d of %d bytes)\n", maxLogPrint, st.Size())
			f.Seek(st.Size()-maxLogPrint, io.SeekStart)
		}
		_, err = io.Copy(e.stdout, io.LimitReader(f, maxLogPrint))
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
