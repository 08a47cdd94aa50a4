// Package eval evaluates a model on one PostTrainBench task: it loads the
// task's data, gets a completion for every sample from an inference backend
// (vllm, hf, an OpenAI-compatible url, or recorded responses), scores it the
// way the original harness does and writes metrics.json and samples.jsonl.
// Samples are appended to samples.jsonl as they complete, so an interrupted
// evaluation resumes where it stopped.
package eval

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/fsutil"
	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/schollz/progressbar/v3"
)

// Judge grades ArenaHard and HealthBench answers (see package judge).
type Judge = judge.Judge

// Backends.
const (
	BackendVLLM   = "vllm"
	BackendHF     = "hf"
	BackendURL    = "url"
	BackendReplay = "replay"
)

// Output files inside Options.OutDir.
const (
	MetricsFile = "metrics.json"
	SamplesFile = "samples.jsonl"
	ServerLog   = "server.log"
	StateFile   = "eval.json" // which task and version the samples belong to
)

// Retry ladders (spec 1.2).
const (
	// LadderFaithful is run_task.sh's: an attempt that fails is thrown away
	// and the whole set runs again (up to 4, 3, 2 attempts at the three
	// max-token settings), each attempt bounded by 8 h, each request by the
	// original's timeout.
	LadderFaithful = "faithful"
	// LadderPerSample keeps the samples an attempt finished and retries only
	// the rest; final metrics can then mix settings (each sample records its
	// own).
	LadderPerSample = "per-sample"
)

// attemptTimeout bounds one attempt of the faithful ladder (run_task.sh's
// `timeout 28800s`).
var attemptTimeout = 28800 * time.Second

// Per-request timeouts of the original: ArenaHard and HealthBench use
// requests with timeout=300; inspect's are effectively infinite (the
// attempt's bound applies).
const scriptRequestTimeout = 300 * time.Second

// DefaultConcurrency is the batch a vLLM server usually runs (max_num_seqs)
// and the floor of adaptive concurrency. Left at the default, concurrency
// adapts (see limiter): it starts at AdaptiveStart and grows while
// throughput grows, up to MaxAdaptiveConcurrency.
const DefaultConcurrency = 256

// Options configure one evaluation. Its parts are embedded, so each field
// is also reached directly (o.Limit, o.Backend).
type Options struct {
	Task, Version string // Version "" = default (faithful)
	OutDir        string // metrics.json, samples.jsonl, server.log go here
	// Sandbox runs HumanEval programs and the vllm and hf backends' server
	// (sandboxed.go); the none backend is recorded as unsandboxed.
	Sandbox sandbox.Backend
	Judge   Judge
	// Pinned fetches and verifies the templates and judge prompts; nil: the
	// default store (cache under $PTB_CACHE/pinned, $PTB_PINNED_BASE_URL).
	Pinned *pinned.Store

	Target   // what is evaluated, and how it is reached
	Data     // where the benchmark's data comes from, and how much of it
	Requests // how the chat requests are made
	Server   // the inference server ptb starts (vllm, hf backends)
	Programs // HumanEval's programs

	lim      *limiter           // set by Run: the requests in flight, shared by its attempts
	tmplPath string             // the verified --chat-template file (resolveTemplate)
	programs task.ProgramRunner // runs HumanEval's programs (startPrograms)
}

// Target is the model an evaluation scores and how it is reached.
type Target struct {
	Backend         string // "vllm" | "hf" | "url" | "replay"
	ModelPath       string // final_model dir (vllm, hf)
	BaseURL, APIKey string // url backend
	Model           string // served model name (url); "" = the first of /models
	Responses       string // replay backend: responses JSONL
	// BaseModel is the job's base model: it chooses the chat template, as
	// the original's path did. nil: chosen by final_model's directory name
	// or config.json (recorded as such).
	BaseModel *registry.Model
}

