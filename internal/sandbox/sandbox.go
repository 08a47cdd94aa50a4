// Package sandbox defines how an agent process is isolated: a Backend starts
// a Process from a Spec; the process is waited for, stopped (TERM, grace,
// KILL of the whole tree) and destroyed. Backends live in subpackages (none,
// bwrap) and all pass the contract suite in sandboxtest.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Spec is what to run and what it may touch. Paths are host paths; the
// backend decides where they appear inside (see Capabilities.SamePaths).
type Spec struct {
	Argv      []string
	Env       []string // the complete environment; nothing else leaks from the host
	Dir       string   // working directory (must be under Workspace)
	Workspace string   // writable
	Home      string   // writable, becomes HOME
	Tmp       string   // host directory mounted as a private /tmp
	ReadOnly  []string // extra host paths visible read-only
	Writable  []string // extra host paths visible read-write
	Hidden    []string // host paths made invisible (an empty tmpfs over them), e.g. other runs
	Mounts    []Mount  // host paths shown at another place inside, e.g. the run's socket directory at /run/ptb
	Network   Network  // NetworkNone (default) or NetworkHost; NetworkGateway is resolved by Gateway.Apply first
	GPUs      []int    // device indices this job may see
	Limits    Limits   // resource limits; zero fields are not enforced
	Stdout    io.Writer
	Stderr    io.Writer
	Stdin     io.Reader // nil means /dev/null
}

// Limits are a job's resource limits. A zero field is not enforced.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"` // resident memory of the whole tree (tmpfs pages included)
	Pids        int64   `json:"pids,omitempty"`         // processes and threads at once
	CPUs        float64 `json:"cpus,omitempty"`         // CPU bandwidth, in cores
	TmpBytes    int64   `json:"tmp_bytes,omitempty"`    // size of the private /tmp (and /dev/shm)
	DiskBytes   int64   `json:"disk_bytes,omitempty"`   // allocated bytes in the workspace and home together
	DiskFiles   int64   `json:"disk_files,omitempty"`   // files and directories in the workspace and home together
}

// Limit names, as Exit.Limit and LimitStatus.Name give them.
const (
	LimitMemory = "memory"
	LimitPids   = "pids"
	LimitCPU    = "cpu"
	LimitTmp    = "tmp"
	LimitDisk   = "disk"
	LimitFiles  = "files"
)

// LimitStatus says whether and how one limit was enforced.
type LimitStatus struct {
	Name     string  `json:"name"`     // memory | pids | cpu | tmp | disk | files
	Value    float64 `json:"value"`    // bytes, count or cores
	Enforced bool    `json:"enforced"` // false: asked for, but this host could not
	How      string  `json:"how"`      // e.g. "cgroup v1 memory", "tmpfs size", "watchdog every 2s"; or why not
}

// Limited is implemented by processes that enforce Spec.Limits.
type Limited interface {
	// Limits reports each limit of the spec and how it is enforced.
	Limits() []LimitStatus
}

// Mount shows the host path Source at Target inside the sandbox. Backends
// that cannot remap paths (Capabilities.SamePaths without isolation)
// reject a Target that differs from Source.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Writable bool   `json:"writable,omitempty"`
}

// SocketDir is where a sandbox sees the run's socket directory (the
// relay's unix sockets, internal/sandbox/relay): short enough for any
// socket name to fit sun_path.
const SocketDir = "/run/ptb"

// Capabilities describes a backend, as data. Callers consult it with
// Supports before they start a Spec.
type Capabilities struct {
	Name     string    `json:"name"`
	Isolated bool      `json:"isolated"` // false: the process runs bare on the host
	Networks []Network `json:"networks"` // the network policies it can enforce
	// SamePaths: host paths appear at the same place inside. A backend
	// with SamePaths and without isolation cannot show a path elsewhere
	// (a Mount whose Target differs from its Source).
	SamePaths bool `json:"same_paths"`
	// ReadOnlyHost: the host paths a Spec lists as ReadOnly are visible
	// and cannot be written.
	ReadOnlyHost bool `json:"read_only_host"`
}

