package pyexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/safeio"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
)

// drainWait bounds how long output is read after a program's processes are
// gone (a descendant that escaped the process group, without isolation,
// may hold the pipe).
const drainWait = 2 * time.Second

// Serve is the worker: it reads a Config from in, answers Ready, then runs
// one program per request and answers each with its Result, until in ends
// (nil) or a write fails. It makes itself non-dumpable first, so that a
// program running as the same user can neither trace it nor open its
// /proc entries (its pipes to the harness among them).
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0)
	var cfg Config
	if err := readFrame(in, &cfg); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	w := &worker{cfg: cfg, guarded: map[string]map[string]bool{}}
	if err := w.check(); err != nil {
		_ = writeFrame(out, response{Error: err.Error()})
		return err
	}
	if err := writeFrame(out, response{Ready: true}); err != nil {
		return err
	}
	for {
		var req request
		if err := readFrame(in, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		resp := w.run(ctx, req)
		if err := writeFrame(out, resp); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
		if resp.Retire {
			return errors.New(resp.Error)
		}
	}
}

type worker struct {
	cfg     Config
	n       int
	guarded map[string]map[string]bool // Guard directory -> the paths it held at the start
	bufs    [2][]byte                  // copy buffers for a program's stdout and stderr
}

func (w *worker) copyBuf(stdout bool) []byte {
	i := 0
	if !stdout {
		i = 1
	}
	if w.bufs[i] == nil {
		w.bufs[i] = make([]byte, 32<<10)
	}
	return w.bufs[i]
}

// onlyReader hides an *os.File's WriteTo, so that io.CopyBuffer uses the
// buffer it is given.
type onlyReader struct{ io.Reader }

func (w *worker) check() error {
	if w.cfg.Python == "" || !filepath.IsAbs(w.cfg.Python) {
		return fmt.Errorf("interpreter %q: want an absolute path", w.cfg.Python)
	}
	if _, err := os.Stat(w.cfg.Python); err != nil {
		return fmt.Errorf("interpreter: %w", err)
	}
	for _, d := range append([]string{w.cfg.Work, w.cfg.Home, w.cfg.Tmp}, w.cfg.Scratch...) {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("directory %q: want an absolute path", d)
		}
	}
	if w.cfg.OutputLimit <= 0 {
		return errors.New("no output limit given")
	}
	for _, d := range w.cfg.Guard {
		if snap, err := snapshot(d); err == nil {
			w.guarded[d] = snap
		}
	}
	return nil
}

// run runs one program and empties the scratch directories after it.
func (w *worker) run(ctx context.Context, req request) response {
	w.n++
	resp := w.exec(ctx, req)
	if err := w.wipe(); err != nil {
		resp.Retire = true
		if resp.Error == "" {
			resp.Error = fmt.Sprintf("empty what program %d left: %v", w.n, err)
		}
	}
	return resp
}

