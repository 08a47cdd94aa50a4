// Package ptbimport converts the result directories of the original
// PostTrainBench harness into ptb run directories, so that `ptb report` can
// rank them beside native runs.
//
// The original lays results out as <method>/<task>_<provider>_<model>_<id>/
// (src/run_task.sh), where <method> is
// <agent>_<agent config>_<hours>h<suffix>, and each run directory holds
// metrics.json, time_taken.txt (H:MM:SS), contamination_judgement.txt,
// disallowed_model_judgement.txt, the raw trace solve_out.txt and its
// rendering solve_parsed.txt, among others.
package ptbimport

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/report"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// Files of an original run directory.
const (
	MetricsFile       = "metrics.json"
	TimeFile          = "time_taken.txt"
	ContaminationFile = "contamination_judgement.txt"
	DisallowedFile    = "disallowed_model_judgement.txt"
	TraceFile         = "solve_out.txt"
	ParsedTraceFile   = "solve_parsed.txt"
	FinalModelDir     = "final_model"
)

// Where the imported files go in the ptb run directory.
const (
	TraceDest      = "trace/solve_out.txt"
	ParsedDest     = "trace/solve_parsed.txt"
	OriginalDir    = "original" // every other top-level file, as it was
	ImportedMarker = "imported from PostTrainBench"
)

// Options tune Import.
type Options struct {
	// Groups maps a method label to the original method directories that are
	// its seeds (like the original's HARDCODED_AGENT_MAP); the seed of a
	// directory is its position in the list. Directories in no group get a
	// label and seed derived from their name (see ParseMethod).
	Groups map[string][]string
	// Workers is how many runs are imported at once; 0 means DefaultWorkers.
	// Each run's files are written by one worker, its result.json last, so
	// that an interrupted import leaves no run directory that looks
	// complete; the output is the same for any number of workers.
	Workers int
}

// DefaultWorkers is the default Options.Workers. Import waits on file
// creation and fsync far more than on the CPU, so it runs more workers
// than there are cores.
const DefaultWorkers = 16

// Summary says what Import did.
type Summary struct {
	Imported int
	Methods  []Method
	Skipped  []string // entries left out, with why
}

// Method is an original method directory and where its runs went.
type Method struct {
	Dir        string // name under the source directory
	Label      string
	Seed       int
	Agent      string // ptb scaffold name
	Variant    string // the original agent directory, when it is not the scaffold's name
	AgentModel string
	Hours      float64
	Runs       int
}

// LoadGroups reads a groups file: YAML or JSON, label -> list of method
// directory names.
func LoadGroups(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read groups: %w", err)
	}
	var g map[string][]string
	if err := yaml.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("groups %s: want a map of label to a list of method directories: %w", path, err)
	}
	return g, nil
}

// agentDirs are the original's agents/ directories, longest first so that a
// prefix match finds the most specific one.
func agentDirs() []string {
	a := []string{
		"claude", "claude_non_api", "claude_non_api_max",
		"codex", "codex_non_api", "codex_non_api_high", "codex_non_api_high_reprompt",
		"codex_non_api_reprompt", "codex_non_api_xhigh", "codex_non_api_xhigh_reprompt",
		"codexhigh", "codexlow", "gemini", "glm5", "opencode", "qwen3max",
	}
	slices.SortFunc(a, func(x, y string) int { return cmp.Compare(len(y), len(x)) })
	return a
}

// scaffold is the agent CLI an original agents/ directory ran: the
// registered agent CLI (one that calls a model) whose name starts it, the
// longest such name.
func scaffold(agentDir string) string {
	best := ""
	for _, i := range agentinfo.All() {
		if i.Provider != nil && strings.HasPrefix(agentDir, i.Name) && len(i.Name) > len(best) {
			best = i.Name
		}
	}
	if best == "" {
		return agentDir
	}
	return best
}

