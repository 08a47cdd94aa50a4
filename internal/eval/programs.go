package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/pyexec"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/fsutil"
)

// ProgramsRecord says which interpreter ran HumanEval's programs and how
// they were contained; it is written to eval.json and returned in the
// Summary.
type ProgramsRecord struct {
	Python        string   `json:"python"`         // the interpreter run
	PythonVersion string   `json:"python_version"` // e.g. 3.10.14
	Sandbox       string   `json:"sandbox"`        // the sandbox backend
	Unsandboxed   bool     `json:"unsandboxed"`    // the backend isolated nothing (none)
	Sandboxes     int      `json:"sandboxes"`      // long-lived sandboxes, programs run at once
	Warnings      []string `json:"warnings"`       // a Python other than the original's 3.10, unsandboxed programs
}

// startPrograms finds the interpreter (o.Python, default python3 on the
// harness's PATH) on the host, before any sandbox hides the homes it may
// live in, and returns the pool that runs the programs in o.Sandbox, with
// its record.
func (o Options) startPrograms(ctx context.Context) (*pyexec.Pool, ProgramsRecord, error) {
	name := o.Python
	if name == "" {
		name = "python3"
	}
	py, err := pyexec.Resolve(ctx, name, pyexec.HostEnv())
	if err != nil {
		return nil, ProgramsRecord{}, fmt.Errorf("humaneval interpreter: %w", err)
	}
	self := o.PTB
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return nil, ProgramsRecord{}, fmt.Errorf("find the ptb binary for the program worker: %w", err)
		}
	}
	if real, err := filepath.EvalSymlinks(self); err == nil {
		self = real
	}
	size := o.ProgramSandboxes
	if size <= 0 {
		size = runtime.NumCPU()
	}
	pool, err := pyexec.New(pyexec.Options{Sandbox: o.Sandbox, Self: self, Python: py, Size: size,
		Limits: task.HumanEvalLimits, Timeout: o.programTimeout(), OutputLimit: task.HumanEvalOutputLimit,
		TempDir: o.ProgramTempDir, Hidden: o.Hidden})
	if err != nil {
		return nil, ProgramsRecord{}, err
	}
	caps := o.Sandbox.Capabilities()
	rec := ProgramsRecord{Python: py.Path, PythonVersion: py.Version, Sandbox: caps.Name, Unsandboxed: !caps.Isolated, Sandboxes: size, Warnings: []string{}}
	if w := py.Warning(); w != "" {
		rec.Warnings = append(rec.Warnings, w)
	}
	if rec.Unsandboxed {
		rec.Warnings = append(rec.Warnings, fmt.Sprintf("unsandboxed: humaneval programs ran with the %s sandbox backend (development only); nothing was isolated", caps.Name))
	}
	return pool, rec, nil
}

func (o Options) programTimeout() time.Duration {
	if o.ProgramTimeout > 0 {
		return o.ProgramTimeout
	}
	return task.HumanEvalTimeout
}

// notePrograms records the programs' interpreter in OUT/eval.json and
// warns about what its record says.
func (o Options) notePrograms(rec ProgramsRecord) error {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "humaneval programs: %s (Python %s) in %d %s sandboxes\n", rec.Python, rec.PythonVersion, rec.Sandboxes, rec.Sandbox)
		for _, w := range rec.Warnings {
			fmt.Fprintf(o.Progress, "warning: %s\n", w)
		}
	}
	return updateState(o.OutDir, func(st *state) { st.Programs = &rec })
}

// updateState changes OUT/eval.json with change.
func updateState(dir string, change func(*state)) error {
	p := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("update %s: %w", StateFile, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("update %s: %w", p, err)
	}
	change(&st)
	out, _ := json.MarshalIndent(st, "", "  ")
	return fsutil.WriteFileAtomic(p, append(out, '\n'), 0o644)
}

// recordedState is OUT/eval.json, if it can be read.
func recordedState(dir string) *state {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil
	}
	var st state
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}
