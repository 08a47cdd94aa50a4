// Package execproc is the host-side half shared by process-based sandbox
// backends (none, bwrap): it starts the backend's launcher command in its
// own process group, dies with the harness, drains output, and stops the
// whole tree with TERM, a grace period, then KILL.
package execproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// Options tune a backend's process handling.
type Options struct {
	Backend string
	// Term filters the processes that receive SIGTERM on Stop (e.g. bwrap
	// leaves its own helper processes alone so the namespace stays up during
	// the grace period). nil means all descendants and the leader.
	Term func(proctree.Proc) bool
	// ExitFromCode maps the launcher's exit code to an Exit (bwrap reports
	// a signalled child as 128+signal).
	ExitFromCode func(code int) sandbox.Exit
}

// Process is a started launcher command.
type Process struct {
	opts    Options
	cmd     *exec.Cmd
	pid     int
	done    chan struct{} // closed when the leader has been waited for
	drained chan struct{} // closed when both output pipes hit EOF
	exit    sandbox.Exit
	werr    error

	mu        sync.Mutex
	destroyed bool
	known     map[int]proctree.Proc // every descendant ever seen, to catch orphans that left the tree
	readers   []*os.File
}

// drainWait bounds how long Wait waits for output after the leader exited;
// a leftover descendant holding the pipe open must not block the harness.
const drainWait = 3 * time.Second

// Start runs argv with spec's environment, directory and streams.
func Start(ctx context.Context, argv []string, spec sandbox.Spec, o Options) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = spec.Dir
	cmd.Stdin = spec.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL, // the tree dies with the harness
	}
	p := &Process{opts: o, cmd: cmd, done: make(chan struct{}), drained: make(chan struct{})}
	var wg sync.WaitGroup
	var writers []*os.File
	for _, w := range []io.Writer{spec.Stdout, spec.Stderr} {
		if w == nil {
			w = io.Discard
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", o.Backend, err)
		}
		p.readers = append(p.readers, r)
		writers = append(writers, pw)
		wg.Add(1)
		go func(w io.Writer, r *os.File) {
			defer wg.Done()
			io.Copy(w, r)
		}(w, r)
	}
	cmd.Stdout, cmd.Stderr = writers[0], writers[1]
	err := cmd.Start()
	for _, w := range writers {
		w.Close()
	}
	if err != nil {
		for _, r := range p.readers {
			r.Close()
		}
		return nil, fmt.Errorf("start %s: %w", o.Backend, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		wg.Wait()
		close(p.drained)
	}()
	go func() {
		err := cmd.Wait()
		p.exit, p.werr = p.exitOf(err)
		close(p.done)
	}()
	return p, nil
}

func (p *Process) exitOf(err error) (sandbox.Exit, error) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return sandbox.Exit{Code: -1}, err
	}
	st := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if st.Signaled() {
		return sandbox.Exit{Code: -1, Signal: SignalName(int(st.Signal()))}, nil
	}
	if p.opts.ExitFromCode != nil {
		return p.opts.ExitFromCode(st.ExitStatus()), nil
	}
	return sandbox.Exit{Code: st.ExitStatus()}, nil
}

// Wait implements sandbox.Process.
func (p *Process) Wait(ctx context.Context) (sandbox.Exit, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return sandbox.Exit{}, ctx.Err()
	}
	select {
	case <-p.drained:
	case <-time.After(drainWait):
	case <-ctx.Done():
	}
	return p.exit, p.werr
}

