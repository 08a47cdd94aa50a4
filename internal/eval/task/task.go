// Package task defines the seven PostTrainBench benchmarks as versioned
// values: how each loads its data, builds the chat request, scores a model
// output and aggregates metrics. The default version of every task ("faithful")
// reproduces the original harness byte for byte, quirks included (see
// shared/spec/EVAL_SPEC.md); "strict" fixes known scorer bugs (docs/EVAL.md).
package task

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/chat"
	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/pyexec"
)

// Versions.
const (
	Faithful = "faithful" // the default: the original's behaviour, quirks included
	Strict   = "strict"   // known scorer bugs fixed; never comparable with the paper
)

// Generation styles: how a harness treats errors from the inference server.
const (
	// StyleInspect: a context-overflow 400 becomes a scored completion whose
	// text is the error message; any other sample error aborts the run.
	StyleInspect = "inspect"
	// StyleScript: every request error is retried 3 times (2 s, 4 s) and then
	// the whole evaluation fails (ArenaHard, HealthBench).
	StyleScript = "script"
)

// Message is one chat message as sent to the server (the same type as the
// judge's: package chat).
type Message = chat.Message

// Sample is one benchmark item, ready to send.
type Sample struct {
	ID       string
	Messages []Message
	Tools    json.RawMessage // BFCL: the tools array in inspect's key order; nil otherwise
	Target   string
	data     any // task-private
}

// FunctionCall is a tool call's function in OpenAI message shape.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // a JSON string, as the API returns it
}

// ToolCall is one tool call in OpenAI message shape.
type ToolCall struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// Output is what the model returned for a sample.
type Output struct {
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	StopReason string     `json:"stop_reason,omitempty"` // "model_length" for a context overflow turned into text
}

// Criterion is one graded HealthBench rubric item.
type Criterion struct {
	Points int    `json:"points"`
	Met    bool   `json:"met"`
	Axis   string `json:"axis,omitempty"`
	Failed bool   `json:"failed,omitempty"` // grading failed 5 times; counted as not met
}

// Scored is one line of samples.jsonl.
type Scored struct {
	ID         string      `json:"id"`
	Completion string      `json:"completion"` // after the harness's <think> handling
	Extracted  string      `json:"extracted"`
	Score      float64     `json:"score"`
	Target     string      `json:"target,omitempty"`
	MaxTokens  int         `json:"max_tokens,omitempty"`
	Output     *Output     `json:"output,omitempty"`
	Skipped    bool        `json:"skipped,omitempty"`  // ArenaHard: a game had no verdict; left out of metrics
	Entries    []float64   `json:"entries,omitempty"`  // ArenaHard: the candidate's win values
	Verdicts   []string    `json:"verdicts,omitempty"` // ArenaHard: game 1, game 2 labels
	Criteria   []Criterion `json:"criteria,omitempty"` // HealthBench
	Theme      string      `json:"theme,omitempty"`    // HealthBench
	GraderCall int         `json:"grader_calls,omitempty"`
}

// Info describes a task version as data.
type Info struct {
	Name        string
	Version     string
	MaxTokens   [3]int // the retry ladder's max tokens per phase (spec 1.2)
	Attempts    [3]int // attempts per phase: 4, 3, 2
	Concurrency int    // the original's concurrency (informational)
	DevLimit    int    // the workspace `evaluate` default limit; 0 = all
	Style       string // StyleInspect or StyleScript
	Sandbox     bool   // needs a sandbox to execute programs
	Judge       bool   // needs a grading model
	GPUMemory   string // vllm --gpu-memory-utilization ("" = vLLM default)
	Tools       bool   // sends tools (vLLM needs --enable-auto-tool-choice)
}

// Env is what scoring may use.
type Env struct {
	// Programs runs HumanEval programs (a pyexec.Pool: long-lived
	// sandboxes, a fresh interpreter process per program).
	Programs ProgramRunner
	Judge    judge.Judge // ArenaHard and HealthBench graders
	// Sleep waits between judge retries; nil = a real, cancellable sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// ProgramRunner runs one Python program in a fresh sandboxed interpreter
// process, under the original's timeout and output bound.
type ProgramRunner interface {
	Run(ctx context.Context, program string) (pyexec.Result, error)
}

func (e Env) sleep(ctx context.Context, d time.Duration) error { return Sleep(ctx, d, e.Sleep) }

// Sleep waits d or until ctx ends, through override when it is set (tests
// replace real waits between retries).
func Sleep(ctx context.Context, d time.Duration, override func(context.Context, time.Duration) error) error {
	return judge.Sleep(ctx, d, override)
}

// FirstLoader is a Task whose first n samples come from the first n records
// of its data, in order (nothing shuffles the whole set): LoadFirst reads
// and parses only those, so --limit n costs what n rows cost, whatever the
// split's size. n <= 0 loads everything, as Load does.
type FirstLoader interface {
	LoadFirst(ctx context.Context, src dataset.Source, n int) ([]Sample, error)
}

// Task is one benchmark at one version.
type Task interface {
	// Info describes the task.
	Info() Info
	// Load reads the benchmark from src, in the original's order.
	Load(ctx context.Context, src dataset.Source) ([]Sample, error)
	// Score scores out for s. An error aborts the evaluation, as a sample
	// exception does in the original.
	Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error)
	// Metrics aggregates scored samples into metrics.json's content.
	Metrics(scored []Scored) map[string]any
}

// Config holds choices that are not part of a task's identity.
type Config struct {
	// Seed seeds GPQA's choice shuffle (the original uses OS entropy).
	Seed uint32
	// Prompts gives the judged tasks their pinned judge prompts; nil: the
	// judged tasks cannot load.
	Prompts Prompts
}

// Judge prompt names for Prompts.
const (
	PromptArenaHardJudge    = "arenahard_judge_system_prompt"
	PromptHealthBenchGrader = "healthbench_grader_template"
)

// Prompts returns a judge prompt by name, verified against its pinned
// digest (package pinned); an error when it is absent or differs.
type Prompts interface {
	JudgePrompt(ctx context.Context, name string) (string, error)
}

func version(strict bool) string {
	if strict {
		return Strict
	}
	return Faithful
}

// MeanStderr returns the mean and the sample standard deviation (ddof=1)
// over sqrt(n); stderr is 0 when n < 2.
func MeanStderr(xs []float64) (mean, stderr float64) {
	n := float64(len(xs))
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

func scores(scored []Scored) []float64 {
	xs := make([]float64, len(scored))
	for i, s := range scored {
		xs[i] = s.Score
	}
	return xs
}

// accuracyStderr is inspect's metrics: {"accuracy", "stderr"}.
func accuracyStderr(scored []Scored) map[string]any {
	m, s := MeanStderr(scores(scored))
	return map[string]any{"accuracy": m, "stderr": s}
}

func boolScore(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SortByOrder sorts scored by the position of their ids in order (samples
// complete out of order).
func SortByOrder(scored []Scored, order []Sample) {
	pos := make(map[string]int, len(order))
	for i, s := range order {
		pos[s.ID] = i
	}
	sort.SliceStable(scored, func(i, j int) bool { return pos[scored[i].ID] < pos[scored[j].ID] })
}
