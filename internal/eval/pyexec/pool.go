package pyexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/safeio"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Interpreter is the Python that runs the programs, as found on the host
// before sandboxing.
type Interpreter struct {
	Path    string   // the interpreter run (a real interpreter, never a pyenv shim)
	Version string   // its version, e.g. 3.10.14
	Binds   []string // host paths it needs, shown read-only: itself, its prefixes, sys.path
	Dirs    []string // PATH entries ahead of the system's (its bin directory)
	Env     []string // what it needs in its environment (PYTHONUSERBASE for a user-site install)
}

// Options configure a Pool.
type Options struct {
	Sandbox sandbox.Backend
	// Self is the ptb binary run inside each sandbox as the worker (`ptb
	// humaneval-worker`).
	Self   string
	Python Interpreter
	// Size is the number of sandboxes, and so of programs run at once.
	Size int
	// Limits bound each sandbox (one program and the worker at a time).
	Limits sandbox.Limits
	// Timeout bounds one program; OutputLimit what it may write.
	Timeout     time.Duration
	OutputLimit int
	// TempDir holds the sandboxes' directories ("" = os.TempDir()).
	TempDir string
	// Hidden are host paths the programs must not see.
	Hidden []string
}

// startTimeout bounds a worker's start (the sandbox up and the config
// answered).
const startTimeout = time.Minute

// answerGrace is how long past a program's timeout the harness waits for
// the worker's answer before it ends the sandbox itself.
const answerGrace = 30 * time.Second

// endGrace is how long an ending worker is given to exit by itself.
const endGrace = 2 * time.Second

// SystemPath is the programs' PATH after the interpreter's own directory.
const SystemPath = "/usr/local/bin:/usr/bin:/bin"

// Pool runs programs in up to Size long-lived sandboxes, one program per
// sandbox at a time. A sandbox whose program broke it (a limit, a timeout
// the worker did not answer) is ended and a fresh one started for the
// next program.
type Pool struct {
	o     Options
	root  string
	slots chan struct{}

	mu     sync.Mutex
	idle   []*proc
	all    map[*proc]bool
	seq    int
	closed bool
}

// New returns a pool; its sandboxes start when programs first need them.
func New(o Options) (*Pool, error) {
	if o.Sandbox == nil {
		return nil, errors.New("pyexec: no sandbox backend given")
	}
	if o.Self == "" || !filepath.IsAbs(o.Self) {
		return nil, fmt.Errorf("pyexec: the ptb binary %q must be an absolute path", o.Self)
	}
	if o.Python.Path == "" || !filepath.IsAbs(o.Python.Path) {
		return nil, fmt.Errorf("pyexec: the interpreter %q must be an absolute path", o.Python.Path)
	}
	if o.Size < 1 {
		o.Size = 1
	}
	if o.Timeout <= 0 {
		return nil, errors.New("pyexec: no program timeout given")
	}
	if o.OutputLimit <= 0 {
		return nil, errors.New("pyexec: no output limit given")
	}
	root, err := os.MkdirTemp(o.TempDir, "ptb-humaneval-")
	if err != nil {
		return nil, fmt.Errorf("pyexec: make sandbox directory: %w", err)
	}
	return &Pool{o: o, root: root, slots: make(chan struct{}, o.Size), all: map[*proc]bool{}}, nil
}

// Run runs program in a fresh interpreter process. A program that runs
// past the timeout, or whose sandbox a limit ended, is a Result that did
// not pass; an error means the program could not be judged (the harness
// could not run it, ctx ended).
func (p *Pool) Run(ctx context.Context, program string) (Result, error) {
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	// A sandbox a limit ended may have been pushed over it by the
	// program before (the disk watchdog looks every few seconds): the
	// program runs once more in a fresh sandbox, and fails if it ends
	// that one too.
	for try := 0; ; try++ {
		w, err := p.get(ctx)
		if err != nil {
			return Result{}, err
		}
		res, keep, err := w.run(ctx, program, p.o.Timeout)
		if keep && err == nil {
			p.put(w)
		} else {
			p.discard(w)
		}
		if err != nil || res.Limit == "" || try > 0 {
			return res, err
		}
	}
}

// Close ends every sandbox and removes their directories.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	all := make([]*proc, 0, len(p.all))
	for w := range p.all {
		all = append(all, w)
	}
	p.all, p.idle = map[*proc]bool{}, nil
	p.mu.Unlock()
	// The sandboxes end at once, not one after another: each waits for
	// its worker to exit and its processes and control group to go.
	var wg sync.WaitGroup
	for _, w := range all {
		wg.Go(w.end)
	}
	wg.Wait()
	return safeio.RemoveAll(p.root)
}

func (p *Pool) get(ctx context.Context) (*proc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("pyexec: pool closed")
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.seq++
	n := p.seq
	p.mu.Unlock()
	w, err := p.start(ctx, n)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		w.end()
		return nil, errors.New("pyexec: pool closed")
	}
	p.all[w] = true
	return w, nil
}

func (p *Pool) put(w *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.all[w] {
		return
	}
	p.idle = append(p.idle, w)
}

func (p *Pool) discard(w *proc) {
	p.mu.Lock()
	delete(p.all, w)
	p.mu.Unlock()
	w.end()
}

// proc is one sandbox running the worker.
type proc struct {
	sp     sandbox.Process
	dir    string
	in     *os.File
	out    *io.PipeReader
	stderr *tail
	exited chan struct{}
	exit   sandbox.Exit
	once   sync.Once
}

var errWorkerExited = errors.New("worker exited")