func (w *worker) exec(ctx context.Context, req request) response {
	name := "p" + strconv.Itoa(w.n)
	work, home, tmp := filepath.Join(w.cfg.Work, name), filepath.Join(w.cfg.Home, name), filepath.Join(w.cfg.Tmp, name)
	for _, d := range []string{work, home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return response{Error: fmt.Sprintf("make program directory: %v", err)}
		}
	}
	cmd := exec.Command(w.cfg.Python, "-c", req.Program)
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if w.cfg.Isolate {
		// The program runs under a shell that is pid 1 of a pid
		// namespace of its own: when the program exits, the shell exits
		// with its status (128+n for signal n) and the kernel kills
		// everything left running there. The program itself is not pid
		// 1, so its own signals end it as anywhere else. (The shell
		// does not exec the last command: `; exit $?` follows it.)
		cmd = exec.Command(initShell, "-c", `"$@"; exit $?`, "ptb-humaneval-init", w.cfg.Python, "-c", req.Program)
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	cmd.Env = append(append([]string{}, w.cfg.Env...), "HOME="+home, "TMPDIR="+tmp)
	cmd.Dir = work
	stdout := &capture{max: w.cfg.OutputLimit, keep: true}
	stderr := &capture{max: w.cfg.OutputLimit}
	var readers []*os.File
	var wg sync.WaitGroup
	for _, c := range []*capture{stdout, stderr} {
		r, pw, err := os.Pipe()
		if err != nil {
			return response{Error: fmt.Sprintf("make pipe: %v", err)}
		}
		readers = append(readers, r)
		if c == stdout {
			cmd.Stdout = pw
		} else {
			cmd.Stderr = pw
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One buffer per stream for the worker's life: io.Copy
			// from an *os.File would allocate (and the kernel fault
			// in) a fresh 32 KiB for every program.
			_, _ = io.CopyBuffer(c, onlyReader{r}, w.copyBuf(c == stdout))
		}()
	}
	closeReaders := func() {
		for _, r := range readers {
			r.Close()
		}
	}
	began := time.Now()
	err := cmd.Start()
	cmd.Stdout.(*os.File).Close()
	cmd.Stderr.(*os.File).Close()
	if err != nil {
		closeReaders()
		wg.Wait()
		return response{Error: fmt.Sprintf("start %s: %v", w.cfg.Python, err)}
	}
	pid := cmd.Process.Pid
	var timedOut atomic.Bool
	timer := time.AfterFunc(time.Duration(req.Timeout), func() {
		timedOut.Store(true)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
	})
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	werr := cmd.Wait()
	dur := time.Since(began)
	timer.Stop()
	stop()
	// Whatever the program left in its group goes with it (with
	// isolation, the kernel has killed its whole pid namespace already).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainWait):
		closeReaders()
		<-drained
	}
	closeReaders()
	res := Result{Code: cmd.ProcessState.ExitCode(), TimedOut: timedOut.Load(), Duration: dur,
		OutputExceeded: stdout.exceeded || stderr.exceeded, Stdout: stdout.buf.Bytes()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Code, res.Signal = -1, execproc.SignalName(int(ws.Signal()))
	} else if w.cfg.Isolate && res.Code > 128 && res.Code < 160 {
		// The shell reports a program a signal ended as 128+n (as
		// bwrap does).
		res.Code, res.Signal = -1, execproc.SignalName(res.Code-128)
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return response{Error: fmt.Sprintf("wait for %s: %v", w.cfg.Python, werr)}
	}
	return response{Result: res}
}

// wipe removes everything in the scratch directories, and what is new in
// the guarded ones, even what the program made unreadable or unwritable.
func (w *worker) wipe() error {
	var errs []error
	for _, d := range w.cfg.Scratch {
		ents, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if err := safeio.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for d, had := range w.guarded {
		if err := prune(d, had); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// snapshot lists the paths under root on root's own file system (mount
// points below it, and what they hold, are left out).
func snapshot(root string) (map[string]bool, error) {
	dev, err := devOf(root)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p != root && d.IsDir() {
			if dd, err := devOf(p); err != nil || dd != dev {
				out[p] = true
				return filepath.SkipDir
			}
		}
		out[p] = true
		return nil
	})
	return out, err
}

// prune removes what is under root but not in had, on root's file system.
func prune(root string, had map[string]bool) error {
	dev, err := devOf(root)
	if err != nil {
		return err
	}
	var errs []error
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if !had[p] {
				if err := safeio.RemoveAll(p); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			if e.IsDir() {
				if d, err := devOf(p); err == nil && d == dev {
					walk(p)
				}
			}
		}
	}
	walk(root)
	return errors.Join(errs...)
}

func devOf(p string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, err
	}
	return uint64(st.Dev), nil
}

// capture keeps up to max bytes (when keep is set) and notes whether more
// were written.
type capture struct {
	max      int
	keep     bool
	n        int
	exceeded bool
	buf      bytes.Buffer
}

func (c *capture) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.n > c.max {
		c.exceeded = true
		return len(p), nil
	}
	if c.keep {
		c.buf.Write(p)
	}
	return len(p), nil
}

// initShell is the pid 1 of each program's pid namespace.
const initShell = "/bin/sh"

// Main is `ptb humaneval-worker`: the worker, Serve on stdin and stdout.
// It returns the process's exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "ptb humaneval-worker: unexpected arguments %q\n", args)
		return 2
	}
	if err := Serve(context.Background(), stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "ptb humaneval-worker: %v\n", err)
		return 1
	}
	return 0
}