// Supports returns nil if a backend with these capabilities can run spec
// as it asks, or an error saying what it cannot do and what to do. A
// backend that is not isolated enforces nothing (the caller records the
// run as unsandboxed), so only what it cannot even set up is refused:
// a mount at another path.
func (c Capabilities) Supports(spec Spec) error {
	n := spec.Network
	if n == "" {
		n = NetworkNone
	}
	if n == NetworkGateway {
		return fmt.Errorf("sandbox %s: network gateway is not a backend policy: apply the run's sandbox.Gateway to the spec first", c.Name)
	}
	if c.Isolated && !slices.Contains(c.Networks, n) {
		return fmt.Errorf("sandbox %s: cannot enforce network %q (it enforces %s): choose another network or sandbox backend", c.Name, n, networkList(c.Networks))
	}
	for _, m := range spec.Mounts {
		if m.Target != m.Source && c.SamePaths && !c.Isolated {
			return fmt.Errorf("sandbox %s: cannot show %s at %s: this backend runs on the host's own paths (use an isolating backend, e.g. bwrap)", c.Name, m.Source, m.Target)
		}
	}
	if c.Isolated && !c.ReadOnlyHost && len(spec.ReadOnly) > 0 {
		return fmt.Errorf("sandbox %s: cannot show host paths read-only (first: %s): use a backend that can, e.g. bwrap", c.Name, spec.ReadOnly[0])
	}
	return nil
}

func networkList(ns []Network) string {
	if len(ns) == 0 {
		return "none of them"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// Exit is how a process ended.
type Exit struct {
	Code   int    // exit code, -1 when killed by a signal
	Signal string // signal name when killed by one
	// Limit names the limit whose breach ended the process (LimitMemory,
	// ...); "" when none did.
	Limit string
}

// Handle identifies a started process well enough for a restarted harness to
// find (and kill) what is left of it, as nomad's TaskHandle: the backend's
// name and the backend's own state, opaque to everyone else. The pipeline
// stores it with the solve state and gives it back to Reaper.Reap; only the
// backend that made it reads State (the process-based backends: the
// leader's pid, its process group and start time, see execproc.State; a
// container backend: its container id).
//
// In JSON the state's fields sit beside "backend" in one object, as the
// solve state has always stored them.
type Handle struct {
	Backend string
	State   json.RawMessage // a JSON object, or nil
}

// MarshalJSON writes the handle as one object: "backend" and the state's
// fields.
func (h Handle) MarshalJSON() ([]byte, error) {
	m := map[string]json.RawMessage{}
	if len(h.State) > 0 {
		if err := json.Unmarshal(h.State, &m); err != nil {
			return nil, fmt.Errorf("marshal sandbox handle of %s: its state is not a JSON object: %w", h.Backend, err)
		}
		if _, ok := m["backend"]; ok {
			return nil, fmt.Errorf("marshal sandbox handle of %s: its state must not have a backend field", h.Backend)
		}
	}
	b, err := json.Marshal(h.Backend)
	if err != nil {
		return nil, err
	}
	m["backend"] = b
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON wrote: every field but "backend"
// is the state.
func (h *Handle) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("read sandbox handle: %w", err)
	}
	*h = Handle{}
	if v, ok := m["backend"]; ok {
		if err := json.Unmarshal(v, &h.Backend); err != nil {
			return fmt.Errorf("read sandbox handle: backend: %w", err)
		}
		delete(m, "backend")
	}
	if len(m) > 0 {
		st, err := json.Marshal(m)
		if err != nil {
			return err
		}
		h.State = st
	}
	return nil
}

// String is the handle for logs: the backend and its state.
func (h Handle) String() string {
	if len(h.State) == 0 {
		return h.Backend
	}
	return h.Backend + " " + string(h.State)
}

// Backend starts sandboxed processes.
type Backend interface {
	// Capabilities reports what the backend enforces.
	Capabilities() Capabilities
	// Check returns nil if the backend can run on this machine, or an error
	// saying what is missing.
	Check(ctx context.Context) error
	// Start launches spec. The process keeps running until it exits, Stop or
	// Destroy is called, or the harness dies (backends make it die with the
	// harness where the host allows).
	Start(ctx context.Context, spec Spec) (Process, error)
}

// Process is a started sandboxed process tree.
type Process interface {
	// Wait blocks until the process tree's leader exits and its output is
	// drained. It returns ctx.Err() if ctx ends first (the process keeps running).
	Wait(ctx context.Context) (Exit, error)
	// Stop sends SIGTERM to the whole tree, waits up to grace, then SIGKILLs
	// it. It returns once every descendant is gone or was sent SIGKILL.
	Stop(grace time.Duration) error
	// Destroy kills whatever is left and releases resources. Safe to call twice.
	Destroy() error
	// Handle returns the serialisable identity of the process.
	Handle() Handle
}

// Reaper is implemented by backends that can find and kill what is left of
// a process started by an earlier harness that died (a crash, SIGKILL).
type Reaper interface {
	// Reap kills whatever still runs of the process h identifies. A pid or
	// group since reused by an unrelated process is left alone.
	Reap(h Handle) error
}

// ErrUnavailable is returned by Check when the backend cannot run here.
var ErrUnavailable = errors.New("sandbox backend unavailable")
