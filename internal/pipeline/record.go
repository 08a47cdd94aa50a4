package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/monitor"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
)

// AuditDeadlineCheck is the finding the audit stage records when the
// auditor did not finish within the job's audit deadline.
const AuditDeadlineCheck = "audit.deadline"

func (x *run) audit(ctx context.Context) (result.Stage, error) {
	if x.r.Auditor == nil {
		return result.Stage{Status: result.StatusSkipped, Reason: "no audit implementation configured; verdict stays unverified"}, nil
	}
	// The auditor runs apart, under the stage deadline: an auditor stuck on
	// something the agent planted (a read that never returns) is left
	// behind, the verdict is unverified with the reason, and the job goes
	// on (and releases the run lock when it ends).
	limit := x.spec.Bounds.WithDefaults().AuditTimeout
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	type audited struct {
		a   *result.Audit
		err error
	}
	done := make(chan audited, 1)
	go func() {
		a, err := x.r.Auditor.Audit(actx, x.auditRequest())
		done <- audited{a, err}
	}()
	var a *result.Audit
	select {
	case r := <-done:
		if r.err != nil && (ctx.Err() != nil || !errors.Is(r.err, context.DeadlineExceeded)) {
			return result.Stage{}, r.err
		}
		a = r.a
		if r.err != nil {
			a = nil
		}
	case <-actx.Done():
	}
	if a == nil {
		if ctx.Err() != nil {
			return result.Stage{}, ctx.Err()
		}
		reason := fmt.Sprintf("the audit did not finish within its deadline of %s (job bounds.audit_timeout_ns); raise it or look for what stalled it in the run's workspace and home", limit)
		x.log.Warn("audit deadline passed", "limit", limit)
		a = &result.Audit{Verdict: result.VerdictUnverified, Flags: []string{},
			Findings: []result.Finding{{Check: AuditDeadlineCheck, Status: "unverified", Evidence: []string{reason}}}}
		if err := x.dir.WriteJSON(rundir.AuditFile, a); err != nil {
			return result.Stage{}, err
		}
		x.emit(runevents.Event{Type: runevents.Verdict, Verdict: a.Verdict, Flags: a.Flags, Reason: reason})
		return result.Stage{Status: result.StatusDone, Reason: "verdict unverified: " + reason}, nil
	}
	if err := x.dir.WriteJSON(rundir.AuditFile, a); err != nil {
		return result.Stage{}, err
	}
	x.emit(runevents.Event{Type: runevents.Verdict, Verdict: a.Verdict, Flags: a.Flags})
	return result.Stage{Status: result.StatusDone, Reason: "verdict " + a.Verdict}, nil
}

func (x *run) evaluate(ctx context.Context) (result.Stage, error) {
	if x.r.Evaluator == nil || x.spec.Eval.Backend == "none" {
		return result.Stage{Status: result.StatusSkipped, Reason: "no evaluation backend configured"}, nil
	}
	model := x.dir.Path(rundir.FinalModel)
	if _, err := os.Stat(model); err != nil {
		return result.Stage{}, errors.New("no final_model was collected; the score falls back to the baseline")
	}
	ev, err := x.r.Evaluator.Evaluate(ctx, x.evalRequest())
	if err != nil {
		return result.Stage{}, err
	}
	if err := x.dir.WriteJSON(rundir.EvaluationFile, ev); err != nil {
		return result.Stage{}, err
	}
	reason := ""
	if ev.Accuracy != nil {
		reason = fmt.Sprintf("accuracy %.4f over %d samples", *ev.Accuracy, ev.Samples)
	}
	return result.Stage{Status: result.StatusDone, Reason: reason}, nil
}