// Data is where an evaluation's benchmark data comes from.
type Data struct {
	DataDir  string // optional local dataset root laid out like shared/datasets; "" = $PTB_DATA_DIR, then cache, shipped, hub
	CacheDir string // hub cache ("" = $PTB_CACHE or the user cache dir)
	Offline  bool   // use the hub cache only
	Limit    int    // first N samples; 0 = all
	Seed     uint32 // GPQA choice shuffle
}

// Requests is how an evaluation's chat requests are made.
type Requests struct {
	MaxTokens   int       // 0 = the retry ladder of the original (spec 1.2)
	Ladder      string    // LadderFaithful ("" too) or LadderPerSample
	Concurrency int       // requests in flight; 0 = adaptive, from DefaultConcurrency
	Progress    io.Writer // progress bar target (stderr); nil = none
	// HTTP is the client for the url backend's requests (nil = a default
	// one); a server ptb starts is reached over its own socket.
	HTTP *http.Client
	// Sleep replaces real waits between retries (tests).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Server is the inference server an evaluation starts (vllm, hf backends).
type Server struct {
	// GPUs are the device indices the server may use; Hidden are host paths
	// it must not see (the evaluation data, other runs); ServerEnv adds
	// KEY=VALUE (or KEY, from the host) to its allowlisted environment.
	GPUs      []int
	Hidden    []string
	ServerEnv []string
	// PTB is the ptb binary that relays the server's socket inside the
	// sandbox (`ptb sandbox-init`); "" = this executable.
	PTB string
	// VLLM is the vllm executable ("" = vllm on PATH).
	VLLM string
	// HFPython is the interpreter, with torch and transformers, that runs the
	// hf backend's server ("" = python3).
	HFPython string
	// TemplatesDir holds offline copies of the pinned chat templates
	// (qwen3.jinja, ...), each checked against its pinned digest; "" = the
	// pinned store (Pinned). The server always gets ptb's pinned template,
	// never final_model's own.
	TemplatesDir string
}

// Programs is how HumanEval's programs run.
type Programs struct {
	// Python is the interpreter for HumanEval programs ("" = python3),
	// found on the harness's PATH before sandboxing (programs.go).
	Python string
	// ProgramSandboxes is how many long-lived sandboxes run HumanEval
	// programs, one program each at a time (0 = one per CPU).
	ProgramSandboxes int
	// ProgramTimeout bounds one HumanEval program (0 = the original's 30 s).
	ProgramTimeout time.Duration
	// ProgramTempDir holds the program sandboxes' directories ("" =
	// os.TempDir()).
	ProgramTempDir string
}

// Summary is the outcome of an evaluation.
type Summary struct {
	Task     string         `json:"task"`
	Version  string         `json:"version"`
	Backend  string         `json:"backend"`
	Metrics  map[string]any `json:"metrics"`
	Accuracy float64        `json:"accuracy"`
	Stderr   float64        `json:"stderr"`
	Samples  int            `json:"samples"`
	Scored   int            `json:"scored"`
	Missing  int            `json:"missing,omitempty"` // replay: samples without a recorded response (scored as empty)
	OutDir   string         `json:"out_dir,omitempty"`
	// ChatTemplate is the template the server ptb started was given; nil
	// for the url and replay backends.
	ChatTemplate *TemplateRecord `json:"chat_template,omitempty"`
	// Server is the inference server ptb started (vllm, hf backends).
	Server *ServerRecord `json:"server,omitempty"`
	// Programs is the interpreter that ran HumanEval's programs.
	Programs *ProgramsRecord `json:"programs,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
}

// Run evaluates o.Task and writes o.OutDir. It returns an error, and writes
// no metrics.json, when the evaluation cannot complete (as the original).
func Run(ctx context.Context, o Options) (*Summary, error) {
	tk, err := task.New(o.Task, o.Version, task.Config{Seed: o.Seed, Prompts: prompts{store: o.store(), dataDir: o.DataDir}})
	if err != nil {
		return nil, err
	}
	info := tk.Info()
	o.lim = newLimiter(o.Concurrency)
	if info.Sandbox && o.Sandbox == nil {
		return nil, fmt.Errorf("task %s runs generated programs and needs a sandbox; none was given", info.Name)
	}
	if info.Judge && o.Judge == nil {
		return nil, fmt.Errorf("task %s is graded by %s and needs a judge: set OPENAI_API_KEY or a grading endpoint", info.Name, judge.Model)
	}
	if o.OutDir == "" {
		return nil, errors.New("no output directory given")
	}
	switch o.Ladder {
	case "":
		o.Ladder = LadderFaithful
	case LadderFaithful, LadderPerSample:
	default:
		return nil, fmt.Errorf("unknown ladder %q (want %s or %s)", o.Ladder, LadderFaithful, LadderPerSample)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("make output directory: %w", err)
	}
	if err := checkState(o.OutDir, info, o.MaxTokens, o.Ladder); err != nil {
		return nil, err
	}
	src := o.source()
	var samples []task.Sample
	if fl, ok := tk.(task.FirstLoader); ok && o.Limit > 0 {
		samples, err = fl.LoadFirst(ctx, src, o.Limit)
	} else {
		samples, err = tk.Load(ctx, src)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", info.Name, err)
	}
	if o.Limit > 0 && o.Limit < len(samples) {
		samples = samples[:o.Limit]
	}
	done, err := readScored(filepath.Join(o.OutDir, SamplesFile))
	if err != nil {
		return nil, err
	}
	var todo []task.Sample
	for _, s := range samples {
		if _, ok := done[s.ID]; !ok {
			todo = append(todo, s)
		}
	}
	sum := &Summary{Task: info.Name, Version: info.Version, Backend: o.Backend, Samples: len(samples), OutDir: o.OutDir}
	if len(todo) > 0 {
		if o.startsServer() {
			rec, err := o.resolveTemplate(ctx, info)
			if err != nil {
				return nil, err
			}
			o.tmplPath, sum.ChatTemplate = rec.Path, rec
			if rec.ChosenBy == ChosenByConfig && o.Progress != nil {
				fmt.Fprintf(o.Progress, "chat template %s chosen by %s's name or config.json (no base model given)\n", rec.File, o.ModelPath)
			}
		}
		if info.Sandbox {
			pool, rec, err := o.startPrograms(ctx)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			if err := o.notePrograms(rec); err != nil {
				return nil, err
			}
			o.programs = pool
		}
		gen, stop, err := o.generator(ctx, info)
		if err != nil {
			return nil, err
		}
		defer stop()
		var missing int
		if o.Ladder == LadderPerSample {
			missing, err = o.runLadder(ctx, tk, info, todo, len(samples)-len(todo), len(samples), gen)
		} else {
			missing, err = o.runFaithful(ctx, tk, info, samples, done, gen)
		}
		sum.Missing = missing
		if err != nil {
			return nil, err
		}
	}
	if o.startsServer() {
		// The last server that answered (none started when every sample
		// was done already).
		if rec := recordedServer(o.OutDir); rec != nil && rec.Backend == o.Backend {
			sum.Server, sum.Warnings = rec, rec.Warnings()
		}
	}
	if info.Sandbox {
		if st := recordedState(o.OutDir); st != nil {
			sum.Programs = st.Programs
		}
	}
	done, err = readScored(filepath.Join(o.OutDir, SamplesFile))
	if err != nil {
		return nil, err
	}
	scored := make([]task.Scored, 0, len(samples))
	for _, s := range samples {
		sc, ok := done[s.ID]
		if !ok {
			return nil, fmt.Errorf("sample %s has no score after the evaluation", s.ID)
		}
		scored = append(scored, sc)
	}
	sum.Scored = len(scored)
	sum.Metrics = tk.Metrics(scored)
	sum.Accuracy, _ = sum.Metrics["accuracy"].(float64)
	sum.Stderr, _ = sum.Metrics["stderr"].(float64)
	if err := fsutil.WriteFileAtomic(filepath.Join(o.OutDir, MetricsFile), MetricsJSON(sum.Metrics), 0o644); err != nil {
		return nil, fmt.Errorf("write metrics: %w", err)
	}
	return sum, nil
}

// source is the data-location rule (dataset.Locate): --data-dir, then
// $PTB_DATA_DIR, then the cache, then the shipped files, then the hub.
func (o Options) source() dataset.Source {
	return dataset.Locate(o.DataDir, o.CacheDir, o.Offline)
}

// generator returns how outputs are obtained: from the backend
// registered under o.Backend (backend.go).
func (o Options) generator(ctx context.Context, info task.Info) (generator, func(), error) {
	timeout := 8 * time.Hour
	if o.Ladder != LadderPerSample && info.Style == task.StyleScript {
		timeout = scriptRequestTimeout
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: timeout, Transport: transport(o.concurrency())}
	}
	b, err := LookupBackend(o.Backend)
	if err != nil {
		return nil, nil, err
	}
	return b.Open(ctx, o, info, hc, timeout)
}

func (o Options) clientGenerator(ctx context.Context, hc *http.Client, base, key, model string, info task.Info, recover func(context.Context) error) (generator, func(), error) {
	if model == "" {
		m, err := servedModel(ctx, hc, base, key)
		if err != nil {
			return nil, nil, err
		}
		model = m
	}
	c := &Client{BaseURL: base, APIKey: key, Model: model, HTTP: hc, Sleep: o.Sleep, Recover: recover}
	if o.lim != nil {
		c.Overloaded = o.lim.backoff
		c.slots = o.lim
		if o.lim.adaptive {
			c.Warm(ctx, o.lim.Limit())
		}
	}
	return func(ctx context.Context, s task.Sample, mt int) (task.Output, bool, error) {
		out, err := c.Chat(ctx, s, mt, info.Style)
		return out, true, err
	}, func() {}, nil
}

// concurrency is the most requests that can be in flight.
func (o Options) concurrency() int {
	if o.Concurrency <= 0 {
		return MaxAdaptiveConcurrency
	}
	return o.Concurrency
}

// transport keeps one idle connection per worker: the default transport keeps
// two per host, so at high concurrency nearly every request would dial anew
// and leave a socket in TIME_WAIT.
func transport(conc int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = conc
	return t
}

type phase struct{ tokens, attempts int }

// phases are the ladder's settings: the task's three, or --max-tokens once;
// one attempt for replayed completions.
func (o Options) phases(info task.Info) []phase {
	var phases []phase
	if o.MaxTokens > 0 {
		phases = []phase{{o.MaxTokens, 1}}
	} else {
		for i := range info.MaxTokens {
			phases = append(phases, phase{info.MaxTokens[i], info.Attempts[i]})
		}
	}
	if o.replays() {
		phases = phases[:1]
		phases[0].attempts = 1
	}
	return phases
}

// FailedAttemptFile names where the faithful ladder moves the samples of
// failed attempt n (1-based) in OutDir; they are kept for inspection and
// never scored.
func FailedAttemptFile(n int) string { return fmt.Sprintf("samples.failed-%d.jsonl", n) }

// runFaithful is run_task.sh's ladder: each attempt runs the whole set at
// its phase's max tokens; a failed attempt's samples are set aside and the
// next attempt starts from nothing. An evaluation resumed after a crash
// continues the attempt its samples belong to (all made at one setting);
// samples of mixed or unknown settings are set aside.
func (o Options) runFaithful(ctx context.Context, tk task.Task, info task.Info, samples []task.Sample, done map[string]task.Scored, gen generator) (int, error) {
	phases := o.phases(info)
	path := filepath.Join(o.OutDir, SamplesFile)
	start := 0
	keep := done
	if len(done) > 0 && !o.replays() {
		start = -1
		for i, ph := range phases {
			same := true
			for _, sc := range done {
				same = same && sc.MaxTokens == ph.tokens
			}
			if same {
				start = i
				break
			}
		}
		if start < 0 {
			start, keep = 0, nil
			if err := o.setAside(path); err != nil {
				return 0, err
			}
		}
	}
	env := task.Env{Programs: o.programs, Judge: limitJudge(o.Judge, 64), Sleep: o.Sleep}
	var lastErr error
	missing := 0
	for pi := start; pi < len(phases); pi++ {
		ph := phases[pi]
		for attempt := 0; attempt < ph.attempts; attempt++ {
			if lastErr != nil {
				if o.Progress != nil {
					fmt.Fprintf(o.Progress, "\nattempt failed (%v); running the whole set again with max_tokens %d\n", lastErr, ph.tokens)
				}
				if err := o.setAside(path); err != nil {
					return missing, err
				}
				keep = nil
			}
			var todo []task.Sample
			for _, s := range samples {
				if _, ok := keep[s.ID]; !ok {
					todo = append(todo, s)
				}
			}
			if len(todo) == 0 {
				return missing, nil
			}
			miss, err := o.faithfulAttempt(ctx, tk, info, env, todo, len(samples)-len(todo), len(samples), ph.tokens, gen)
			missing += miss
			if err == nil {
				return missing, nil
			}
			if ctx.Err() != nil {
				return missing, ctx.Err()
			}
			lastErr = err
		}
	}
	return missing, fmt.Errorf("evaluation of %s failed in every attempt of the ladder (no metrics, as in the original): %w", info.Name, lastErr)
}

// faithfulAttempt runs one attempt under the attempt timeout.
func (o Options) faithfulAttempt(ctx context.Context, tk task.Task, info task.Info, env task.Env, todo []task.Sample, already, total, tokens int, gen generator) (int, error) {
	actx, cancel := context.WithTimeoutCause(ctx, attemptTimeout, fmt.Errorf("attempt ran past %s", attemptTimeout))
	defer cancel()
	f, err := os.OpenFile(filepath.Join(o.OutDir, SamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open samples: %w", err)
	}
	defer f.Close()
	bar := newBar(o.Progress, total, already, info.Name)
	left, miss, err := o.runOnce(actx, tk, env, todo, tokens, gen, f, bar)
	if bar != nil {
		_ = bar.Finish()
		if isTerminal(o.Progress) {
			fmt.Fprintln(o.Progress) // end the bar's line
		}
	}
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("%d samples left", len(left))
	}
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		err = context.Cause(actx)
	}
	return miss, err
}

// setAside moves samples.jsonl to the next samples.failed-N.jsonl.
func (o Options) setAside(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return os.Remove(path)
	}
	for n := 1; ; n++ {
		dst := filepath.Join(o.OutDir, FailedAttemptFile(n))
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			if err := os.Rename(path, dst); err != nil {
				return fmt.Errorf("set aside failed attempt: %w", err)
			}
			return nil
		}
	}
}

// runLadder generates and scores todo, phase by phase of the retry ladder
// (spec 1.2), at sample granularity: samples finished in an attempt are kept
// and only the rest are retried, with fewer max tokens in later phases.
func (o Options) runLadder(ctx context.Context, tk task.Task, info task.Info, todo []task.Sample, already, total int, gen generator) (int, error) {
	phases := o.phases(info)
	f, err := os.OpenFile(filepath.Join(o.OutDir, SamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open samples: %w", err)
	}
	defer f.Close()
	bar := newBar(o.Progress, total, already, info.Name)
	env := task.Env{Programs: o.programs, Judge: limitJudge(o.Judge, 64), Sleep: o.Sleep}
	var lastErr error
	missing := 0
	for _, ph := range phases {
		for attempt := 0; attempt < ph.attempts && len(todo) > 0; attempt++ {
			if lastErr != nil && o.Progress != nil {
				if isTerminal(o.Progress) {
					fmt.Fprintln(o.Progress) // end the bar's line
				}
				fmt.Fprintf(o.Progress, "retrying %d samples with max_tokens %d after: %v\n", len(todo), ph.tokens, lastErr)
			}
			left, miss, err := o.runOnce(ctx, tk, env, todo, ph.tokens, gen, f, bar)
			missing += miss
			todo = left
			if err == nil {
				lastErr = nil
				continue
			}
			if ctx.Err() != nil {
				return missing, ctx.Err()
			}
			lastErr = err
		}
	}
	if bar != nil {
		_ = bar.Finish()
		if isTerminal(o.Progress) {
			fmt.Fprintln(o.Progress)
		}
	}
	if len(todo) > 0 {
		return missing, fmt.Errorf("evaluation of %s failed with %d samples left: %w", info.Name, len(todo), lastErr)
	}
	return missing, nil
}

// runOnce processes todo with a worker pool; the first sample error stops new
// work (as a sample exception aborts the original) and is returned with the
// samples not yet done. lim.start bounds the samples in progress (the slots
// and a few more); the Client takes a slot of lim for each request it sends.
func (o Options) runOnce(ctx context.Context, tk task.Task, env task.Env, todo []task.Sample, maxTokens int, gen generator, f *os.File, bar progressSink) ([]task.Sample, int, error) {
	lim := o.lim
	if lim == nil {
		lim = newLimiter(o.Concurrency)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		finished = make(map[string]bool)
		missing  int
	)
	var wg sync.WaitGroup
	for _, s := range todo {
		if lim.start(ctx) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lim.finish()
			sc, miss, err := o.one(ctx, tk, env, s, maxTokens, gen)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			line, _ := json.Marshal(sc)
			if _, werr := f.Write(append(line, '\n')); werr != nil && firstErr == nil {
				firstErr = fmt.Errorf("append sample: %w", werr)
				cancel()
			}
			finished[s.ID] = true
			if miss {
				missing++
			}
			if bar != nil {
				_ = bar.Add(1)
			}
		}()
	}
	wg.Wait()
	var left []task.Sample
	for _, s := range todo {
		if !finished[s.ID] {
			left = append(left, s)
		}
	}
	if firstErr == nil && len(left) > 0 {
		firstErr = context.Cause(ctx)
		if firstErr == nil {
			firstErr = errors.New("interrupted")
		}
	}
	return left, missing, firstErr
}

func (o Options) one(ctx context.Context, tk task.Task, env task.Env, s task.Sample, maxTokens int, gen generator) (task.Scored, bool, error) {
	out, ok, err := gen(ctx, s, maxTokens)
	if err != nil {
		return task.Scored{}, false, err
	}
	sc, err := tk.Score(ctx, env, s, out)
	if err != nil {
		return task.Scored{}, false, err
	}
	sc.ID = s.ID
	sc.Output = &out
	if !o.replays() {
		sc.MaxTokens = maxTokens
	}
	return sc, !ok, nil
}

// progressSink counts finished samples: a redrawn bar on a terminal, plain
// lines elsewhere (a log gets no carriage-return frames).
type progressSink interface {
	Add(n int) error
	Finish() error
}

func newBar(w io.Writer, total, already int, name string) progressSink {
	if w == nil {
		return nil
	}
	if !isTerminal(w) {
		return &lineProgress{w: w, name: name, total: total, done: already, start: time.Now(), every: 30 * time.Second}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("samples"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
	)
	_ = bar.Set(already)
	return bar
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lineProgress writes "gsm8k: 300/1319 samples (23%), 12.5 samples/s" at
// every tenth of the work or every interval, whichever comes first, and at
// the end; one unit (samples) throughout.
type lineProgress struct {
	mu          sync.Mutex
	w           io.Writer
	name        string
	total, done int
	start, last time.Time
	every       time.Duration
	lastTenth   int
	added       int
}

func (p *lineProgress) Add(n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.added += n
	tenth := 0
	if p.total > 0 {
		tenth = 10 * p.done / p.total
	}
	if tenth > p.lastTenth || time.Since(p.last) >= p.every {
		p.lastTenth = tenth
		p.line()
	}
	return nil
}

func (p *lineProgress) Finish() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line()
	return nil
}

func (p *lineProgress) line() {
	p.last = time.Now()
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	rate := float64(p.added) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "%s: %d/%d samples (%.0f%%), %.1f samples/s\n", p.name, p.done, p.total, pct, rate)
}

// limitJudge bounds concurrent grading calls (the original uses 64 threads).
func limitJudge(j Judge, n int) Judge {
	if j == nil {
		return nil
	}
	return &limitedJudge{j: j, sem: make(chan struct{}, n)}
}

type limitedJudge struct {
	j   Judge
	sem chan struct{}
}

func (l *limitedJudge) Complete(ctx context.Context, req judge.Request) (string, error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-l.sem }()
	return l.j.Complete(ctx, req)
}

// state is eval.json: what the samples in the directory belong to. A
// directory never mixes tasks, versions or generation lengths.
type state struct {
	Task      string `json:"task"`
	Version   string `json:"version"`
	MaxTokens int    `json:"max_tokens_override,omitempty"` // --max-tokens; 0: the retry ladder
	Ladder    string `json:"ladder,omitempty"`              // faithful | per-sample ("": faithful)
	// Server is the last inference server ptb started for these samples.
	Server *ServerRecord `json:"server,omitempty"`
	// Programs is the interpreter that last ran HumanEval's programs.
	Programs *ProgramsRecord `json:"programs,omitempty"`
}

func checkState(dir string, info task.Info, maxTokens int, ladder string) error {
	p := filepath.Join(dir, StateFile)
	samples := filepath.Join(dir, SamplesFile)
	var st state
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if json.Unmarshal(b, &st) != nil || st.Task != info.Name || st.Version != info.Version {
			return fmt.Errorf("%s holds results of task %s version %s, not %s %s; use another --out directory", dir, st.Task, st.Version, info.Name, info.Version)
		}
		if st.MaxTokens != maxTokens {
			return fmt.Errorf("%s holds results made with max tokens %s, not %s; use another --out directory or the same --max-tokens", dir, tokensName(st.MaxTokens), tokensName(maxTokens))
		}
		if got := cmp.Or(st.Ladder, LadderFaithful); got != ladder {
			return fmt.Errorf("%s holds results of the %s ladder, not %s; use another --out directory or the same --ladder", dir, got, ladder)
		}
		return trimTornTail(samples)
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(samples); err == nil {
			return fmt.Errorf("%s has %s but no %s saying what produced it; use another --out directory", dir, SamplesFile, StateFile)
		}
		b, _ := json.MarshalIndent(state{Task: info.Name, Version: info.Version, MaxTokens: maxTokens, Ladder: ladder}, "", "  ")
		return fsutil.WriteFileAtomic(p, append(b, '\n'), 0o644)
	}
	return fmt.Errorf("read %s: %w", p, err)
}

func tokensName(n int) string {
	if n == 0 {
		return "from the retry ladder"
	}
	return strconv.Itoa(n)
}

// trimTornTail cuts a last line that a crash left half-written, so that the
// records appended on resume start on a line of their own.
func trimTornTail(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	// Scan back for the last newline, a block at a time.
	end := fi.Size()
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		n := int64(len(buf))
		if n > pos {
			n = pos
		}
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if pos+int64(i)+1 == end {
				return nil // ends with a whole line
			}
			return f.Truncate(pos + int64(i) + 1)
		}
	}
	return f.Truncate(0)
}

// readScored reads samples.jsonl; a torn last line (crash mid-write) is ignored.
func readScored(path string) (map[string]task.Scored, error) {
	out := map[string]task.Scored{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 && err == nil {
			var sc task.Scored
			if jerr := json.Unmarshal(line, &sc); jerr != nil {
				return nil, fmt.Errorf("read samples: %w (delete the line to redo that sample)", lineError(path, n, jerr))
			}
			out[sc.ID] = sc
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read samples: %w", err)
		}
	}
}

// ReadResponses reads a replay file: one JSON object per line with "id" and
// "completion", or "tool_calls" in OpenAI message shape. An id may be a JSON
// string or number; an id given twice is an error naming both lines.
func ReadResponses(path string) (map[string]task.Output, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open responses: %w", err)
	}
	defer f.Close()
	out := map[string]task.Output{}
	first := map[string]int{} // id -> line
	r := bufio.NewReaderSize(f, 1<<20)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec struct {
				ID         json.RawMessage `json:"id"`
				Completion *string         `json:"completion"`
				Content    *string         `json:"content"`
				ToolCalls  []task.ToolCall `json:"tool_calls"`
			}
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				return nil, fmt.Errorf("%w (want {\"id\": ..., \"completion\": ...})", lineError(path, n, jerr))
			}
			id := string(bytes.TrimSpace(rec.ID))
			var s string
			if json.Unmarshal(rec.ID, &s) == nil {
				id = s
			}
			if id == "" || id == "null" {
				return nil, fmt.Errorf("%s:%d: no id", path, n)
			}
			if prev, dup := first[id]; dup {
				return nil, fmt.Errorf("%s:%d: duplicate id %q (first on line %d); keep one response per sample", path, n, id, prev)
			}
			first[id] = n
			o := task.Output{ToolCalls: rec.ToolCalls}
			if rec.Completion != nil {
				o.Content = *rec.Completion
			} else if rec.Content != nil {
				o.Content = *rec.Content
			}
			out[id] = o
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read responses: %w", err)
		}
	}
}

// lineError locates a JSON error in one line of a JSONL file:
// "path:line:column: err".
func lineError(path string, line int, err error) error {
	if off, ok := jsonpos.Offset(err); ok {
		return fmt.Errorf("%s:%d:%d: %w", path, line, max(off, 1), err)
	}
	return fmt.Errorf("%s:%d: %w", path, line, err)
}

// metricsOrder puts the headline keys first, as the original writes them.
var metricsOrder = []string{"accuracy", "stderr", "n_examples", "total_grader_calls", "by_theme", "by_axis"}

// MetricsJSON renders metrics like Python's json.dump(indent=2): headline
// keys first, floats as Python writes them.
func MetricsJSON(m map[string]any) []byte {
	var b bytes.Buffer
	writeIndented(&b, m, "", metricsOrder)
	b.WriteByte('\n')
	return b.Bytes()
}

func writeIndented(b *bytes.Buffer, v any, indent string, order []string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}")
			return
		}
		var keys []string
		seen := map[string]bool{}
		for _, k := range order {
			if _, ok := x[k]; ok {
				keys = append(keys, k)
				seen[k] = true
			}
		}
		var rest []string
		for k := range x {
			if !seen[k] {
				rest = append(rest, k)
			}
		}
		sort.Strings(rest)
		keys = append(keys, rest...)
		b.WriteString("{\n")
		for i, k := range keys {
			kb, _ := json.Marshal(k)
			b.WriteString(indent + "  ")
			b.Write(kb)
			b.WriteString(": ")
			writeIndented(b, x[k], indent+"  ", nil)
			if i < len(keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case float64:
		b.WriteString(pytext.FloatRepr(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	default:
		jb, _ := json.Marshal(x)
		b.Write(jb)
	}
}