// start starts sandbox n and hands its worker the config.
func (p *Pool) start(ctx context.Context, n int) (*proc, error) {
	dir := filepath.Join(p.root, fmt.Sprintf("w%d", n))
	work, home, tmp := filepath.Join(dir, "work"), filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{dir, work, home, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("pyexec: make sandbox directory: %w", err)
		}
	}
	py := p.o.Python
	path := strings.Join(append(append([]string{}, py.Dirs...), SystemPath), ":")
	cfg := Config{Python: py.Path, Work: work, Home: home, OutputLimit: p.o.OutputLimit,
		Env: append([]string{"PATH=" + path, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}, py.Env...)}
	if p.o.Sandbox.Capabilities().Isolated {
		// The sandbox's /tmp, /dev/shm, /dev and /run hold what bwrap
		// laid out (mount points): only what a program adds goes.
		cfg.Tmp, cfg.Isolate = "/tmp", true
		cfg.Scratch = []string{work, home}
		cfg.Guard = []string{"/tmp", "/dev/shm", "/dev", "/run"}
	} else {
		cfg.Tmp = tmp
		cfg.Scratch = []string{work, home, tmp}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pyexec: %w", err)
	}
	outR, outW := io.Pipe()
	w := &proc{dir: dir, in: inW, out: outR, stderr: &tail{max: 4096}, exited: make(chan struct{})}
	spec := sandbox.Spec{
		Argv:      []string{p.o.Self, WorkerCommand},
		Env:       []string{"PATH=" + path, "LANG=C.UTF-8"},
		Dir:       work,
		Workspace: work,
		Home:      home,
		Tmp:       tmp,
		ReadOnly:  outermost(append([]string{p.o.Self}, py.Binds...)),
		Hidden:    p.o.Hidden,
		Network:   sandbox.NetworkNone,
		Limits:    p.o.Limits,
		Stdin:     inR,
		Stdout:    outW,
		Stderr:    w.stderr,
	}
	err = p.o.Sandbox.Capabilities().Supports(spec)
	var sp sandbox.Process
	if err == nil {
		sp, err = p.o.Sandbox.Start(ctx, spec)
	}
	inR.Close()
	if err != nil {
		inW.Close()
		safeio.RemoveAll(dir)
		return nil, fmt.Errorf("pyexec: start a sandbox for programs: %w", err)
	}
	w.sp = sp
	go func() {
		ex, _ := sp.Wait(context.Background())
		w.exit = ex
		outW.CloseWithError(errWorkerExited)
		close(w.exited)
	}()
	ready := make(chan error, 1)
	go func() {
		if err := writeFrame(inW, cfg); err != nil {
			ready <- err
			return
		}
		var r response
		if err := readFrame(outR, &r); err != nil {
			ready <- err
			return
		}
		if !r.Ready {
			ready <- errors.New(r.Error)
			return
		}
		ready <- nil
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = fmt.Errorf("no answer after %s", startTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		w.end()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pyexec: start the program worker in the %s sandbox: %v%s", p.o.Sandbox.Capabilities().Name, err, w.stderrNote())
	}
	return w, nil
}

func (w *proc) stderrNote() string {
	if s := strings.TrimSpace(w.stderr.String()); s != "" {
		return ": " + s
	}
	return ""
}

// run sends program to the worker and waits for its answer. keep says
// the sandbox may run another program.
func (w *proc) run(ctx context.Context, program string, timeout time.Duration) (Result, bool, error) {
	type answer struct {
		r   response
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		if err := writeFrame(w.in, request{Program: program, Timeout: int64(timeout)}); err != nil {
			ch <- answer{err: err}
			return
		}
		var r response
		err := readFrame(w.out, &r)
		ch <- answer{r, err}
	}()
	t := time.NewTimer(timeout + answerGrace)
	defer t.Stop()
	select {
	case a := <-ch:
		switch {
		case a.err != nil:
			// The sandbox ended under the program: a limit it hit
			// fails it; anything else is the harness's problem.
			<-w.exited
			if w.exit.Limit != "" {
				return Result{Code: -1, Signal: w.exit.Signal, Limit: w.exit.Limit}, false, nil
			}
			return Result{}, false, fmt.Errorf("pyexec: the program worker ended while running a program (%s)%s", exitText(w.exit), w.stderrNote())
		case a.r.Error != "" && !a.r.Retire:
			return Result{}, false, fmt.Errorf("pyexec: %s", a.r.Error)
		}
		return a.r.Result, !a.r.Retire, nil
	case <-t.C:
		// The worker did not enforce the timeout: end its sandbox.
		return Result{Code: -1, TimedOut: true}, false, nil
	case <-ctx.Done():
		return Result{}, false, ctx.Err()
	}
}

// end stops the worker's sandbox and removes its directories.
func (w *proc) end() {
	w.once.Do(func() {
		// An idle worker exits when its input ends; one that does not
		// (it is running a program, or broken) is stopped.
		w.in.Close()
		if w.sp != nil {
			select {
			case <-w.exited:
			case <-time.After(endGrace):
			}
			_ = w.sp.Stop(0)
			_ = w.sp.Destroy()
			<-w.exited
		}
		safeio.RemoveAll(w.dir)
	})
}

func exitText(ex sandbox.Exit) string {
	if ex.Signal != "" {
		return "killed by " + ex.Signal
	}
	return fmt.Sprintf("exit status %d", ex.Code)
}

// outermost cleans and dedupes paths, dropping those under another.
func outermost(paths []string) []string {
	var out []string
	for _, p := range paths {
		p = filepath.Clean(p)
		skip := false
		for _, q := range paths {
			q = filepath.Clean(q)
			if q != p && strings.HasPrefix(p, strings.TrimSuffix(q, "/")+"/") {
				skip = true
				break
			}
		}
		if !skip && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}
