package jobrun

import (
	"context"
	"fmt"
	"github.com/ptb-dev/ptb/internal/fsutil"
	"github.com/ptb-dev/ptb/internal/pinned"
	"log/slog"
	"os"
	"strings"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/audit"
	"github.com/ptb-dev/ptb/internal/eval"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/trace"
)

// wireStages connects the evaluate and audit stages and usage accounting.
func wireStages(r *pipeline.Runner, spec job.Spec, cfg Config) {
	// The inference server sees no more of the host than the judge does.
	r.Evaluator = evaluator{reg: r.Registry, pins: cfg.Pins, grader: cfg.Grader, hidden: append(append([]string{}, r.Hidden...), spec.OutRoot)}
	r.Usage = usageReader{}
	r.Auditor = auditor{log: r.Log, sb: r.Sandbox, self: cfg.self(), getenv: cfg.getenv, hidden: append(append([]string{}, r.Hidden...), spec.OutRoot)}
}

// auditor is the audit stage on top of package audit. The LLM judge needs
// an agent endpoint and is not wired yet: its finding is unverified, so no
// run is clean until it is (the audit fails closed).
type auditor struct {
	log    *slog.Logger
	sb     sandbox.Backend
	hidden []string // what the judge must not see, as for the agent
	self   string   // the ptb executable
	getenv func(string) string
}

func (a auditor) Audit(ctx context.Context, req pipeline.AuditRequest) (*result.Audit, error) {
	dir := req.Dir
	o := audit.Options{RunDir: string(dir), Task: req.Benchmark, BaseModel: req.BaseModel, TestSets: TestSets(req.DataDir), JudgeRuns: req.Judge.Runs,
		Untrusted: []string{req.OutRoot}}
	if req.Registry != "" {
		reg, err := registry.Load(req.Registry)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		o.Registry = reg
	}
	if req.Judge.Endpoint != "" {
		sc, err := cliScaffold(pipeline.ScaffoldRequest{Agent: req.Judge.Agent, Model: req.Judge.Model, Network: sandbox.NetworkGateway})
		if err != nil {
			return nil, fmt.Errorf("judge: %w", err)
		}
		o.Judge = &sandboxJudge{sb: a.sb, sc: sc, spec: req.Judge, dir: dir, hidden: a.hidden, log: a.log, self: a.self, getenv: a.getenv}
	}
	rep, err := audit.Run(ctx, o)
	if err != nil {
		return nil, err
	}
	var txt strings.Builder
	rep.WriteText(&txt)
	if err := fsutil.WriteFileAtomic(dir.Path(rundir.AuditText), []byte(txt.String()), 0o644); err != nil {
		return nil, err
	}
	return rep.Audit(), nil
}

// evaluator is the evaluate stage on top of package eval. The chat
// template follows the job's base model, as in the original. The inference
// server runs in the job's sandbox backend with the job's GPUs.
type evaluator struct {
	reg    *registry.Registry
	pins   *pinned.Table
	grader Grader
	hidden []string // host paths the server must not see
}