// record writes result.json from everything on disk. It always runs, so a
// job that failed part-way still leaves a record saying how.
func (x *run) record(ctx context.Context) (*result.Result, error) {
	started := result.Now(x.r.now())
	x.set(result.StageRecord, result.Stage{Status: result.StatusRunning, StartedAt: started})
	caps := x.r.Sandbox.Capabilities()
	res := &result.Result{
		Schema: result.Schema,
		RunID:  x.man.RunID,
		Spec: result.Spec{
			Agent: x.spec.Agent, AgentModel: x.spec.AgentModel, BaseModel: x.spec.BaseModel,
			Benchmark: x.spec.Benchmark, Hours: x.spec.Hours, GPUs: nonNil(x.spec.GPUs), Seed: x.spec.Seed,
			Label: x.spec.Label, Network: string(x.spec.Network), SandboxName: x.spec.Sandbox, EvalBackend: x.spec.Eval.Backend,
		},
		Stages:   map[string]result.Stage{},
		Verdict:  result.VerdictUnverified,
		Flags:    []string{},
		Warnings: []string{},
		Created:  x.man.Created,
		Versions: result.Versions{PTB: x.r.Version},
		Host:     hostInfo(ctx),
		Sandbox: result.Sandbox{
			Backend: caps.Name, Unsandboxed: !caps.Isolated, Network: effectiveNetwork(string(x.spec.Network), caps.Isolated),
		},
	}
	if !caps.Isolated {
		res.Warnings = append(res.Warnings, "unsandboxed: the agent ran with the none backend (development only); nothing was isolated")
	}
	if len(x.spec.PassEnv) > 0 {
		var names []string
		for _, kv := range x.spec.PassEnv {
			k, _, _ := strings.Cut(kv, "=")
			names = append(names, k)
		}
		res.Warnings = append(res.Warnings, "host environment passed into the sandbox (check it holds no secret): "+strings.Join(names, ", "))
	}
	if res.Sandbox.Network == "host" && caps.Isolated { // the none backend is warned about above
		res.Warnings = append(res.Warnings, "the agent had the host network (--network host, for debugging): it is never a clean run")
	}
	// Solve.
	if st, err := x.dir.ReadSolveState(); err == nil && len(st.Segments) > 0 {
		last := st.Segments[len(st.Segments)-1]
		s := &result.Solve{
			TimeTakenS: st.Spent().Seconds(), BudgetS: st.BudgetS, EndReason: last.EndReason,
			ExitCode: last.ExitCode, Signal: last.Signal, Segments: len(st.Segments),
			Deadline: result.Now(last.Deadline), Error: last.Error,
		}
		if len(st.Secrets) > 0 {
			res.Warnings = append(res.Warnings, "a secret entered the sandbox: "+strings.Join(st.Secrets, ", "))
		}
		s.Limit = last.Limit
		res.Sandbox.Limits = st.Limits
		res.Sandbox.GPUs = st.GPUs
		if s.EndReason == "interrupted" || s.EndReason == "harness_died" {
			s.EndReason = result.EndHarnessError
		}
		if fi, err := os.Stat(x.dir.Path(rundir.TraceRaw)); err == nil {
			s.TraceBytes = fi.Size()
		}
		var cuts []Truncation
		if err := x.dir.ReadJSON(rundir.TruncationFile, &cuts); err == nil && len(cuts) > 0 {
			s.TraceTruncated = true
			res.Warnings = append(res.Warnings, fmt.Sprintf("the trace went over the job's bounds and was cut %d times (head and tail kept, with sha256 of what was cut): see %s", len(cuts), rundir.TruncationFile))
		}
		_, err := os.Stat(x.dir.Path(rundir.FinalModel))
		s.FinalModel = err == nil
		var pc rundir.ProtectedCheck
		if err := x.dir.ReadJSON(rundir.ProtectedCheckFile, &pc); err == nil {
			ok := pc.OK
			s.ProtectedOK = &ok
			if !ok {
				res.Warnings = append(res.Warnings, "protected files changed: "+strings.Join(pc.Changes, ", "))
			}
		}
		res.Solve = s
	}
	// Usage.
	res.Usage = &result.Usage{Source: "unavailable"}
	if x.r.Usage != nil {
		if u, err := x.r.Usage.Usage(ctx, x.usageRequest()); err == nil && u != nil {
			res.Usage = u
		} else if err != nil {
			res.Usage.Source = "unavailable: " + err.Error()
		}
	}
	if sc, err := x.r.Scaffold(x.scaffoldRequest()); err == nil {
		res.Versions.AgentCLI = sc.Version(ctx)
	}
	// Audit.
	var a result.Audit
	if err := x.dir.ReadJSON(rundir.AuditFile, &a); err == nil && x.man.Stages[result.StageAudit].Status == result.StatusDone {
		res.Audit = &a
		res.Verdict = a.Verdict
		res.Flags = append(res.Flags, a.Flags...)
	}
	if res.Verdict == result.VerdictClean && !caps.Isolated {
		// An unsandboxed run cannot be vouched for.
		res.Verdict = result.VerdictUnverified
		res.Warnings = append(res.Warnings, "verdict downgraded to unverified: the run was unsandboxed")
	}
	if res.Verdict == result.VerdictClean && res.Sandbox.Network == "host" {
		// Nor can one whose traffic no gateway saw.
		res.Verdict = result.VerdictUnverified
		res.Warnings = append(res.Warnings, "verdict downgraded to unverified: the agent had the host network")
	}
	// Evaluation.
	var ev result.Evaluation
	if err := x.dir.ReadJSON(rundir.EvaluationFile, &ev); err == nil && x.man.Stages[result.StageEvaluate].Status == result.StatusDone {
		res.Evaluation = &ev
		res.Score = ev.Accuracy
		res.Versions.Scorer = ev.Task + "@" + ev.Version
		if ev.Missing > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("partial evaluation: %d of %d samples had no response and were scored as empty", ev.Missing, ev.Samples))
		}
	}
	for _, s := range result.Stages {
		res.Stages[s] = x.man.Stages[s]
	}
	if m, err := monitor.Summarize(x.dir.Path(rundir.MonitorFile), result.StageSolve, x.spec.GPUs); err != nil {
		res.Warnings = append(res.Warnings, "system monitor samples unreadable: "+err.Error())
	} else if m != nil {
		res.Monitor = m
	}
	if redos, err := ReadRedos(x.dir); err != nil {
		res.Warnings = append(res.Warnings, "redo history unreadable: "+err.Error())
	} else {
		res.Redos = redos
	}
	fin := x.r.now()
	res.Finished = result.Now(fin)
	res.Stages[result.StageRecord] = result.Stage{Status: result.StatusDone, StartedAt: started, EndedAt: res.Finished}
	if err := result.Validate(res); err != nil {
		return nil, fmt.Errorf("record: the result does not validate: %w", err)
	}
	if err := x.dir.WriteJSON(rundir.ResultFile, res); err != nil {
		return nil, err
	}
	if err := x.set(result.StageRecord, res.Stages[result.StageRecord]); err != nil {
		return nil, err
	}
	x.emit(runevents.Event{Type: runevents.ResultRecorded, Verdict: res.Verdict, Flags: res.Flags, Score: res.Score})
	return res, nil
}

