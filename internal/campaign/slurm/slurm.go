// Package slurm is the campaign executor for Slurm, driven through its
// CLIs (sbatch, squeue --json, scancel, scontrol), not the per-release REST
// API. Each Submit is one job array per chunk of campaign indices, named
// ptb-CAMPAIGN, whose tasks run `ptb campaign exec --index=N --preempt
// slurm`: --requeue, --open-mode=append and --signal=B:USR1@300 let a
// timed-out or preempted run requeue itself and resume.
//
// The executor keeps two kinds of files in the campaign directory:
//
//	slurm/scripts/*.sbatch  the batch script of each array (sbatch keeps its own copy)
//	slurm/arrays.jsonl      one line per array submitted: job id, index base, indices (for Logs)
//	slurm/logs/A_T.out      the output of array job A's task T (written by Slurm)
package slurm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
)

func init() { campaign.Register("slurm", New) }

// Settings are the executor's part of the campaign file (executor: slurm:).
type Settings struct {
	Partition string `yaml:"partition"`
	Account   string `yaml:"account"`
	QOS       string `yaml:"qos"`
	// GRES names the generic resource (and type) that the campaign's gpus
	// count: "gpu" (default) or e.g. "gpu:a100"; the count is added.
	GRES string `yaml:"gres"`
	// MaxArraySize bounds array task ids (they stay below it); 0 reads the
	// cluster's from `scontrol show config`.
	MaxArraySize int `yaml:"max_array_size"`
	// SignalBefore is how many seconds before the time limit Slurm sends
	// USR1 to ptb (a timeout: ptb stops cleanly and requeues); at most half
	// the time limit. Default 300.
	SignalBefore int `yaml:"timeout_signal_s"`
	// Export names more variables for the allocation's environment (names
	// only; values come from the environment of `ptb campaign up`).
	Export []string `yaml:"export"`
	// SbatchArgs are more sbatch options, one per element
	// ("--constraint=a100"). Options ptb sets itself are refused.
	SbatchArgs []string `yaml:"sbatch_args"`
	// TmpDisk asks for the campaign's disk as node-local --tmp (the nodes
	// must declare TmpDisk).
	TmpDisk bool `yaml:"tmp_disk"`
}

// Executor submits and watches a campaign's jobs on Slurm.
type Executor struct {
	set Settings
}

var _ campaign.Executor = (*Executor)(nil)