var (
	methodRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.+)_(\d+(?:\.\d+)?)h(.*)$`) })
	seedRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`_(?:run|seed)(\d+)(?:_|$)`) })
)

// ParseMethod derives agent, agent model, hours, label and seed from an
// original method directory name such as "claude_claude-opus-4-6_10h_run2".
// The seed is the number after _run or _seed, or -1 when there is none; the
// label leaves out the experiment suffix, so the seeds of one configuration
// share it.
func ParseMethod(name string) Method {
	m := Method{Dir: name, Hours: 10, Seed: -1}
	prefix, suffix := name, ""
	if sm := methodRe().FindStringSubmatch(name); sm != nil {
		prefix, suffix = sm[1], sm[3]
		m.Hours, _ = strconv.ParseFloat(sm[2], 64)
	}
	agent := ""
	for _, a := range agentDirs() {
		if strings.HasPrefix(prefix, a+"_") {
			agent = a
			break
		}
	}
	if agent == "" {
		agent, m.AgentModel, _ = strings.Cut(prefix, "_")
	} else {
		m.AgentModel = strings.TrimPrefix(prefix, agent+"_")
	}
	m.Agent = scaffold(agent)
	if agent != m.Agent {
		m.Variant = agent
	}
	if sm := seedRe().FindStringSubmatch(suffix); sm != nil {
		m.Seed, _ = strconv.Atoi(sm[1])
	}
	spec := result.Spec{Agent: m.Agent, AgentModel: m.AgentModel, Hours: m.Hours}
	m.Label = report.Label(spec)
	if m.Variant != "" {
		m.Label = strings.TrimSuffix(m.Label, ")") + ", " + m.Variant + ")"
	}
	return m
}

// assignMethods gives every method directory a label and a distinct seed
// within its label.
func assignMethods(dirs []string, groups map[string][]string) ([]Method, error) {
	inGroup := map[string]Method{}
	for _, label := range slices.Sorted(maps.Keys(groups)) {
		for i, d := range groups[label] {
			if _, dup := inGroup[d]; dup {
				return nil, fmt.Errorf("groups: method directory %s is in two groups", d)
			}
			m := ParseMethod(d)
			m.Label, m.Seed = label, i+1
			inGroup[d] = m
		}
	}
	var out []Method
	used := map[string]map[int]bool{}
	var unnumbered []int
	for _, d := range dirs {
		m, ok := inGroup[d]
		if !ok {
			m = ParseMethod(d)
		}
		if used[m.Label] == nil {
			used[m.Label] = map[int]bool{}
		}
		if m.Seed >= 0 && !used[m.Label][m.Seed] {
			used[m.Label][m.Seed] = true
		} else {
			m.Seed = -1
			unnumbered = append(unnumbered, len(out))
		}
		out = append(out, m)
	}
	for _, i := range unnumbered {
		s := 0
		for used[out[i].Label][s] {
			s++
		}
		used[out[i].Label][s] = true
		out[i].Seed = s
	}
	return out, nil
}

// Import converts every run under src (laid out as the original's results
// directory) into a run directory under out/<method>/<run>/ with a
// result.json. As the original's aggregation does, only the run with the
// highest id per (method, task, model) is imported; the others are listed in
// Summary.Skipped.
func Import(ctx context.Context, src, out string, opt Options) (*Summary, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("read results directory: %w", err)
	}
	var dirs []string
	sum := &Summary{}
	for _, e := range entries {
		switch {
		case !e.IsDir():
			continue
		case strings.HasPrefix(e.Name(), "baseline"), strings.HasPrefix(e.Name(), "."):
			sum.Skipped = append(sum.Skipped, e.Name()+": not a method directory (baseline runs come from the baselines file)")
			continue
		}
		dirs = append(dirs, e.Name())
	}
	methods, err := assignMethods(dirs, opt.Groups)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", src, err)
	}
	type job struct {
		method int
		run    origRun
	}
	var jobs []job
	for i := range methods {
		runs, skipped, err := latestRuns(filepath.Join(src, methods[i].Dir))
		if err != nil {
			return nil, err
		}
		sum.Skipped = append(sum.Skipped, skipped...)
		for _, r := range runs {
			jobs = append(jobs, job{i, r})
		}
	}
	errs := runJobs(ctx, len(jobs), cmp.Or(opt.Workers, DefaultWorkers), func(i int) error {
		m, r := methods[jobs[i].method], jobs[i].run
		return importRun(filepath.Join(abs, m.Dir, r.name), filepath.Join(out, m.Dir, r.name), m, r)
	})
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, errs[i] // the first in order, where one at a time would stop
		}
		methods[j.method].Runs++
		sum.Imported++
	}
	sum.Methods = methods
	return sum, nil
}

// runJobs calls do(0), ..., do(n-1) on up to workers goroutines, taking
// jobs in order, and returns their errors. After an error, or once ctx is
// done, it starts no more jobs; those not started get ctx's error, or the
// error that stopped them.
func runJobs(ctx context.Context, n, workers int, do func(i int) error) []error {
	errs := make([]error, n)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if ctx.Err() != nil {
					errs[i] = context.Cause(ctx)
					continue
				}
				if errs[i] = do(i); errs[i] != nil {
					cancel(errs[i])
				}
			}
		})
	}
	wg.Wait()
	return errs
}

type origRun struct {
	name, task, model string
	id                int
}

// latestRuns lists the run directories of a method, keeping the highest id
// per (task, model) as scripts/aggregate_methods.py does.
func latestRuns(dir string) ([]origRun, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read method directory: %w", err)
	}
	latest := map[[2]string]origRun{}
	var skipped []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		r, ok := parseRunDir(e.Name())
		if !ok {
			skipped = append(skipped, filepath.Join(filepath.Base(dir), e.Name())+": not <task>_<provider>_<model>_<id>")
			continue
		}
		k := [2]string{r.task, r.model}
		if old, ok := latest[k]; ok {
			if old.id > r.id {
				skipped = append(skipped, filepath.Join(filepath.Base(dir), r.name)+": superseded by "+old.name)
				continue
			}
			skipped = append(skipped, filepath.Join(filepath.Base(dir), old.name)+": superseded by "+r.name)
		}
		latest[k] = r
	}
	var runs []origRun
	for _, r := range latest {
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b origRun) int { return cmp.Compare(a.name, b.name) })
	return runs, skipped, nil
}

func parseRunDir(name string) (origRun, bool) {
	parts := strings.Split(name, "_")
	if len(parts) != 4 && len(parts) != 3 {
		return origRun{}, false
	}
	id, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		return origRun{}, false
	}
	model := strings.Join(parts[1:len(parts)-1], "/")
	return origRun{name: name, task: parts[0], model: model, id: id}, true
}

// ParseTime reads time_taken.txt's H:MM:SS into seconds.
func ParseTime(s string) (float64, error) {
	p := strings.Split(strings.TrimSpace(s), ":")
	if len(p) != 3 {
		return 0, fmt.Errorf("time %q is not H:MM:SS", s)
	}
	var v [3]int
	for i, x := range p {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 || (i > 0 && n >= 60) {
			return 0, fmt.Errorf("time %q is not H:MM:SS", s)
		}
		v[i] = n
	}
	return float64(v[0]*3600 + v[1]*60 + v[2]), nil
}

// judgement reads one judge file: "flag", "pass" or "unverified" and the
// evidence to record.
func judgement(path, flagLine, passLine string) (string, []string) {
	b, err := readFile(path)
	if err != nil {
		return "unverified", []string{filepath.Base(path) + " is absent or unreadable"}
	}
	line := strings.TrimSpace(string(b))
	switch line {
	case flagLine:
		return "flag", []string{filepath.Base(path) + ": " + line}
	case passLine:
		return "pass", []string{filepath.Base(path) + ": " + line}
	}
	return "unverified", []string{fmt.Sprintf("%s: unexpected content %q", filepath.Base(path), clip(line, 200))}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func importRun(src, dst string, m Method, r origRun) error {
	d := rundir.Dir(dst)
	res := &result.Result{
		Schema: result.Schema,
		RunID:  "posttrainbench:" + m.Dir + "/" + r.name,
		Spec: result.Spec{
			Agent: m.Agent, AgentModel: m.AgentModel, BaseModel: r.model, Benchmark: r.task,
			Hours: m.Hours, Seed: m.Seed, Label: m.Label, EvalBackend: "vllm",
		},
		Stages:   map[string]result.Stage{},
		Flags:    []string{},
		Versions: result.Versions{PTB: "import", Scorer: r.task + "@posttrainbench"},
		Usage:    &result.Usage{Source: "unavailable"},
		Warnings: []string{fmt.Sprintf("%s results: %s (method %s, run id %d)", ImportedMarker, src, m.Dir, r.id)},
	}
	stage := func(name, status, reason string) {
		res.Stages[name] = result.Stage{Status: status, Reason: reason}
	}
	stage(result.StagePrepare, result.StatusDone, "imported")

	// Solve: time_taken.txt.
	finalModel := isDir(filepath.Join(src, FinalModelDir))
	if b, err := readFile(filepath.Join(src, TimeFile)); err == nil {
		secs, perr := ParseTime(string(b))
		res.Solve = &result.Solve{TimeTakenS: secs, BudgetS: m.Hours * 3600, FinalModel: finalModel}
		if perr != nil {
			res.Warnings = append(res.Warnings, TimeFile+": "+perr.Error())
		}
		stage(result.StageSolve, result.StatusDone, "imported")
	} else {
		stage(result.StageSolve, result.StatusFailed, "no "+TimeFile+" (the original's \"not avl.\")")
	}
	if finalModel {
		stage(result.StageCollect, result.StatusDone, "final_model present in the original, not copied")
	} else {
		stage(result.StageCollect, result.StatusSkipped, "no final_model in the original directory")
	}

	// Audit: the two judge files.
	cs, cev := judgement(filepath.Join(src, ContaminationFile), "contamination detected", "no contamination detected")
	ms, mev := judgement(filepath.Join(src, DisallowedFile), "disallowed use detected", "only allowed use detected")
	audit := &result.Audit{Verdict: result.VerdictClean, Flags: []string{}, Findings: []result.Finding{
		{Check: "judge_contamination", Status: cs, Kind: "C", Evidence: cev},
		{Check: "judge_disallowed_model", Status: ms, Kind: "M", Evidence: mev},
	}}
	if cs == "flag" {
		audit.Flags = append(audit.Flags, "C")
	}
	if ms == "flag" {
		audit.Flags = append(audit.Flags, "M")
	}
	switch {
	case len(audit.Flags) > 0:
		audit.Verdict = result.VerdictFlagged
	case cs != "pass" || ms != "pass":
		audit.Verdict = result.VerdictUnverified
	}
	res.Audit, res.Verdict, res.Flags = audit, audit.Verdict, audit.Flags
	stage(result.StageAudit, result.StatusDone, "imported from the original's judge files")

	// Evaluate: metrics.json.
	if acc, metrics, err := readMetrics(filepath.Join(src, MetricsFile)); err == nil {
		res.Evaluation = &result.Evaluation{Task: r.task, Version: "posttrainbench", Backend: "vllm", Metrics: metrics, Accuracy: &acc}
		if se, ok := metrics["stderr"].(float64); ok {
			res.Evaluation.Stderr = &se
		}
		res.Score = &acc
		stage(result.StageEvaluate, result.StatusDone, "imported")
	} else {
		res.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusFailed, Error: err.Error()}
	}
	stage(result.StageRecord, result.StatusDone, "imported")

	// Files.
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("read run directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		var rel string
		switch e.Name() {
		case MetricsFile:
			rel = rundir.MetricsFile
		case TraceFile:
			rel = TraceDest
		case ParsedTraceFile:
			rel = ParsedDest
		case ContaminationFile, DisallowedFile:
			rel = filepath.Join(rundir.AuditDir, e.Name())
		default:
			rel = filepath.Join(OriginalDir, e.Name())
		}
		if err := copyFile(filepath.Join(src, e.Name()), d.Path(rel)); err != nil {
			return err
		}
		if e.Name() == TraceFile {
			if fi, err := e.Info(); err == nil && res.Solve != nil {
				res.Solve.TraceBytes = fi.Size()
			}
		}
	}
	if err := d.WriteJSON(rundir.AuditFile, audit); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	if err := d.WriteJSON(rundir.ResultFile, res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

func readMetrics(path string) (float64, map[string]any, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("no %s (every evaluation attempt failed)", MetricsFile)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", MetricsFile, err)
	}
	acc, ok := m["accuracy"].(float64)
	if !ok {
		return 0, m, fmt.Errorf("%s has no numeric accuracy", MetricsFile)
	}
	return acc, m, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// openFile is os.OpenFile without the netpoller. os.OpenFile offers every
// file to it: two fcntl calls and an epoll_ctl that fails for a regular
// file, on a machine where a system call is dear (os.NewFile still asks
// for the flags once). The files here are read or written whole, blocking,
// as os.File does for regular files anyway.
func openFile(name string, flag int, perm uint32) (*os.File, error) {
	fd, err := openFD(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func openFD(name string, flag int, perm uint32) (int, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, perm)
		switch {
		case err == nil:
			return fd, nil
		case err != syscall.EINTR:
			return -1, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
}

// readFile is os.ReadFile of a small file in open, read and close: four
// system calls against seven.
func readFile(name string) ([]byte, error) {
	fd, err := openFD(name, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: name, Err: err}
		case n == 0:
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	in, err := openFile(src, syscall.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := openFile(dst, syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC, 0o666)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}
