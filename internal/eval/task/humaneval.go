package task

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// HumanEvalFile is the HumanEval test split.
var HumanEvalFile = dataset.File{Repo: "openai/openai_humaneval", Revision: "main", Path: "openai_humaneval/test-00000-of-00001.parquet", Local: "humaneval/HumanEval.jsonl.gz"}

// HumanEvalInstruction precedes every HumanEval prompt.
const HumanEvalInstruction = "\nRead the following function signature and docstring, and fully implement\nthe function described. Your response should only contain the code for\nthis function.\n\n"

// HumanEval execution limits (inspect's verify()).
const (
	HumanEvalTimeout     = 30 * time.Second
	HumanEvalOutputLimit = 10 << 20
)

// HumanEvalRecord is one HumanEval problem.
type HumanEvalRecord struct {
	TaskID            string `json:"task_id"`
	Prompt            string `json:"prompt"`
	CanonicalSolution string `json:"canonical_solution"`
	Test              string `json:"test"`
	EntryPoint        string `json:"entry_point"`
}

var (
	codePy    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("(?s)```python\n(.*?)```") })
	codePlain = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("(?s)```\n(.*?)```") })
	codeAny   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("(?s)```[A-Za-z0-9_+-]*\r?\n(.*?)```") })
)

// FindCode is inspect_evals' find_code: the first ```python block, else the
// first ``` block, cut after the first ":\n    " (dropping the first
// character when there is none); without a block the completion unchanged.
func FindCode(completion string) string {
	var matches []string
	for _, m := range codePy().FindAllStringSubmatch(completion, -1) {
		matches = append(matches, m[1])
	}
	for _, m := range codePlain().FindAllStringSubmatch(completion, -1) {
		matches = append(matches, m[1])
	}
	if len(matches) == 0 {
		return completion
	}
	code := matches[0]
	if i := strings.Index(code, ":\n    "); i >= 0 {
		return code[i+2:]
	}
	_, n := utf8.DecodeRuneInString(code)
	return code[n:]
}

// findCodeStrict accepts any fence tag and CRLF, and keeps the whole block
// when the target's def line is in it (redefining the function is legal).
func findCodeStrict(completion string) string {
	m := codeAny().FindStringSubmatch(completion)
	if m == nil {
		return completion
	}
	return m[1]
}

func init() {
	Register(Registration{Name: "humaneval", Files: []dataset.File{HumanEvalFile},
		New: func(strict bool, _ Config) Task { return &humaneval{strict: strict} }})
}

type humaneval struct{ strict bool }

func (h *humaneval) Info() Info {
	return Info{Name: "humaneval", Version: version(h.strict), MaxTokens: [3]int{4000, 3000, 2000}, Attempts: [3]int{4, 3, 2},
		Concurrency: 1, DevLimit: 150, Style: StyleInspect, Sandbox: true, GPUMemory: "0.3"}
}

func (h *humaneval) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	return h.LoadFirst(ctx, src, 0)
}

// LoadFirst implements FirstLoader.
func (h *humaneval) LoadFirst(ctx context.Context, src dataset.Source, n int) ([]Sample, error) {
	recs, err := dataset.RecordsN(ctx, src, HumanEvalFile, n)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(recs))
	for i, raw := range recs {
		var r HumanEvalRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("humaneval row %d: %w", i, err)
		}
		out = append(out, Sample{ID: r.TaskID, Messages: []Message{{Role: "user", Content: HumanEvalInstruction + r.Prompt}}, Target: r.CanonicalSolution, data: r})
	}
	return out, nil
}

func (h *humaneval) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	r, ok := s.data.(HumanEvalRecord)
	if !ok {
		return Scored{}, fmt.Errorf("humaneval sample %s was not loaded by this task", s.ID)
	}
	c := pytext.StripThinkInspect(out.Content)
	var answer string
	if h.strict {
		answer = findCodeStrict(c)
	} else {
		answer = FindCode(c)
	}
	program := r.Prompt + answer + "\n" + r.Test + "\n" + "check(" + r.EntryPoint + ")"
	if !h.strict {
		// Faithful: the original's rule, exit status 0 passes. A known
		// quirk: a completion that exits early (os._exit(0)) before
		// check() runs passes too (docs/EVAL.md).
		passed, err := RunPython(ctx, env, program)
		if err != nil {
			return Scored{}, fmt.Errorf("humaneval %s: %w", s.ID, err)
		}
		return Scored{ID: s.ID, Completion: c, Extracted: answer, Score: boolScore(passed)}, nil
	}
	// Strict: check() must return, proven by a per-sample random nonce the
	// program prints after it; an early exit never prints it.
	nonce := rand.Text()
	program += "\n" + "print(" + strconvQuote(nonceLine(nonce)) + ", flush=True)\n"
	exitOK, stdout, err := runPython(ctx, env, program)
	if err != nil {
		return Scored{}, fmt.Errorf("humaneval %s: %w", s.ID, err)
	}
	passed := exitOK && bytes.Contains(stdout, []byte(nonceLine(nonce)+"\n"))
	return Scored{ID: s.ID, Completion: c, Extracted: answer, Score: boolScore(passed)}, nil
}

func nonceLine(nonce string) string { return "ptb-humaneval-check-returned " + nonce }

// strconvQuote quotes an ASCII string as a Python string literal.
func strconvQuote(s string) string { return "'" + s + "'" }

func (h *humaneval) Metrics(scored []Scored) map[string]any { return accuracyStderr(scored) }

// ErrOutputLimit is returned when a program writes more than the output limit
// (inspect aborts the run in that case).
var ErrOutputLimit = errors.New("program output exceeded 10 MiB")

// HumanEvalLimits bound the sandbox a HumanEval program runs in: the
// completion is the agent's model's output, so a fork bomb, a memory hog
// or a disk fill in it must end the program, not the evaluation or the
// host. Pids leave room for the worker that runs the programs (pyexec).
var HumanEvalLimits = sandbox.Limits{MemoryBytes: 2 << 30, Pids: 256 + 64, TmpBytes: 64 << 20, DiskBytes: 256 << 20, DiskFiles: 10000}

// RunPython runs program with `python -c` through env.Programs, a fresh
// interpreter process in fresh private directories with no network, for at
// most the original's 30 s. It reports whether the exit status was 0; a
// timeout, a signal or a sandbox limit is a failure, not an error.
func RunPython(ctx context.Context, env Env, program string) (bool, error) {
	ok, _, err := runPython(ctx, env, program)
	return ok, err
}

// runPython is RunPython that also returns the program's stdout (up to the
// output limit).
func runPython(ctx context.Context, env Env, program string) (bool, []byte, error) {
	if env.Programs == nil {
		return false, nil, errors.New("humaneval needs a sandbox to run programs; none was configured")
	}
	r, err := env.Programs.Run(ctx, program)
	if err != nil {
		return false, nil, err
	}
	if r.TimedOut || r.Limit != "" {
		return false, nil, nil // incorrect
	}
	if r.OutputExceeded {
		return false, nil, ErrOutputLimit
	}
	return r.Passed(), r.Stdout, nil
}
