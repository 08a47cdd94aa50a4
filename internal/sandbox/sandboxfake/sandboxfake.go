// Package sandboxfake is a scriptable sandbox backend for tests, as nomad's
// drivers/mock: each Start plays the next Step of a script (write files into
// the workspace, print output, sleep or hang until stopped, exit with a
// code) in a goroutine of the test process, without namespaces or child
// processes. Pipeline tests run on it where bubblewrap is missing; the real
// backends keep their own end-to-end tests.
//
// It is a test fake: no command or job file can select it, and it enforces
// nothing of a Spec beyond what its capabilities cannot support
// (Capabilities.Supports), which it refuses at Start as a real backend
// would.
package sandboxfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Name is the default Capabilities.Name of a fake backend.
const Name = "fake"

// Step is what one started process does, in this order: create Dirs,
// write Files and make Links (all relative to Spec.Dir, else
// Spec.Workspace), write Stdout and Stderr, run Func if set (its result
// is the exit code), then sleep for Sleep, or hang until stopped if Hang,
// and exit with Exit.
type Step struct {
	Dirs   []string
	Files  map[string][]byte
	Links  map[string]string // name -> link target, as the agent would plant
	Stdout []byte
	Stderr []byte
	// Func, if set, runs after the output; ctx ends when the process is
	// sent TERM (unless IgnoreTerm) or killed.
	Func  func(ctx context.Context, p Proc) int
	Sleep time.Duration
	Hang  bool
	// IgnoreTerm makes Stop wait the whole grace and end the process
	// with SIGKILL, as a process that ignores SIGTERM.
	IgnoreTerm bool
	Exit       int
}

// Proc is what a Step's Func sees of its process.
type Proc struct {
	Spec   sandbox.Spec
	Dir    string // the working directory the step's files are relative to
	Stdout io.Writer
	Stderr io.Writer
}

// Backend plays a script. The last step repeats once the script is used up.
type Backend struct {
	caps     sandbox.Capabilities
	checkErr error

	mu      sync.Mutex
	script  []Step
	specs   []sandbox.Spec
	refused int // Starts refused for want of a capability: they play no step
}

var _ sandbox.Backend = (*Backend)(nil)

// New returns a fake backend playing script, with the capabilities of an
// isolating backend (as bwrap: networks none and host, host paths at
// their own place and mounts elsewhere, read-only paths), so that callers take the code paths of a real sandbox.
func New(script ...Step) *Backend {
	return &Backend{
		script: script,
		caps: sandbox.Capabilities{
			Name:         Name,
			Isolated:     true,
			Networks:     []sandbox.Network{sandbox.NetworkNone, sandbox.NetworkHost},
			SamePaths:    true,
			ReadOnlyHost: true,
		},
	}
}

// WithCapabilities sets what the backend reports it can do, e.g. to check
// that a caller refuses a job the backend cannot run.
func (b *Backend) WithCapabilities(c sandbox.Capabilities) *Backend {
	b.caps = c
	return b
}

// WithCheck makes Check return err, as a backend missing on the host.
func (b *Backend) WithCheck(err error) *Backend {
	b.checkErr = err
	return b
}

// Capabilities implements sandbox.Backend.
func (b *Backend) Capabilities() sandbox.Capabilities { return b.caps }

// Check implements sandbox.Backend.
func (b *Backend) Check(context.Context) error { return b.checkErr }

// Started returns the specs of every Start so far, in order, refused ones
// included.
func (b *Backend) Started() []sandbox.Spec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.specs)
}

// Start implements sandbox.Backend: it plays the next step of the script.
func (b *Backend) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(spec.Argv) == 0 {
		return nil, errors.New("sandbox fake: empty command")
	}
	b.mu.Lock()
	b.specs = append(b.specs, spec)
	n := len(b.specs) - 1 - b.refused
	if err := b.caps.Supports(spec); err != nil {
		b.refused++
		b.mu.Unlock()
		return nil, err
	}
	if len(b.script) == 0 {
		b.mu.Unlock()
		return nil, errors.New("sandbox fake: no script to play")
	}
	step := b.script[min(n, len(b.script)-1)]
	b.mu.Unlock()

	dir := spec.Dir
	if dir == "" {
		dir = spec.Workspace
	}
	p := &process{
		name: b.caps.Name,
		step: step,
		term: make(chan struct{}),
		kill: make(chan struct{}),
		done: make(chan struct{}),
	}
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	go p.run(Proc{Spec: spec, Dir: dir, Stdout: stdout, Stderr: stderr})
	return p, nil
}

