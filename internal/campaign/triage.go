package campaign

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// Triage reasons: the first word of each line of a run's triage.
const (
	TriageRequeueCap  = "requeue cap hit"
	TriageSubmitCap   = "submit cap hit"
	TriageHarness     = "harness error"
	TriageDeadline    = "deadline"
	TriageAgentAPI    = "agent API error"
	TriageSpendLimit  = "spend limit hit"
	TriageUsageLimit  = "usage limit hit"
	TriageHubRate     = "hub rate limit"
	TriageCUDA        = "CUDA unavailable"
	TriageNoMetrics   = "no metrics"
	TriageNoModel     = "no final_model"
	TriageFlagged     = "flagged"
	TriageUnverified  = "unverified"
	TriageStuck       = "stuck"
	TriageNeverRan    = "never ran"
	TriageLimit       = "limit hit"
	triageTail        = 256 << 10
	stuckAfter        = 10 * time.Minute
	maxTriageLogLines = 1 << 20
)

// AgentSaid returns the agent CLI's own words on why it stopped ("" when
// none). internal/cli provides it (agentcheck lives beside the agents).
type AgentSaid func(dir rundir.Dir, res *result.Result) string

// TriageInput is what triage looks at besides the run directory.
type TriageInput struct {
	Row       PlanRow
	Root      string
	File      string   // the campaign file, for the commands triage suggests
	Logs      []string // the executor's log files of the run (stdout/stderr of exec)
	AgentSaid AgentSaid
	Now       time.Time
}

// cudaRE matches what CUDA, PyTorch, vLLM and ptb's GPU preflight say
// when the devices are missing.
// Compiled on first use, not at start-up: every ptb command would pay for
// it (about 5 ms), and only status needs it.
var cudaRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(no CUDA-capable device|CUDA (driver version is insufficient|error: (no device|invalid device|unknown error|initialization error))|torch\.cuda\.is_available\(\) (is )?False|cuda is not available|Found no NVIDIA driver|NVIDIA-SMI has failed|--gpus: (cannot list this machine's GPUs|GPU [0-9,]+ does not exist here)|RuntimeError: No CUDA GPUs are available)`)
})

// Triage returns why a run failed, is stuck or needs a look, one reason a
// line ("" when there is nothing to say), from its run directory, its
// requeue record and its executor's log files.
func Triage(in TriageInput) []string {
	r := in.Row
	var out []string
	add := func(kind, format string, args ...any) {
		out = append(out, kind+": "+fmt.Sprintf(format, args...))
	}
	dir := rundir.Dir(filepath.Join(in.Root, r.RunID))
	if r.Req.GaveUp != "" {
		add(TriageRequeueCap, "%s (%d preemption(s), %d timeout(s), last %s at %s)", r.Req.GaveUp, r.Req.Preemptions, r.Req.Timeouts, r.Req.LastSignal, r.Req.LastAt)
	}
	if r.State == CellFailed && r.Req.GaveUp == "" && !r.View.Done {
		add(TriageSubmitCap, "%s", r.Why)
	}
	// The run's last sign of progress: its solve heartbeat, or a later
	// event (a stage that started after the solve).
	progress := r.View.Heartbeat
	if !progress.IsZero() && r.View.LastEvent.After(progress) {
		progress = r.View.LastEvent
	}
	if r.State == CellRunning && r.Backend != nil && r.Backend.State == StateRunning && r.Kind == KindRun &&
		!r.View.Locked && r.View.Exists && !r.View.Fresh(in.Now) && !progress.IsZero() && in.Now.Sub(progress) > stuckAfter {
		add(TriageStuck, "backend job %s runs, but the run has shown no progress since %s (no lock, heartbeat %s old)",
			r.Backend.BackendID, progress.UTC().Format(time.RFC3339), in.Now.Sub(progress).Round(time.Second))
	}
	if r.View.Limit != "" && r.Kind == KindRun {
		add(TriageLimit, "the sandbox stopped the agent at its %s limit (solve segment %d); if the task needs more, raise it with --limit %s=VALUE in run.args",
			r.View.Limit, r.View.LimitSeg, r.View.Limit)
	}
	if !r.View.Exists && (r.State == CellFailed || (r.Backend != nil && r.Backend.State == StateFailed) || r.Submits > 0 && r.State == CellIdle) {
		why := "its job ended before the run directory was made"
		if r.Backend != nil && r.Backend.Reason != "" {
			why += " (" + r.Backend.Reason + ")"
		}
		add(TriageNeverRan, "%s; see ptb campaign logs %s %s", why, in.File, r.RunID)
	}
	if res := r.View.Result; res != nil {
		for _, s := range result.Stages {
			if st := res.Stages[s]; st.Status == result.StatusFailed {
				add(TriageHarness, "stage %s failed: %s", s, firstLine(st.Error))
			}
		}
		if sv := res.Solve; sv != nil {
			switch {
			case sv.EndReason == result.EndHarnessError:
				add(TriageHarness, "the solve could not be started or supervised: %s", firstLine(sv.Error))
			case sv.EndReason == result.EndDeadline && !sv.FinalModel:
				add(TriageDeadline, "the agent was stopped at the deadline (%s) without a final_model", time.Duration(sv.BudgetS*float64(time.Second)).Round(time.Second))
			case !sv.FinalModel:
				add(TriageNoModel, "the solve ended (%s) without a final_model", sv.EndReason)
			}
		}
		if res.Score == nil && (res.Solve == nil || res.Solve.FinalModel) {
			ev := res.Stages[result.StageEvaluate]
			add(TriageNoMetrics, "evaluate %s%s", ev.Status, paren(firstLine(ev.Error+ev.Reason)))
		}
		switch res.Verdict {
		case result.VerdictFlagged:
			add(TriageFlagged, "audit flags %s", strings.Join(res.Flags, ""))
		case result.VerdictUnverified:
			add(TriageUnverified, "%s", unverifiedChecks(res))
		}
		if in.AgentSaid != nil {
			if said := in.AgentSaid(dir, res); said != "" {
				add(TriageAgentAPI, "the agent said: %s", firstLine(said))
			}
		}
	}
	if r.View.Exists && r.Kind == KindRun && (r.State != CellDone || r.View.Result == nil || needsCUDA(r)) {
		out = append(out, gatewayTriage(dir)...)
	}
	if r.State != CellDone || needsCUDA(r) {
		texts := []string{}
		if r.View.Exists {
			texts = append(texts, tailFile(dir.Path(rundir.TraceLog), triageTail), tailFile(dir.Path(rundir.ServerLogFile), triageTail), tailFile(dir.Path("server.log"), triageTail))
		}
		for _, l := range in.Logs {
			texts = append(texts, tailFile(l, triageTail))
		}
		for _, t := range texts {
			if m := cudaRE().FindString(t); m != "" {
				add(TriageCUDA, "%s", lineAround(t, m))
				break
			}
		}
	}
	return out
}