func (ev evaluator) Evaluate(ctx context.Context, req pipeline.EvalRequest) (*result.Evaluation, error) {
	o := eval.Options{
		Task: req.Benchmark, Version: req.Eval.Version, OutDir: req.OutDir, Sandbox: req.Sandbox,
		Target:   eval.Target{Backend: req.Eval.Backend, ModelPath: req.ModelDir, BaseURL: req.Eval.BaseURL, Responses: req.Eval.Responses},
		Data:     eval.Data{DataDir: req.Eval.DataDir, Limit: req.Eval.Limit},
		Requests: eval.Requests{Progress: req.Progress},
		Server:   eval.Server{GPUs: req.GPUs, Hidden: ev.hidden},
	}
	if ev.pins != nil {
		o.Pinned = &pinned.Store{Table: ev.pins, Offline: o.Offline}
	}
	if ev.reg != nil {
		m, err := ev.reg.Model(req.BaseModel)
		if err != nil {
			return nil, fmt.Errorf("evaluate: base model: %w", err)
		}
		o.BaseModel = &m
	}
	if t, err := task.New(req.Benchmark, req.Eval.Version, task.Config{}); err == nil && t.Info().Judge {
		// The grader runs on the host; its key never enters the sandbox.
		if g := ev.grader; g.Key != "" || g.URL != "" {
			o.Judge = judge.NewOpenAI(g.URL, g.Key)
		}
	}
	sum, err := eval.Run(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", req.Benchmark, err)
	}
	acc, se := sum.Accuracy, sum.Stderr
	rec := &result.Evaluation{
		Task: sum.Task, Version: sum.Version, Backend: sum.Backend, Metrics: sum.Metrics,
		Accuracy: &acc, Stderr: &se, Samples: sum.Samples,
	}
	if r := sum.Server; r != nil {
		rec.Server = &result.EvalServer{
			Backend: r.Backend, Executable: r.Executable, Version: r.Version, PinnedVersion: r.PinnedVersion,
			Sandbox: r.Sandbox, Unsandboxed: r.Unsandboxed, GPUs: append([]int{}, r.GPUs...),
			TrustRemoteCode: r.TrustRemoteCode, Warnings: append([]string{}, sum.Warnings...),
		}
	}
	if r := sum.Programs; r != nil {
		rec.Programs = &result.EvalPrograms{Python: r.Python, PythonVersion: r.PythonVersion, Sandbox: r.Sandbox,
			Unsandboxed: r.Unsandboxed, Sandboxes: r.Sandboxes, Warnings: append([]string{}, r.Warnings...)}
	}
	if sum.Missing > 0 && sum.Samples > 0 {
		// Recorded responses that cover part of the benchmark: the rest
		// scored as empty, and the record says how much was covered.
		cov := float64(sum.Samples-sum.Missing) / float64(sum.Samples)
		rec.Missing, rec.Coverage = sum.Missing, &cov
		if req.Progress != nil {
			fmt.Fprintf(req.Progress, "ptb: warning: %d of %d samples had no recorded response in %s and were scored as empty (coverage %.1f%%)\n",
				sum.Missing, sum.Samples, req.Eval.Responses, 100*cov)
		}
	}
	return rec, nil
}

// cliScaffold returns the adapter of a real agent CLI.
func cliScaffold(req pipeline.ScaffoldRequest) (agent.Scaffold, error) {
	var cred []byte
	// Under the gateway the login stays with the gateway (RunGateway);
	// the sandbox gets a placeholder.
	if req.Credentials != "" && req.Network != sandbox.NetworkGateway {
		b, err := os.ReadFile(req.Credentials)
		if err != nil {
			return nil, fmt.Errorf("read credentials: %w", err)
		}
		cred = b
	}
	if req.Model == "" {
		ex := ""
		if i, ok := agentinfo.Lookup(req.Agent); ok {
			ex = i.ExampleModel
		}
		return nil, fmt.Errorf("agent %s needs a model: pass --agent-model (e.g. %s)", req.Agent, ex)
	}
	return agent.New(req.Agent, agent.Options{Credentials: cred, Gateway: req.Network == sandbox.NetworkGateway})
}

// usageReader reads token usage and cost from the raw trace.
type usageReader struct{}

func (usageReader) Usage(ctx context.Context, req pipeline.UsageRequest) (*result.Usage, error) {
	if req.Network == sandbox.NetworkGateway {
		// What the gateway metered, not what the agent says it used.
		u, err := GatewayUsage(req.GatewayLog)
		if err != nil {
			return nil, err
		}
		if s, err := traceSummary(req.Trace, req.Agent, req.Model); err == nil {
			u.CLICostUSD = s.CLICostUSD
		}
		return u, nil
	}
	if req.Agent == "scripted" {
		return &result.Usage{Source: "unavailable: the scripted agent uses no model"}, nil
	}
	s, err := traceSummary(req.Trace, req.Agent, req.Model)
	if err != nil {
		return nil, err
	}
	u := &result.Usage{
		InputTokens: s.Usage.InputTokens, OutputTokens: s.Usage.OutputTokens,
		CachedInputTokens: s.Usage.CachedInputTokens, ReasoningTokens: s.Usage.ReasoningTokens,
		CostUSD: s.CostUSD, CLICostUSD: s.CLICostUSD, PriceTable: s.PriceTable,
		Source: "trace (" + s.Agent + " rules)",
	}
	return u, nil
}

// traceSummary summarizes the raw trace at path of agent (its registry
// name) running model.
func traceSummary(path, agentName, model string) (*trace.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	model, _, _ = strings.Cut(model, ":") // codex MODEL:EFFORT
	return trace.Summarize(f, agentName, model, trace.DefaultPrices())
}
