// Package local is the campaign executor for one machine's GPU pool.
//
// Submit records the jobs in DIR/local/state.json and makes sure a detached
// supervisor runs (`ptb campaign supervise --dir DIR`, in a session of its
// own, one per campaign: it holds DIR/local/supervisor.lock). The
// supervisor starts each job as `ptb campaign exec --run-id=ID --preempt
// exit --gpus LIST` when a set of the pool's GPUs is free (0-GPU jobs: up
// to MaxParallel, or the number of CPUs), restarts it when it exits 75
// (requeue), and records its state. Each attempt runs under a keeper
// process (`ptb campaign supervise --keep`) in a session of its own, which
// waits for it and writes its exit status to DIR/local/exit/ID.N, so jobs
// outlive the supervisor and `ptb campaign up`: a supervisor started again
// adopts the running jobs (their process group is alive) and reads the exit
// status of those that ended meanwhile. No run starts twice: one
// supervisor per campaign (its lock), one attempt per job at a time, and
// ptb run's own run lock.
package local

import (
	"context"
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

// Name is the executor's name in a campaign file.
const Name = "local"

func init() { campaign.Register(Name, New) }

// Files under DIR/local.
const (
	Subdir         = "local"
	StateFile      = "state.json"
	stateLock      = "state.lock"
	SupervisorLock = "supervisor.lock"
	SupervisorLog  = "supervisor.log"
	LogsDir        = "logs"
	exitDir        = "exit"
)

var _ campaign.Executor = (*Executor)(nil)

// Executor runs a campaign's jobs on this machine's GPUs.
type Executor struct {
	// GPUs is the pool; nil with Auto: found at Submit from `nvidia-smi -L`
	// or /dev/nvidiaN.
	GPUs []int
	Auto bool
	// Self is the ptb binary that runs the supervisor and the keepers
	// (default os.Executable()).
	Self string
}

// New makes the executor from its settings in the campaign file:
//
//	executor:
//	  local:
//	    gpus: [0, 1, 2, 3]   # or auto (the default): nvidia-smi -L, else /dev/nvidiaN
func New(settings *yaml.Node) (campaign.Executor, error) {
	e := &Executor{Auto: true}
	if settings == nil || settings.Kind == 0 {
		return e, nil
	}
	if settings.Kind == yaml.ScalarNode && settings.Tag == "!!null" {
		return e, nil
	}
	if settings.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: executor local: want a mapping (gpus: [0, 1] or gpus: auto)", settings.Line)
	}
	for i := 0; i+1 < len(settings.Content); i += 2 {
		k, v := settings.Content[i], settings.Content[i+1]
		switch k.Value {
		case "gpus":
			if v.Kind == yaml.ScalarNode && v.Value == "auto" {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: executor local: gpus: want a list of GPU indices ([0, 1, 2, 3]) or auto, got %q", v.Line, v.Value)
			}
			e.Auto, e.GPUs = false, []int{}
			for _, g := range v.Content {
				n, err := strconv.Atoi(g.Value)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("line %d: executor local: gpus: %q is not a GPU index", g.Line, g.Value)
				}
				if slices.Contains(e.GPUs, n) {
					return nil, fmt.Errorf("line %d: executor local: gpus: GPU %d is listed twice", g.Line, n)
				}
				e.GPUs = append(e.GPUs, n)
			}
		default:
			return nil, fmt.Errorf("line %d: executor local: unknown setting %q (known: gpus)", k.Line, k.Value)
		}
	}
	return e, nil
}

func (e *Executor) Name() string { return Name }

func (e *Executor) self() (string, error) {
	if e.Self != "" {
		return e.Self, nil
	}
	return os.Executable()
}

// pool returns the GPU indices to share.
func (e *Executor) pool(ctx context.Context) ([]int, error) {
	if !e.Auto {
		return e.GPUs, nil
	}
	return DetectGPUs(ctx, "nvidia-smi", "/dev")
}

var smiLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^GPU (\d+):`) })
var devLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^nvidia(\d+)$`) })

