package pyexec

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// The test binary is the worker inside the sandbox, as `ptb
// humaneval-worker` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WorkerCommand {
		os.Exit(Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func hostPython(t testing.TB) Interpreter {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	in, err := Resolve(context.Background(), "python3", env)
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	return in
}

func bwrapBackend(t testing.TB) sandbox.Backend {
	t.Helper()
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skipf("bubblewrap unavailable: %v", err)
	}
	return b
}

func testPool(t testing.TB, sb sandbox.Backend, py Interpreter, size int, timeout time.Duration) *Pool {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Sandbox: sb, Self: self, Python: py, Size: size, Timeout: timeout, OutputLimit: 1 << 20, TempDir: t.TempDir(),
		Limits: sandbox.Limits{MemoryBytes: 2 << 30, Pids: 256 + 64, TmpBytes: 64 << 20, DiskBytes: 256 << 20, DiskFiles: 10000}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func backends(t *testing.T) map[string]sandbox.Backend {
	out := map[string]sandbox.Backend{"none": none.New()}
	if b := bwrap.New(); b.Check(context.Background()) == nil {
		out["bwrap"] = b
	} else {
		t.Log("bubblewrap unavailable: only the none backend is tested")
	}
	return out
}

// Exit statuses, timeouts, signals and the output bound, on every backend.
func TestPoolResults(t *testing.T) {
	py := hostPython(t)
	for name, sb := range backends(t) {
		t.Run(name, func(t *testing.T) {
			// 5 s: the output-bound program must write its 1 MiB before the
			// timeout on a loaded 2-core CI machine (it timed out at 2 s
			// under load 10), while the loop case still times out.
			p := testPool(t, sb, py, 2, 5*time.Second)
			cases := []struct {
				name, program string
				pass          bool
				check         func(Result) string
			}{
				{"passes", "print('hello')", true, func(r Result) string {
					if string(r.Stdout) != "hello\n" {
						return fmt.Sprintf("stdout %q", r.Stdout)
					}
					return ""
				}},
				{"fails", "raise SystemExit(3)", false, func(r Result) string {
					if r.Code != 3 {
						return fmt.Sprintf("code %d", r.Code)
					}
					return ""
				}},
				{"assertion", "assert 1 == 2", false, nil},
				{"times out", "while True: pass", false, func(r Result) string {
					if !r.TimedOut {
						return "not timed out"
					}
					return ""
				}},
				{"killed", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", false, nil},
				{"output bound", "import sys\nfor _ in range(3000): sys.stdout.write('x' * 1000)", true, func(r Result) string {
					if !r.OutputExceeded {
						return "output limit not noted"
					}
					return ""
				}},
			}
			var wg sync.WaitGroup
			for _, c := range cases {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := p.Run(context.Background(), c.program)
					if err != nil {
						t.Errorf("%s: %v", c.name, err)
						return
					}
					if r.Passed() != c.pass {
						t.Errorf("%s: passed %v, want %v (%+v)", c.name, r.Passed(), c.pass, r)
					}
					if c.check != nil {
						if msg := c.check(r); msg != "" {
							t.Errorf("%s: %s", c.name, msg)
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// Programs run one after another in the same sandbox see nothing of each
// other: the first leaves files in every place it can write and a process
// detached from its session; the second finds none of them.
func TestPoolIsolatesSequentialPrograms(t *testing.T) {
	py := hostPython(t)
	p := testPool(t, bwrapBackend(t), py, 1, 10*time.Second)
	first := `import os, sys, subprocess
paths = [os.path.join(os.getcwd(), "left"), os.path.join(os.environ["HOME"], "left"),
         os.path.join(os.environ["TMPDIR"], "left"), "/tmp/left", "/dev/shm/left"]
for d in ["/run", "/dev"]:
    try:
        open(os.path.join(d, "left"), "w").write("x"); paths.append(os.path.join(d, "left"))
    except OSError:
        pass
for q in paths:
    open(q, "w").write("secret")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "ptb-left-behind"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("\n".join(paths))
`
	r, err := p.Run(context.Background(), first)
	if err != nil || !r.Passed() {
		t.Fatalf("first program: %+v, %v", r, err)
	}
	paths := strings.Fields(string(r.Stdout))
	if len(paths) < 5 {
		t.Fatalf("first program wrote %q", r.Stdout)
	}
	second := fmt.Sprintf(`import os
seen = [q for q in %q.split() if os.path.exists(q)]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if ("ptb-left-" + "behind").encode() in open("/proc/%%s/cmdline" %% pid, "rb").read():
                seen.append("process " + pid)
        except OSError:
            pass
print(seen)
`, strings.Join(paths, " "))
	r, err = p.Run(context.Background(), second)
	if err != nil || !r.Passed() {
		t.Fatalf("second program: %+v, %v", r, err)
	}
	if got := strings.TrimSpace(string(r.Stdout)); got != "[]" {
		t.Errorf("the second program saw what the first left: %s", got)
	}
}

// Programs running at the same time in two sandboxes see nothing of each
// other.
func TestPoolIsolatesConcurrentPrograms(t *testing.T) {
	py := hostPython(t)
	p := testPool(t, bwrapBackend(t), py, 2, 20*time.Second)
	first := `import os, sys, time
open("/tmp/concurrent-left", "w").write("secret")
open(os.path.join(os.environ["HOME"], "concurrent-left"), "w").write("secret")
print(os.getcwd(), flush=True)
os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(4)", "ptb-concurrent-marker"])
`
	second := `import os, time, glob
time.sleep(1.5)
seen = []
if os.path.exists("/tmp/concurrent-left"):
    seen.append("/tmp")
seen += glob.glob("/**/concurrent-left", recursive=False)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if ("ptb-concurrent-" + "marker").encode() in open("/proc/%s/cmdline" % pid, "rb").read():
                seen.append("process " + pid)
        except OSError:
            pass
print(seen)
`
	var wg sync.WaitGroup
	var r1, r2 Result
	var e1, e2 error
	wg.Add(2)
	go func() { defer wg.Done(); r1, e1 = p.Run(context.Background(), first) }()
	go func() { defer wg.Done(); r2, e2 = p.Run(context.Background(), second) }()
	wg.Wait()
	if e1 != nil || e2 != nil || !r1.Passed() || !r2.Passed() {
		t.Fatalf("programs: %+v %v / %+v %v", r1, e1, r2, e2)
	}
	if got := strings.TrimSpace(string(r2.Stdout)); got != "[]" {
		t.Errorf("a concurrent program saw the other's files or process: %s", got)
	}
}

// A hostile program tries to kill or write to every process it can see
// (the worker among them); the worker survives and answers the next
// program truthfully.
func TestPoolWorkerSurvivesHostileProgram(t *testing.T) {
	py := hostPython(t)
	p := testPool(t, bwrapBackend(t), py, 1, 10*time.Second)
	// The worker and bwrap's init are the processes whose command line
	// is theirs; everything else listed is the program's own namespace.
	hostile := `import os, signal
hits, targets = [], []
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read()
    except OSError:
        continue
    if cmd.endswith(b"humaneval-worker\x00") or cmd.startswith(b"/usr/bin/bwrap\x00"):
        targets.append(pid)
for pid in targets:
    for fd in ("0", "1", "2"):
        try:
            with open("/proc/%s/fd/%s" % (pid, fd), "wb") as f:
                f.write(b"\x00\x00\x00\x02{}")
            hits.append("fd %s/%s" % (pid, fd))
        except OSError:
            pass
print(len(targets), hits, flush=True)
for pid in targets:
    # The numbers /proc shows are not this namespace's: the worker's may
    # name this program itself here.
    if int(pid) != os.getpid():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
`
	r, err := p.Run(context.Background(), hostile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(r.Stdout)); got != "2 []" {
		t.Errorf("the program reached the worker (want 2 targets, no hits): %s", got)
	}
	r, err = p.Run(context.Background(), "raise SystemExit(7)")
	if err != nil || r.Code != 7 {
		t.Fatalf("next program: %+v, %v", r, err)
	}
	if p.seq != 1 {
		t.Errorf("%d sandboxes started, want the first one to have survived", p.seq)
	}
}

// The interpreter is the one found on the host, even in a home directory
// the sandbox hides: a venv there keeps its own prefix.
func TestPoolUsesInterpreterInHiddenHome(t *testing.T) {
	py := hostPython(t)
	sb := bwrapBackend(t)
	home := filepath.Join(t.TempDir(), "home")
	venv := filepath.Join(home, "u", "venv")
	if out, err := exec.Command(py.Path, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Skipf("cannot make a venv: %v: %s", err, out)
	}
	t.Setenv("HOME", home) // the sandbox hides the harness's HOME
	in, err := Resolve(context.Background(), filepath.Join(venv, "bin", "python"), []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	if in.Path != filepath.Join(venv, "bin", "python") {
		t.Errorf("interpreter %s, want the venv's", in.Path)
	}
	p := testPool(t, sb, in, 1, 10*time.Second)
	r, err := p.Run(context.Background(), "import sys; print(sys.prefix)")
	if err != nil || !r.Passed() {
		t.Fatalf("%+v, %v", r, err)
	}
	if got := strings.TrimSpace(string(r.Stdout)); got != venv {
		t.Errorf("sys.prefix %q, want the venv %q", got, venv)
	}
}