func needsCUDA(r PlanRow) bool {
	res := r.View.Result
	return res != nil && (res.Score == nil || (res.Solve != nil && !res.Solve.FinalModel))
}

// gatewayTriage reads the gateway's logs: LLM errors and limits, hub 429s.
func gatewayTriage(dir rundir.Dir) []string {
	var out []string
	var spend, usage, apiErr, denied int
	var lastSpend, lastUsage, lastAPI, lastDenied string
	gateway.ReadLLMLog(dir.Path(rundir.GatewayLLMLog), func(rec gateway.LLMRecord, line int, lineErr error) error {
		if lineErr != nil || line > maxTriageLogLines {
			return nil
		}
		reason := strings.ToLower(rec.Reason)
		switch {
		case rec.Denied && strings.Contains(reason, "spend cap"):
			spend++
			lastSpend = rec.Reason
		case rec.Status == 429 || strings.Contains(reason, "usage limit") || strings.Contains(reason, "quota") || strings.Contains(reason, "rate limit"):
			usage++
			lastUsage = fmt.Sprintf("HTTP %d %s", rec.Status, rec.Reason)
		case rec.Denied:
			denied++
			lastDenied = rec.Reason
		case rec.Status >= 400:
			apiErr++
			lastAPI = fmt.Sprintf("HTTP %d %s", rec.Status, rec.Reason)
		}
		return nil
	})
	if spend > 0 {
		out = append(out, fmt.Sprintf("%s: %d request(s) refused by the gateway (%s)", TriageSpendLimit, spend, firstLine(lastSpend)))
	}
	if usage > 0 {
		out = append(out, fmt.Sprintf("%s: %d request(s) refused by the provider (last: %s)", TriageUsageLimit, usage, strings.TrimSpace(firstLine(lastUsage))))
	}
	if apiErr > 0 {
		out = append(out, fmt.Sprintf("%s: %d model request(s) failed (last: %s)", TriageAgentAPI, apiErr, strings.TrimSpace(firstLine(lastAPI))))
	}
	if denied > 0 {
		out = append(out, fmt.Sprintf("%s: %d model request(s) refused by the gateway (last: %s)", TriageAgentAPI, denied, firstLine(lastDenied)))
	}
	var hub429 int
	var lastHub string
	gateway.ReadHubLog(dir.Path(rundir.GatewayHubLog), func(rec gateway.HubRecord, line int, lineErr error) error {
		if lineErr == nil && line <= maxTriageLogLines && rec.Status == 429 {
			hub429++
			lastHub = rec.URL
		}
		return nil
	})
	if hub429 > 0 {
		out = append(out, fmt.Sprintf("%s: %d hub request(s) got HTTP 429 (last: %s); set HF_TOKEN where ptb runs and list it in secrets, or use a hub mirror (--hub-endpoint in run.args)", TriageHubRate, hub429, lastHub))
	}
	return out
}

func unverifiedChecks(res *result.Result) string {
	if res.Audit == nil {
		return "the audit did not run"
	}
	var checks []string
	for _, f := range res.Audit.Findings {
		if f.Status == "unverified" {
			checks = append(checks, f.Check)
		}
	}
	if len(checks) == 0 {
		return "the audit could not verify the run"
	}
	return "checks that could not run: " + strings.Join(checks, ", ")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// lineAround returns the line of text that holds m.
func lineAround(text, m string) string {
	i := strings.Index(text, m)
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		end = len(text) - i
	}
	return firstLine(text[start : i+end])
}