type process struct {
	name string
	step Step

	termOnce, killOnce sync.Once
	term, kill         chan struct{} // closed by Stop (TERM) and Destroy or the end of the grace (KILL)
	done               chan struct{} // closed when the step has ended
	exit               sandbox.Exit
	err                error
}

// run plays the step, ending early on TERM (unless ignored) or KILL.
func (p *process) run(pr Proc) {
	defer close(p.done)
	if err := writeFiles(pr.Dir, p.step); err != nil {
		fmt.Fprintln(pr.Stderr, err)
		p.exit = sandbox.Exit{Code: 1}
		return
	}
	pr.Stdout.Write(p.step.Stdout)
	pr.Stderr.Write(p.step.Stderr)
	code := p.step.Exit
	if p.step.Func != nil {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.stopped():
			case <-p.kill:
			case <-p.done:
			}
			cancel()
		}()
		code = p.step.Func(ctx, pr)
		cancel()
		if sig, ok := p.signalled(); ok {
			p.exit = sandbox.Exit{Code: -1, Signal: sig}
			return
		}
	}
	var wait <-chan time.Time
	switch {
	case p.step.Hang:
	case p.step.Sleep > 0:
		t := time.NewTimer(p.step.Sleep)
		defer t.Stop()
		wait = t.C
	default:
		p.exit = sandbox.Exit{Code: code}
		return
	}
	select {
	case <-wait:
		p.exit = sandbox.Exit{Code: code}
	case <-p.stopped():
		p.exit = sandbox.Exit{Code: -1, Signal: "SIGTERM"}
	case <-p.kill:
		p.exit = sandbox.Exit{Code: -1, Signal: "SIGKILL"}
	}
}

// stopped is the channel that ends the step on TERM: never closed for a
// step that ignores TERM.
func (p *process) stopped() <-chan struct{} {
	if p.step.IgnoreTerm {
		return nil
	}
	return p.term
}

func (p *process) signalled() (string, bool) {
	select {
	case <-p.kill:
		return "SIGKILL", true
	default:
	}
	select {
	case <-p.stopped():
		return "SIGTERM", true
	default:
	}
	return "", false
}

func (p *process) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait implements sandbox.Process.
func (p *process) Wait(ctx context.Context) (sandbox.Exit, error) {
	select {
	case <-p.done:
		return p.exit, p.err
	case <-ctx.Done():
		return sandbox.Exit{}, ctx.Err()
	}
}

// Stop implements sandbox.Process: TERM, up to grace for the step to end,
// then KILL.
func (p *process) Stop(grace time.Duration) error {
	if p.ended() {
		return nil
	}
	p.termOnce.Do(func() { close(p.term) })
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	p.killOnce.Do(func() { close(p.kill) })
	<-p.done
	return nil
}

// Destroy implements sandbox.Process.
func (p *process) Destroy() error {
	p.killOnce.Do(func() { close(p.kill) })
	<-p.done
	return nil
}

// Handle implements sandbox.Process. A fake process has no pid; nothing
// of it outlives the test process.
func (p *process) Handle() sandbox.Handle { return sandbox.Handle{Backend: p.name} }

// writeFiles creates the step's directories, files and links under dir.
// Names must stay inside dir.
func writeFiles(dir string, s Step) error {
	path := func(name string) (string, error) {
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(filepath.Clean(name), "../") {
			return "", fmt.Errorf("sandbox fake: %q is not a path inside the workspace", name)
		}
		return filepath.Join(dir, name), nil
	}
	for _, d := range s.Dirs {
		p, err := path(d)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("sandbox fake: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Files)) {
		p, err := path(name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("sandbox fake: %w", err)
		}
		if err := os.WriteFile(p, s.Files[name], 0o644); err != nil {
			return fmt.Errorf("sandbox fake: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Links)) {
		p, err := path(name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("sandbox fake: %w", err)
		}
		os.Remove(p)
		if err := os.Symlink(s.Links[name], p); err != nil {
			return fmt.Errorf("sandbox fake: %w", err)
		}
	}
	return nil
}