var (
	tokenRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.,:+@-]+$`) })
	gresRe  = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(:[A-Za-z0-9_.-]*[A-Za-z_.-][A-Za-z0-9_.-]*)?$`)
	})
	envRe  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	nameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9-]{1,40}$`) })
	// ownOptions are the sbatch options every array gets from ptb.
	ownOptions = []string{"--array", "-a", "--job-name", "-J", "--comment", "--output", "-o", "--error", "-e",
		"--open-mode", "--requeue", "--no-requeue", "--signal", "--export", "--parsable", "--wrap", "--time", "-t",
		"--gres", "--cpus-per-task", "-c", "--mem", "--partition", "-p", "--account", "-A", "--qos", "-q",
		"--nodes", "-N", "--ntasks", "-n", "--dependency", "-d"}
)

// New makes the executor from its settings (nil: defaults).
func New(settings *yaml.Node) (campaign.Executor, error) {
	set, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	return &Executor{set: set}, nil
}

func parseSettings(n *yaml.Node) (Settings, error) {
	set := Settings{GRES: "gpu", SignalBefore: 300}
	if n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return set, nil
	}
	if n.Kind != yaml.MappingNode {
		return set, fmt.Errorf("line %d: slurm: want a mapping of settings (partition, account, qos, gres, max_array_size, timeout_signal_s, export, sbatch_args, tmp_disk)", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		bad := func(format string, a ...any) error {
			return fmt.Errorf("line %d: slurm.%s: %s", v.Line, k.Value, fmt.Sprintf(format, a...))
		}
		var err error
		switch k.Value {
		case "partition", "account", "qos":
			var s string
			if err = v.Decode(&s); err == nil && s != "" && !tokenRe().MatchString(s) {
				return set, bad("%q has a character Slurm names do not use (letters, digits and _.,:+@- only)", s)
			}
			switch k.Value {
			case "partition":
				set.Partition = s
			case "account":
				set.Account = s
			default:
				set.QOS = s
			}
		case "gres":
			if err = v.Decode(&set.GRES); err == nil && !gresRe().MatchString(set.GRES) {
				return set, bad("%q: want the GRES name and optional type, e.g. gpu or gpu:a100 (the count comes from the campaign's gpus)", set.GRES)
			}
		case "max_array_size":
			if err = v.Decode(&set.MaxArraySize); err == nil && set.MaxArraySize < 0 {
				return set, bad("%d: want 0 (read from scontrol show config) or a positive size", set.MaxArraySize)
			}
		case "timeout_signal_s":
			if err = v.Decode(&set.SignalBefore); err == nil && set.SignalBefore < 1 {
				return set, bad("%d: want seconds > 0", set.SignalBefore)
			}
		case "export":
			if err = v.Decode(&set.Export); err == nil {
				for i, e := range set.Export {
					if !envRe().MatchString(e) {
						return set, fmt.Errorf("line %d: slurm.export: %q is not a variable name (names only, never values)", v.Content[i].Line, e)
					}
				}
			}
		case "sbatch_args":
			if err = v.Decode(&set.SbatchArgs); err == nil {
				for i, a := range set.SbatchArgs {
					if err := checkSbatchArg(a); err != nil {
						return set, fmt.Errorf("line %d: slurm.sbatch_args: %v", v.Content[i].Line, err)
					}
				}
			}
		case "tmp_disk":
			err = v.Decode(&set.TmpDisk)
		default:
			return set, fmt.Errorf("line %d: slurm.%s: unknown setting (known: partition, account, qos, gres, max_array_size, timeout_signal_s, export, sbatch_args, tmp_disk)", k.Line, k.Value)
		}
		if err != nil {
			return set, bad("%v", err)
		}
	}
	return set, nil
}

func checkSbatchArg(a string) error {
	if !strings.HasPrefix(a, "-") {
		return fmt.Errorf("%q: want an option such as --constraint=a100", a)
	}
	if strings.ContainsAny(a, "\n\r\x00") {
		return fmt.Errorf("%q has a line break", a)
	}
	name, _, _ := strings.Cut(a, "=")
	if len(name) > 2 && name[1] != '-' { // -pdebug
		name = name[:2]
	}
	if slices.Contains(ownOptions, name) {
		return fmt.Errorf("%q: ptb sets %s itself (use the campaign's settings or this executor's own fields)", a, name)
	}
	return nil
}

// Name is "slurm".
func (e *Executor) Name() string { return "slurm" }

// Check reports whether sbatch, squeue, scancel and scontrol are on PATH
// and slurmctld answers.
func (e *Executor) Check(ctx context.Context) error {
	for _, c := range []string{"sbatch", "squeue", "scancel", "scontrol"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("slurm: %s is not on PATH: run ptb campaign up on a Slurm login node (or install slurm-client)", c)
		}
	}
	out, err := run(ctx, "scontrol", "ping")
	if err != nil {
		return fmt.Errorf("slurm: scontrol ping: %w: is slurmctld running and munge set up on this host?", err)
	}
	if !strings.Contains(string(out), "is UP") {
		return fmt.Errorf("slurm: scontrol ping says %q: slurmctld is not answering", strings.TrimSpace(string(out)))
	}
	return nil
}

// Submit submits the jobs as one job array per chunk of indices below the
// cluster's MaxArraySize. Arrays after the first wait for the one before
// (afterany) when MaxParallel is set, so that the %N throttle holds for
// the whole submission. On an error the arrays already submitted are
// returned with it.
func (e *Executor) Submit(ctx context.Context, s campaign.Submission) ([]campaign.Status, error) {
	if err := checkSubmission(s); err != nil {
		return nil, err
	}
	maxArray := e.set.MaxArraySize
	if maxArray == 0 {
		var err error
		if maxArray, err = clusterMaxArraySize(ctx); err != nil {
			return nil, err
		}
	}
	sd := filepath.Join(s.Dir, "slurm")
	for _, d := range []string{filepath.Join(sd, "scripts"), filepath.Join(sd, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("slurm: make %s: %w", d, err)
		}
	}
	var out []campaign.Status
	prev := 0
	for i, c := range chunks(s.Jobs, maxArray) {
		script := e.script(s, c)
		sum := sha256.Sum256([]byte(script))
		path := filepath.Join(sd, "scripts", fmt.Sprintf("%d-%d-%s.sbatch", c.Jobs[0].Index, c.Jobs[len(c.Jobs)-1].Index, hex.EncodeToString(sum[:6])))
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			return out, fmt.Errorf("slurm: write %s: %w", path, err)
		}
		args := []string{"--parsable"}
		if i > 0 && s.MaxParallel > 0 {
			args = append(args, fmt.Sprintf("--dependency=afterany:%d", prev))
		}
		b, err := run(ctx, "sbatch", append(args, path)...)
		if err != nil {
			return out, fmt.Errorf("slurm: submit %s: %w", path, err)
		}
		idText, _, _ := strings.Cut(strings.TrimSpace(string(b)), ";")
		id, err := strconv.Atoi(idText)
		if err != nil {
			return out, fmt.Errorf("slurm: sbatch --parsable printed %q, want a job id", b)
		}
		prev = id
		rec := arrayRecord{ArrayJobID: id, Base: c.Base, Submitted: time.Now().UTC().Format(time.RFC3339)}
		for _, j := range c.Jobs {
			rec.Indices = append(rec.Indices, j.Index)
			out = append(out, campaign.Status{RunID: j.RunID, BackendID: fmt.Sprintf("%d_%d", id, j.Index-c.Base), State: campaign.StatePending})
		}
		if err := appendRecord(sd, rec); err != nil {
			return out, err
		}
	}
	return out, nil
}

func checkSubmission(s campaign.Submission) error {
	if !nameRe().MatchString(s.Campaign) {
		return fmt.Errorf("slurm: campaign name %q: want 1-40 of a-z, 0-9 and -", s.Campaign)
	}
	for _, p := range []struct{ what, path string }{{"campaign directory", s.Dir}, {"ptb binary", s.Exe}} {
		if !filepath.IsAbs(p.path) {
			return fmt.Errorf("slurm: %s %q is not absolute: allocations start elsewhere", p.what, p.path)
		}
	}
	// #SBATCH lines and --output patterns cannot carry these.
	if strings.ContainsAny(s.Dir, " \t\n\r%\"'\\#") {
		return fmt.Errorf("slurm: campaign directory %q has a space, quote, # or %%, which Slurm's --output pattern cannot carry: choose an output root without", s.Dir)
	}
	if len(s.Jobs) == 0 {
		return errors.New("slurm: no jobs to submit")
	}
	for _, n := range s.PassEnv {
		if !envRe().MatchString(n) {
			return fmt.Errorf("slurm: pass_env %q is not a variable name", n)
		}
	}
	if s.GPUs < 0 || s.CPUs < 0 || s.MemoryMB < 0 || s.DiskMB < 0 || s.MaxParallel < 0 {
		return fmt.Errorf("slurm: negative resources %+v (max_parallel %d)", s.Resources, s.MaxParallel)
	}
	return nil
}

// clusterMaxArraySize reads MaxArraySize from `scontrol show config`.
func clusterMaxArraySize(ctx context.Context) (int, error) {
	b, err := run(ctx, "scontrol", "show", "config")
	if err != nil {
		return 0, fmt.Errorf("slurm: read MaxArraySize: %w (or set max_array_size in the campaign file)", err)
	}
	return parseMaxArraySize(b)
}

func parseMaxArraySize(b []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(k) == "MaxArraySize" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return 0, fmt.Errorf("slurm: scontrol show config: MaxArraySize = %q, want a positive number (or set max_array_size in the campaign file)", strings.TrimSpace(v))
			}
			return n, nil
		}
	}
	return 0, errors.New("slurm: scontrol show config has no MaxArraySize (set max_array_size in the campaign file)")
}

// arrayRecord is one line of slurm/arrays.jsonl.
type arrayRecord struct {
	ArrayJobID int    `json:"array_job_id"`
	Base       int    `json:"base"`
	Indices    []int  `json:"indices"`
	Submitted  string `json:"submitted"`
}

const recordsFile = "arrays.jsonl"

func appendRecord(sd string, rec arrayRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := filepath.Join(sd, recordsFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("slurm: record array %d: %w", rec.ArrayJobID, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("slurm: record array %d in %s: %w", rec.ArrayJobID, path, err)
	}
	return f.Close()
}

// maxRecords bounds slurm/arrays.jsonl as Logs reads it.
const maxRecords = 64 << 20

func readRecords(sd string) ([]arrayRecord, error) {
	path := filepath.Join(sd, recordsFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []arrayRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxRecords)
	for sc.Scan() {
		var r arrayRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line cut short by a crash
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// tasks is the one squeue query of List and Cancel: every array task of
// the campaign that slurmctld still holds (ended ones for MinJobAge).
func (e *Executor) tasks(ctx context.Context, c campaign.Ref) ([]task, map[int]string, error) {
	b, err := run(ctx, "squeue", "--json", "--name="+jobName(c.Campaign))
	if err != nil {
		return nil, nil, fmt.Errorf("slurm: %w", err)
	}
	ts, err := parseSqueue(b, c.Campaign)
	if err != nil {
		return nil, nil, fmt.Errorf("slurm: %w", err)
	}
	entries, err := campaign.ReadIndex(c.Dir)
	if err != nil {
		return nil, nil, err
	}
	ids := make(map[int]string, len(entries))
	for _, en := range entries {
		ids[en.Index] = en.RunID
	}
	return ts, ids, nil
}

// List returns one status per run id that Slurm still holds: its newest
// live task, else its newest ended one. Runs Slurm has forgotten (ended
// longer than MinJobAge ago) are absent: their run directories say how
// they went.
func (e *Executor) List(ctx context.Context, c campaign.Ref) ([]campaign.Status, error) {
	ts, ids, err := e.tasks(ctx, c)
	if err != nil {
		return nil, err
	}
	return statuses(ts, ids), nil
}

func statuses(ts []task, ids map[int]string) []campaign.Status {
	best := map[string]task{}
	var order []string
	for _, t := range ts {
		id, ok := ids[t.Index]
		if !ok {
			continue
		}
		old, seen := best[id]
		switch {
		case !seen:
			order = append(order, id)
		case old.State.Live() && !t.State.Live():
			continue
		case old.State.Live() == t.State.Live() && old.ArrayJobID > t.ArrayJobID:
			continue
		}
		best[id] = t
	}
	out := make([]campaign.Status, 0, len(order))
	for _, id := range order {
		t := best[id]
		out = append(out, campaign.Status{RunID: id, BackendID: t.backendID(), State: t.State, Reason: t.Reason, Restarts: t.Restarts})
	}
	return out
}

// Cancel cancels every live task of the named runs. ptb campaign exec
// answers TERM by requeueing its job (--preempt slurm), and slurmctld
// accepts `scontrol requeue` for a job being cancelled, so each running
// task is first made not requeueable (scontrol update Requeue=0); then
// scancel: Slurm sends TERM to the job, which is ptb campaign exec (the
// batch shell execs it), waits KillWait, then KILL. ptb stops the agent
// cleanly within that time, its requeue is refused, and the run resumes
// when `up` submits it again.
func (e *Executor) Cancel(ctx context.Context, c campaign.Ref, runIDs []string) error {
	ts, ids, err := e.tasks(ctx, c)
	if err != nil {
		return err
	}
	var targets, stuck []string
	for _, t := range ts {
		if !t.State.Live() || !slices.Contains(runIDs, ids[t.Index]) {
			continue
		}
		targets = append(targets, t.backendID())
		if t.State != campaign.StatePending {
			if _, err := run(ctx, "scontrol", "update", "JobId="+t.backendID(), "Requeue=0"); err != nil {
				stuck = append(stuck, fmt.Sprintf("%s (%v)", t.backendID(), err))
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	if _, err := run(ctx, "scancel", targets...); err != nil {
		return fmt.Errorf("slurm: cancel %s: %w", strings.Join(targets, " "), err)
	}
	if len(stuck) > 0 {
		return fmt.Errorf("slurm: cancelled, but could not make %s not requeueable: a job may requeue itself; cancel again once it is pending", strings.Join(stuck, ", "))
	}
	return nil
}

// Logs returns the output files of every array task that ran runID, oldest
// submission first. A requeued task appends to its file.
func (e *Executor) Logs(ctx context.Context, c campaign.Ref, runID string) ([]string, error) {
	entries, err := campaign.ReadIndex(c.Dir)
	if err != nil {
		return nil, err
	}
	en, ok := campaign.Find(entries, 0, runID)
	if !ok {
		return nil, fmt.Errorf("slurm: run %s is not in %s", runID, filepath.Join(c.Dir, campaign.IndexFile))
	}
	recs, err := readRecords(filepath.Join(c.Dir, "slurm"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if !slices.Contains(r.Indices, en.Index) {
			continue
		}
		p := logPath(c.Dir, r.ArrayJobID, en.Index-r.Base)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// run runs a Slurm command and returns its stdout; the error carries its
// stderr (bounded).
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limited{buf: &stderr, n: 4 << 10}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

type limited struct {
	buf *bytes.Buffer
	n   int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
