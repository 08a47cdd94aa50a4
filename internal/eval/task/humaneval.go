package task

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
	codePy    = regexp.MustCompile("(?s)```python\n(.*?)```")
	codePlain = regexp.MustCompile("(?s)```\n(.*?)```")
	codeAny   = regexp.MustCompile("(?s)```[A-Za-z0-9_+-]*\r?\n(.*?)```")
)

// FindCode is inspect_evals' find_code: the first ```python block, else the
// first ``` block, cut after the first ":\n    " (dropping the first
// character when there is none); without a block the completion unchanged.
func FindCode(completion string) string {
	var matches []string
	for _, m := range codePy.FindAllStringSubmatch(completion, -1) {
		matches = append(matches, m[1])
	}
	for _, m := range codePlain.FindAllStringSubmatch(completion, -1) {
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
	m := codeAny.FindStringSubmatch(completion)
	if m == nil {
		return completion
	}
	return m[1]
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
		out = append(out, Sample{ID: r.TaskID, Messages: []Message{{"user", HumanEvalInstruction + r.Prompt}}, Target: r.CanonicalSolution, data: r})
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
	nonce, err := newNonce()
	if err != nil {
		return Scored{}, fmt.Errorf("humaneval %s: %w", s.ID, err)
	}
	program += "\n" + "print(" + strconvQuote(nonceLine(nonce)) + ", flush=True)\n"
	exitOK, stdout, err := runPython(ctx, env, program)
	if err != nil {
		return Scored{}, fmt.Errorf("humaneval %s: %w", s.ID, err)
	}
	passed := exitOK && bytes.Contains(stdout, []byte(nonceLine(nonce)+"\n"))
	return Scored{ID: s.ID, Completion: c, Extracted: answer, Score: boolScore(passed)}, nil
}

// newNonce returns 128 random bits in hex.
func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func nonceLine(nonce string) string { return "ptb-humaneval-check-returned " + nonce }

// strconvQuote quotes an ASCII string as a Python string literal.
func strconvQuote(s string) string { return "'" + s + "'" }

func (h *humaneval) Metrics(scored []Scored) map[string]any { return accuracyStderr(scored) }

// ErrOutputLimit is returned when a program writes more than the output limit
// (inspect aborts the run in that case).
var ErrOutputLimit = errors.New("program output exceeded 10 MiB")

type limitedBuffer struct {
	buf      bytes.Buffer
	n        int
	exceeded bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.n += len(p)
	if l.n > HumanEvalOutputLimit {
		l.exceeded = true
		return len(p), nil
	}
	return l.buf.Write(p)
}

// HumanEvalLimits bound one HumanEval program: the completion is the
// agent's model's output, so a fork bomb, a memory hog or a disk fill in
// it must end the program, not the evaluation or the host.
var HumanEvalLimits = sandbox.Limits{MemoryBytes: 2 << 30, Pids: 256, TmpBytes: 64 << 20, DiskBytes: 256 << 20, DiskFiles: 10000}

// RunPython runs `python3 -c program` in env.Sandbox, in a fresh working
// directory with no network, for at most 30 s. It reports whether the exit
// status was 0; a timeout is a failure, not an error.
func RunPython(ctx context.Context, env Env, program string) (bool, error) {
	ok, _, err := runPython(ctx, env, program)
	return ok, err
}

// runPython is RunPython that also returns the program's stdout (up to the
// output limit).
func runPython(ctx context.Context, env Env, program string) (bool, []byte, error) {
	if env.Sandbox == nil {
		return false, nil, errors.New("humaneval needs a sandbox to run programs; none was configured")
	}
	if env.ExecSlots != nil {
		select {
		case env.ExecSlots <- struct{}{}:
			defer func() { <-env.ExecSlots }()
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
	}
	dir, err := os.MkdirTemp(env.TempDir, "ptb-humaneval-")
	if err != nil {
		return false, nil, fmt.Errorf("make work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	ws, home, tmp := filepath.Join(dir, "work"), filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{ws, home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return false, nil, fmt.Errorf("make work dir: %w", err)
		}
	}
	py := env.Python
	if py == "" {
		py = "python3"
	}
	var stdout, stderr limitedBuffer
	spec := sandbox.Spec{
		Argv:      []string{py, "-c", program},
		Env:       []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"},
		Dir:       ws,
		Workspace: ws,
		Home:      home,
		Tmp:       tmp,
		Network:   sandbox.NetworkNone,
		Limits:    HumanEvalLimits,
		Stdout:    &stdout,
		Stderr:    &stderr,
	}
	p, err := env.Sandbox.Start(ctx, spec)
	if err != nil {
		return false, nil, fmt.Errorf("start python: %w", err)
	}
	defer p.Destroy()
	limit := env.ExecTimeout
	if limit <= 0 {
		limit = HumanEvalTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	exit, err := p.Wait(wctx)
	if err != nil {
		_ = p.Stop(time.Second)
		if ctx.Err() != nil {
			return false, nil, ctx.Err()
		}
		return false, nil, nil // timed out: incorrect
	}
	if stdout.exceeded || stderr.exceeded {
		return false, nil, ErrOutputLimit
	}
	return exit.Code == 0 && exit.Signal == "", stdout.buf.Bytes(), nil
}