func nonNil(xs []int) []int {
	if xs == nil {
		return []int{}
	}
	return xs
}

func effectiveNetwork(asked string, isolated bool) string {
	if !isolated {
		return "host"
	}
	if asked == "" {
		return "none"
	}
	return asked
}

func hostInfo(ctx context.Context) result.Host {
	h := result.Host{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GPUs: GPUs(ctx)}
	h.Hostname, _ = os.Hostname()
	return h
}

// GPUs lists the GPUs nvidia-smi reports ("0: NVIDIA H100 80GB HBM3"),
// or none when nvidia-smi is absent.
func GPUs(ctx context.Context) []string {
	out := []string{}
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader").Output()
	if err != nil {
		return out
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// gpuInfo describes the GPUs bound into the sandbox: their device node
// and, where nvidia-smi answers, their UUID (which identifies the card
// even when indices are renumbered).
func gpuInfo(ctx context.Context, idx []int) []result.GPU {
	uuids := map[string]string{}
	if _, err := exec.LookPath("nvidia-smi"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		b, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader").Output()
		cancel()
		if err == nil {
			uuids = ParseGPUUUIDs(string(b))
		}
	}
	out := make([]result.GPU, 0, len(idx))
	for _, i := range idx {
		n := fmt.Sprint(i)
		out = append(out, result.GPU{Index: i, Device: "/dev/nvidia" + n, UUID: uuids[n]})
	}
	return out
}

// ParseGPUUUIDs reads `nvidia-smi --query-gpu=index,uuid
// --format=csv,noheader` output into index -> UUID.
func ParseGPUUUIDs(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		i, u, ok := strings.Cut(l, ",")
		if ok {
			m[strings.TrimSpace(i)] = strings.TrimSpace(u)
		}
	}
	return m
}