// DetectGPUs lists this machine's GPU indices from `smi -L`, or, without a
// working nvidia-smi, from devDir/nvidiaN. None is not an error: the pool
// then runs only 0-GPU jobs.
func DetectGPUs(ctx context.Context, smi, devDir string) ([]int, error) {
	out := []int{}
	if _, err := exec.LookPath(smi); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if b, err := exec.CommandContext(ctx, smi, "-L").Output(); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if m := smiLine().FindStringSubmatch(strings.TrimSpace(l)); m != nil {
					n, _ := strconv.Atoi(m[1])
					out = append(out, n)
				}
			}
			return out, nil
		}
	}
	ents, err := os.ReadDir(devDir)
	if err != nil {
		return nil, fmt.Errorf("list GPUs: %w", err)
	}
	for _, d := range ents {
		if m := devLine().FindStringSubmatch(d.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Check reports whether the pool and the ptb binary are usable.
func (e *Executor) Check(ctx context.Context) error {
	self, err := e.self()
	if err != nil {
		return fmt.Errorf("local executor: find the ptb binary: %w", err)
	}
	if _, err := os.Stat(self); err != nil {
		return fmt.Errorf("local executor: the ptb binary %s: %w", self, err)
	}
	if _, err := e.pool(ctx); err != nil {
		return fmt.Errorf("local executor: %w; list the GPUs in the campaign file (executor: local: gpus: [0, 1])", err)
	}
	return nil
}

// Submit records the jobs and starts the supervisor if none runs. A job
// the state already holds live is left as it is (never started twice); an
// ended one is queued again.
func (e *Executor) Submit(ctx context.Context, s campaign.Submission) ([]campaign.Status, error) {
	pool, err := e.pool(ctx)
	if err != nil {
		return nil, err
	}
	if s.GPUs > len(pool) {
		return nil, fmt.Errorf("local executor: a job needs %d GPU(s) but the pool has %d (%v); lower gpus in the campaign file or list more GPUs", s.GPUs, len(pool), pool)
	}
	if !filepath.IsAbs(s.Dir) || !filepath.IsAbs(s.Exe) {
		return nil, fmt.Errorf("local executor: the campaign directory %q and the ptb binary %q must be absolute", s.Dir, s.Exe)
	}
	var out []campaign.Status
	err = update(s.Dir, func(st *State) error {
		st.Pool, st.MaxParallel = pool, s.MaxParallel
		for _, j := range s.Jobs {
			js := st.job(j.RunID)
			if js == nil {
				js = &JobState{RunID: j.RunID, Index: j.Index}
				st.Jobs = append(st.Jobs, js)
			} else if js.State.Live() {
				out = append(out, js.status())
				continue
			}
			js.Exe, js.GPUsPerJob, js.Cancelled, js.Lost = s.Exe, s.GPUs, false, 0
			js.State, js.Reason = campaign.StatePending, "queued"
			out = append(out, js.status())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	self, err := e.self()
	if err != nil {
		return nil, err
	}
	if err := ensureSupervisor(s.Dir, self); err != nil {
		return out, err
	}
	return out, nil
}

// List reads the campaign's state (one read). When jobs are live and no
// supervisor holds the campaign, it starts one: a supervisor killed with
// its jobs still queued comes back on the next `up` or `status`.
func (e *Executor) List(ctx context.Context, c campaign.Ref) ([]campaign.Status, error) {
	st, err := readState(c.Dir)
	if err != nil {
		return nil, err
	}
	out := make([]campaign.Status, 0, len(st.Jobs))
	live := false
	for _, j := range st.Jobs {
		out = append(out, j.status())
		live = live || j.State.Live()
	}
	if live && !supervised(c.Dir) {
		self, err := e.self()
		if err == nil {
			err = ensureSupervisor(c.Dir, self)
		}
		if err != nil {
			return out, fmt.Errorf("local executor: restart the supervisor of %s: %w", c.Dir, err)
		}
	}
	return out, nil
}

// Cancel drops queued jobs and sends TERM to the process group of running
// ones (ptb campaign exec stops the run cleanly; it is not restarted).
// Run ids this executor never got, and ended jobs, are left alone.
func (e *Executor) Cancel(ctx context.Context, c campaign.Ref, runIDs []string) error {
	var errs []error
	err := update(c.Dir, func(st *State) error {
		for _, id := range runIDs {
			j := st.job(id)
			if j == nil {
				continue // never submitted here: nothing to end
			}
			switch j.State {
			case campaign.StatePending:
				j.State, j.Reason, j.Cancelled = campaign.StateFailed, "cancelled before it started", true
			case campaign.StateRunning:
				j.Cancelled, j.Reason = true, "cancelling (TERM sent)"
				if err := syscall.Kill(-j.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
					errs = append(errs, fmt.Errorf("cancel %s: signal process group %d: %w", id, j.PID, err))
				}
			}
		}
		return nil
	})
	return errors.Join(append([]error{err}, errs...)...)
}

// Logs returns the job's log: ptb campaign exec's stdout and stderr, every
// attempt appended.
func (e *Executor) Logs(ctx context.Context, c campaign.Ref, runID string) ([]string, error) {
	p := LogPath(c.Dir, runID)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return []string{p}, nil
}

// LogPath is the log of runID's job.
func LogPath(dir, runID string) string {
	return filepath.Join(dir, Subdir, LogsDir, runID+".log")
}

// State is DIR/local/state.json.
type State struct {
	Pool        []int       `json:"pool"`
	MaxParallel int         `json:"max_parallel,omitempty"`
	Supervisor  int         `json:"supervisor_pid,omitempty"`
	Jobs        []*JobState `json:"jobs"`
}

// JobState is one job in the pool.
type JobState struct {
	RunID      string         `json:"run_id"`
	Index      int            `json:"index"`
	Exe        string         `json:"exe"`
	GPUsPerJob int            `json:"gpus_per_job"`
	State      campaign.State `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	Cancelled  bool           `json:"cancelled,omitempty"`
	// PID is the keeper of the current attempt, the leader of its session
	// and process group (ptb campaign exec runs in that group).
	PID      int    `json:"pid,omitempty"`
	Attempt  int    `json:"attempt"`
	Restarts int    `json:"restarts,omitempty"`
	Lost     int    `json:"lost,omitempty"` // attempts that ended without an exit status
	GPUs     []int  `json:"gpus,omitempty"`
	Exit     *int   `json:"exit,omitempty"`
	Started  string `json:"started_at,omitempty"`
	Ended    string `json:"ended_at,omitempty"`
}

func (j *JobState) status() campaign.Status {
	id := "queued:" + strconv.Itoa(j.Index)
	if j.PID != 0 {
		id = strconv.Itoa(j.PID)
	}
	return campaign.Status{RunID: j.RunID, BackendID: id, State: j.State, Reason: j.Reason, Restarts: j.Restarts}
}

func (s *State) job(id string) *JobState {
	for _, j := range s.Jobs {
		if j.RunID == id {
			return j
		}
	}
	return nil
}

func localDir(dir string) string { return filepath.Join(dir, Subdir) }

// readState reads the state (empty when there is none).
func readState(dir string) (*State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(localDir(dir), StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w (the local executor's state; move it aside to forget the jobs it knows)", filepath.Join(localDir(dir), StateFile), err)
	}
	return &st, nil
}

// update changes the state under its lock and writes it atomically.
func update(dir string, fn func(*State) error) error {
	if err := os.MkdirAll(filepath.Join(localDir(dir), LogsDir), 0o755); err != nil {
		return err
	}
	unlock, err := flock(filepath.Join(localDir(dir), stateLock), true)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(localDir(dir), "."+StateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(localDir(dir), StateFile))
}

// flock takes an exclusive lock on path: waiting, or failing at once
// (syscall.EWOULDBLOCK) when wait is false.
func flock(path string, wait bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// supervised reports whether a supervisor holds the campaign.
func supervised(dir string) bool {
	unlock, err := flock(filepath.Join(localDir(dir), SupervisorLock), false)
	if err != nil {
		return true
	}
	unlock()
	return false
}

// ensureSupervisor starts `self campaign supervise --dir DIR` detached
// (its own session, output to DIR/local/supervisor.log) unless one holds
// the campaign. Two racing starts are harmless: the second supervisor
// finds the lock held and exits.
func ensureSupervisor(dir, self string) error {
	if supervised(dir) {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(localDir(dir), SupervisorLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "campaign", "supervise", "--dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the supervisor: %w", err)
	}
	go cmd.Wait() // reaped if this process lives on; otherwise init does
	return nil
}
