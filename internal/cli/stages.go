package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/eval"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
)

// wireStages connects the evaluate and audit stages and usage accounting.
func wireStages(r *pipeline.Runner, spec job.Spec) {
	r.Evaluator = evaluator{}
}

// evaluator is the evaluate stage on top of package eval.
type evaluator struct{}

func (evaluator) Evaluate(ctx context.Context, req pipeline.EvalRequest) (*result.Evaluation, error) {
	s := req.Spec
	o := eval.Options{
		Task: s.Benchmark, Version: s.Eval.Version, Backend: s.Eval.Backend,
		ModelPath: req.ModelDir, BaseURL: s.Eval.BaseURL, Responses: s.Eval.Responses,
		DataDir: s.Eval.DataDir, Limit: s.Eval.Limit, OutDir: req.OutDir,
		Sandbox: req.Sandbox, Progress: req.Progress,
	}
	if s.Benchmark == "arenahardwriting" || s.Benchmark == "healthbench" {
		// The grader runs on the host; its key never enters the sandbox.
		if key := os.Getenv("OPENAI_API_KEY"); key != "" || os.Getenv("PTB_JUDGE_URL") != "" {
			o.Judge = judge.NewOpenAI(os.Getenv("PTB_JUDGE_URL"), key)
		}
	}
	sum, err := eval.Run(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", s.Benchmark, err)
	}
	acc, se := sum.Accuracy, sum.Stderr
	return &result.Evaluation{
		Task: sum.Task, Version: sum.Version, Backend: sum.Backend, Metrics: sum.Metrics,
		Accuracy: &acc, Stderr: &se, Samples: sum.Samples,
	}, nil
}

// cliScaffold returns the adapter of a real agent CLI.
func cliScaffold(spec job.Spec) (agent.Scaffold, error) {
	return nil, fmt.Errorf("%w for agent %q yet", errNoAdapter, spec.Agent)
}