// Stop implements sandbox.Process.
func (p *Process) Stop(grace time.Duration) error {
	if p.exited() {
		// The leader is gone; still clear out stragglers in its group.
		p.kill()
		return nil
	}
	tree := p.tree()
	var term []proctree.Proc
	for _, t := range tree {
		if p.opts.Term == nil || p.opts.Term(t) {
			term = append(term, t)
		}
	}
	if p.opts.Term == nil || p.opts.Term(proctree.Proc{PID: p.pid, Comm: "leader"}) {
		syscall.Kill(p.pid, syscall.SIGTERM)
	}
	proctree.Signal(term, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if p.exited() && !anyAlive(term) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	return nil
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func anyAlive(ps []proctree.Proc) bool {
	for _, t := range ps {
		if proctree.Alive(t.PID) {
			return true
		}
	}
	return false
}

// tree is every descendant of the leader plus its process group, plus
// every descendant seen before that is still alive (an orphan that called
// setsid and was reparented is no longer under the leader).
func (p *Process) tree() []proctree.Proc {
	cur := proctree.Descendants(p.pid, p.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil {
		p.known = map[int]proctree.Proc{}
	}
	seen := map[int]bool{}
	for _, c := range cur {
		p.known[c.PID] = c
		seen[c.PID] = true
	}
	for pid, k := range p.known {
		if seen[pid] {
			continue
		}
		if !proctree.Alive(pid) {
			delete(p.known, pid)
			continue
		}
		cur = append(cur, k)
	}
	return cur
}

// kill SIGKILLs the leader and everything under it, then waits briefly for
// the leader to be reaped.
func (p *Process) kill() {
	for i := 0; i < 3; i++ {
		tree := p.tree()
		if !p.exited() {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		syscall.Kill(-p.pid, syscall.SIGKILL)
		proctree.Signal(tree, syscall.SIGKILL)
		if proctree.WaitGone(tree, time.Second) && len(p.tree()) == 0 {
			break
		}
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Destroy implements sandbox.Process.
func (p *Process) Destroy() error {
	p.mu.Lock()
	if p.destroyed {
		p.mu.Unlock()
		return nil
	}
	p.destroyed = true
	p.mu.Unlock()
	p.kill()
	select {
	case <-p.drained:
	case <-time.After(drainWait):
	}
	for _, r := range p.readers {
		r.Close()
	}
	return nil
}

// State is what a Handle of an execproc process holds: enough to find
// the process tree again after the harness died.
type State struct {
	PID   int    `json:"pid"`             // the process (group leader) on the host
	PGID  int    `json:"pgid"`            // its process group
	Start uint64 `json:"start,omitempty"` // the leader's start time (clock ticks since boot), to tell a reused pid apart
}

// PID is the launcher's process id on the host.
func (p *Process) PID() int { return p.pid }

// Handle implements sandbox.Process.
func (p *Process) Handle() sandbox.Handle {
	st := State{PID: p.pid, PGID: p.pid}
	for _, q := range proctree.List() {
		if q.PID == p.pid {
			st.Start = q.Start
		}
	}
	b, _ := json.Marshal(st) // cannot fail: ints only
	return sandbox.Handle{Backend: p.opts.Backend, State: b}
}

// Reap kills what is left of the process tree h identifies: the leader if
// it is still the same process, its descendants, and the members of its
// process group that started after it. Nothing is done without a start
// time to check against.
func Reap(h sandbox.Handle) error {
	if len(h.State) == 0 {
		return nil
	}
	var st State
	if err := json.Unmarshal(h.State, &st); err != nil {
		return fmt.Errorf("reap the %s process: its handle: %w", h.Backend, err)
	}
	if st.PID <= 0 || st.Start == 0 {
		return nil
	}
	var victims []proctree.Proc
	for _, q := range proctree.List() {
		if q.PID == st.PID && q.Start == st.Start {
			victims = append(victims, q)
			victims = append(victims, proctree.Descendants(q.PID, 0)...)
		} else if st.PGID > 0 && q.PGID == st.PGID && q.Start >= st.Start {
			victims = append(victims, q)
		}
	}
	proctree.Signal(victims, syscall.SIGKILL)
	proctree.WaitGone(victims, 5*time.Second)
	return nil
}

// SignalName names a signal number as the records do ("SIGTERM"; "SIG34"
// for one without a name).
func SignalName(n int) string {
	if name := unix.SignalName(syscall.Signal(n)); name != "" {
		return name
	}
	return fmt.Sprintf("SIG%d", n)
}
