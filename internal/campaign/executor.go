// Package campaign runs a PostTrainBench study: the matrix of agents, base
// models, benchmarks and seeds declared in one campaign file, each cell a
// `ptb run --run-id ID` job submitted to an executor (a local GPU pool,
// Slurm, HTCondor or Kubernetes). The run directories under the output root
// stay the only truth: `ptb campaign up` reconciles them with what the
// executor reports, and doing it again is safe.
//
// This file is the contract between the campaign engine and the executors.
// Each executor is a package of its own (campaign/local, campaign/slurm,
// campaign/htcondor, campaign/kube) that registers a Factory under its name
// in init; internal/cli imports them for that side effect only. Every
// executor passes the contract suite in campaign/campaigntest.
package campaign

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Exit statuses of `ptb campaign exec` and `ptb run --run-id` that executors
// act on (besides ptb run's own 0-4 and 128+signal).
const (
	// ExitBusy: the run directory's lock is held by another ptb; the run is
	// running elsewhere and must not be started twice.
	ExitBusy = 5
	// ExitRequeue: the run was stopped cleanly by a preemption or a time
	// limit signal and must run again (HTCondor's checkpoint_exit_code, the
	// requeue rule of a Kubernetes podFailurePolicy, the local supervisor's
	// restart). Its run directory resumes with the time that was left.
	ExitRequeue = 75
)

// Job is one cell of the campaign as an executor sees it.
type Job struct {
	// Index is the job's position in the campaign's append-only index
	// (IndexFile): it never changes and is never reused, so array and proc
	// indices stay valid across `up`s.
	Index int `json:"index"`
	// RunID is the stable run id: ROOT/RunID is the run directory.
	RunID string `json:"run_id"`
}

// Resources are what one job's allocation asks for.
type Resources struct {
	GPUs     int   `json:"gpus"`
	CPUs     int   `json:"cpus,omitempty"`
	MemoryMB int64 `json:"memory_mb,omitempty"`
	DiskMB   int64 `json:"disk_mb,omitempty"`
	// TimeLimit is the wall time one allocation may take: the solve budget,
	// the evaluation allowance and the grace. A job cut short resumes in a
	// requeued allocation with the solve time that was left.
	TimeLimit time.Duration `json:"time_limit"`
}

// Submission is one batch of jobs to start.
type Submission struct {
	Campaign string // campaign name: [a-z0-9-], at most 40 characters (label- and file-safe)
	Root     string // absolute output root, shared by the harness and every allocation
	Dir      string // absolute campaign directory, ROOT/.campaign/NAME (Dir)
	Exe      string // absolute path of the ptb binary an allocation runs
	Jobs     []Job
	Resources
	// MaxParallel caps the jobs running at once (0: no cap), e.g. as a Slurm
	// array's %N throttle or HTCondor's max_materialize. The engine also
	// caps what it submits.
	MaxParallel int
	// PassEnv names variables (names only, never values) that the
	// allocation's environment must carry to ptb: the API keys that ptb's
	// gateway holds, outside every sandbox.
	PassEnv []string
}

// ExecArgv is the command an allocation runs for one job: ptb campaign exec
// resolves the job (by "--index=N" or "--run-id=ID", the selector), runs
// `ptb run --run-id ID` with the cell's settings, and on TERM, USR1 or HUP
// stops the run cleanly and requeues it as preempt says:
//
//	exit    exit ExitRequeue (HTCondor, Kubernetes, the local supervisor)
//	slurm   `scontrol requeue $SLURM_JOB_ID` (Slurm's --requeue), then exit ExitRequeue
//
// gpus is "" (none), a list ("0,1"), or "env:VAR" to read the devices the
// scheduler assigned from VAR at run time (e.g. env:CUDA_VISIBLE_DEVICES).
func (s Submission) ExecArgv(selector, preempt, gpus string) []string {
	argv := []string{s.Exe, "campaign", "exec", "--dir", s.Dir, selector, "--preempt", preempt}
	if gpus != "" {
		argv = append(argv, "--gpus", gpus)
	}
	return argv
}

// State is a job's state as its executor reports it.
type State string

const (
	StatePending State = "pending" // queued, held, or waiting to be materialized
	StateRunning State = "running" // an allocation runs it now
	StateExited  State = "exited"  // the backend's job ended with status 0 (the run directory says how the run went)
	StateFailed  State = "failed"  // the backend's job ended otherwise, or was removed or evicted for good
	StateUnknown State = "unknown" // the backend has it but its state could not be read
)

// Live reports whether the backend still holds the job (it must not be
// submitted again).
func (s State) Live() bool { return s == StatePending || s == StateRunning || s == StateUnknown }

// Status is one job as the executor sees it.
type Status struct {
	RunID     string `json:"run_id"`
	BackendID string `json:"backend_id"` // e.g. "1234_7" (Slurm), "56.3" (HTCondor), a Job name (Kubernetes), a pid (local)
	State     State  `json:"state"`
	Reason    string `json:"reason,omitempty"` // the scheduler's own words: queue reason, hold reason, last exit
	Restarts  int    `json:"restarts,omitempty"`
}

// Ref names a campaign for List, Cancel and Logs.
type Ref struct {
	Campaign string // campaign name
	Dir      string // absolute campaign directory
}

// Executor starts and watches a campaign's jobs on one kind of scheduler.
// List is one query to the scheduler however many jobs there are; it
// returns only the campaign's jobs (by name, label or attribute), live and,
// where the scheduler still remembers them, ended.
type Executor interface {
	Name() string
	// Check reports whether the scheduler can be used from here (its
	// commands on PATH, its daemon answering), with what to do if not.
	Check(ctx context.Context) error
	Submit(ctx context.Context, s Submission) ([]Status, error)
	List(ctx context.Context, c Ref) ([]Status, error)
	// Cancel ends the named runs' jobs (TERM first: ptb stops the agent
	// cleanly and the run resumes when submitted again).
	Cancel(ctx context.Context, c Ref, runIDs []string) error
	// Logs returns the paths of the files holding the job's scheduler
	// output (stdout and stderr of ptb campaign exec), newest last.
	Logs(ctx context.Context, c Ref, runID string) ([]string, error)
}

// Factory makes an executor from the settings under its name in the
// campaign file (nil when the file gives none). It checks them and returns
// errors that name the field and its line (settings.Line).
type Factory func(settings *yaml.Node) (Executor, error)

var (
	regMu     sync.Mutex
	factories = map[string]Factory{}
)

// Register makes an executor available under name; each executor package
// calls it from init. Registering a name twice panics.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("campaign: executor %q registered twice", name))
	}
	factories[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	f, ok := factories[name]
	return f, ok
}

// Executors lists the registered executor names, sorted.
func Executors() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
