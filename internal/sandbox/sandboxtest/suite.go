package sandboxtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// Buffer is a goroutine-safe bytes.Buffer for a process's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type fixture struct {
	t       *testing.T
	backend sandbox.Backend
	root    string
	marker  string
}

func newFixture(t *testing.T, b sandbox.Backend) *fixture {
	root := t.TempDir()
	for _, d := range []string{"workspace", "home", "tmp", "other-run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "other-run", "secret.txt"), []byte("other run"), 0o644)
	return &fixture{t: t, backend: b, root: root, marker: "ptb-sbx-marker:" + root}
}

func (f *fixture) spec(mode string, extraEnv ...string) (sandbox.Spec, *Buffer, *Buffer) {
	exe, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	var out, errb Buffer
	env := append([]string{HelperEnv + "=" + mode, "PATH=/usr/bin:/bin", "HOME=" + filepath.Join(f.root, "home")}, extraEnv...)
	return sandbox.Spec{
		Argv:      []string{exe, f.marker},
		Env:       env,
		Workspace: filepath.Join(f.root, "workspace"),
		Home:      filepath.Join(f.root, "home"),
		Tmp:       filepath.Join(f.root, "tmp"),
		ReadOnly:  []string{exe},
		Hidden:    []string{filepath.Join(f.root, "other-run")},
		Stdout:    &out,
		Stderr:    &errb,
	}, &out, &errb
}

func (f *fixture) run(spec sandbox.Spec) sandbox.Exit {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := f.backend.Start(ctx, spec)
	if err != nil {
		f.t.Fatalf("Start: %v", err)
	}
	defer p.Destroy()
	ex, err := p.Wait(ctx)
	if err != nil {
		f.t.Fatalf("Wait: %v", err)
	}
	return ex
}

// markerProcs lists host processes whose command line carries the marker.
func (f *fixture) markerProcs() []int {
	var pids []int
	for _, p := range proctree.List() {
		b, err := os.ReadFile(filepath.Join("/proc", itoa(p.PID), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(f.marker)) && proctree.Alive(p.PID) && p.Comm != "bwrap" {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// outsideDir is a fresh host directory outside /tmp, /home and /root
// (where a harness may keep its home or another output root), removed at
// the end of the test.
func outsideDir(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{"/srv", "/var/tmp"} {
		d, err := os.MkdirTemp(parent, "ptb-sbxtest-")
		if err == nil {
			os.Chmod(d, 0o755)
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	t.Skip("no writable directory outside /tmp (tried /srv, /var/tmp)")
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// Run runs the contract suite against the backend newBackend returns. The
// calling package's TestMain must call HelperMain(newBackend) first. The
// suite imports no backend: a new one (a container runtime) runs it from
// its own test package.
func Run(t *testing.T, newBackend func() sandbox.Backend) {
	b := newBackend()
	if err := b.Check(context.Background()); err != nil {
		t.Skipf("backend unavailable: %v", err)
	}
	caps := b.Capabilities()

	t.Run("ExitCode", func(t *testing.T) {
		f := newFixture(t, b)
		for _, code := range []int{0, 7} {
			spec, out, _ := f.spec("exit:" + itoa(code))
			ex := f.run(spec)
			if ex.Code != code || ex.Signal != "" {
				t.Errorf("exit:%d: got %+v (output %q)", code, ex, out.String())
			}
		}
	})

	t.Run("Output", func(t *testing.T) {
		f := newFixture(t, b)
		spec, out, errb := f.spec("echo")
		f.run(spec)
		if out.String() != "to stdout\n" || errb.String() != "to stderr\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errb.String())
		}
	})

	t.Run("EnvironmentIsExactlyTheSpec", func(t *testing.T) {
		f := newFixture(t, b)
		t.Setenv("PTB_HOST_SECRET", "leak")
		spec, out, _ := f.spec("env", "FOO=bar")
		f.run(spec)
		got := out.String()
		if !strings.Contains(got, "FOO=bar\n") {
			t.Errorf("FOO=bar missing from %q", got)
		}
		if strings.Contains(got, "PTB_HOST_SECRET") {
			t.Errorf("host variable leaked into sandbox: %q", got)
		}
		if !strings.Contains(got, "PWD="+spec.Workspace+"\n") {
			t.Errorf("working directory is not the workspace: %q", got)
		}
	})

	t.Run("WorkspaceWritable", func(t *testing.T) {
		f := newFixture(t, b)
		target := filepath.Join(f.root, "workspace", "out.txt")
		spec, out, _ := f.spec("write:" + target)
		if ex := f.run(spec); ex.Code != 0 {
			t.Fatalf("write in workspace failed: %+v %q", ex, out.String())
		}
		if _, err := os.Stat(target); err != nil {
			t.Errorf("file written in the sandbox is not in the workspace: %v", err)
		}
	})

	t.Run("StopTerminatesWithinGrace", func(t *testing.T) {
		f := newFixture(t, b)
		spec, _, _ := f.spec("hang")
		p, err := b.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Destroy()
		waitFor(10*time.Second, func() bool { return len(f.markerProcs()) > 0 })
		start := time.Now()
		if err := p.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		ex, err := p.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 20*time.Second {
			t.Errorf("a process that honours SIGTERM took %v to stop (grace 30s)", time.Since(start))
		}
		if ex.Signal != "SIGTERM" {
			t.Errorf("exit = %+v, want killed by SIGTERM", ex)
		}
		if left := f.markerProcs(); len(left) > 0 {
			t.Errorf("processes left after Stop: %v", left)
		}
	})

	t.Run("StopKillsWhatIgnoresTerm", func(t *testing.T) {
		f := newFixture(t, b)
		spec, out, _ := f.spec("ignore-term")
		p, err := b.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Destroy()
		waitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "ignoring") })
		grace := 500 * time.Millisecond
		start := time.Now()
		p.Stop(grace)
		took := time.Since(start)
		ex, _ := p.Wait(context.Background())
		if took < grace {
			t.Errorf("Stop returned after %v, before the grace of %v ended", took, grace)
		}
		if ex.Signal != "SIGKILL" {
			t.Errorf("exit = %+v, want killed by SIGKILL", ex)
		}
		if left := f.markerProcs(); len(left) > 0 {
			t.Errorf("processes left after Stop: %v", left)
		}
	})

	t.Run("StopReapsGrandchildren", func(t *testing.T) {
		f := newFixture(t, b)
		spec, out, _ := f.spec("fork")
		p, err := b.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Destroy()
		if !waitFor(10*time.Second, func() bool { return len(f.markerProcs()) >= 4 }) {
			t.Fatalf("helper did not fork: %q, procs %v", out.String(), f.markerProcs())
		}
		p.Stop(300 * time.Millisecond)
		p.Wait(context.Background())
		if !waitFor(5*time.Second, func() bool { return len(f.markerProcs()) == 0 }) {
			t.Errorf("descendants left after Stop: %v", f.markerProcs())
		}
	})

	t.Run("DiesWithHarness", func(t *testing.T) {
		f := newFixture(t, b)
		spec, _, _ := f.spec("hang")
		// A child harness that starts the sandbox and is then SIGKILLed.
		exe, _ := os.Executable()
		h := exec.Command(exe, "-test.run=^$")
		h.Env = append(os.Environ(), HarnessEnv+"="+encodeSpec(spec), HarnessBackendEnv+"="+caps.Name)
		var hout bytes.Buffer
		h.Stdout = &hout
		h.Stderr = &hout
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitFor(20*time.Second, func() bool { return len(f.markerProcs()) > 0 }) {
			h.Process.Kill()
			h.Wait()
			t.Fatalf("harness did not start the agent: %s", hout.String())
		}
		h.Process.Signal(syscall.SIGKILL)
		h.Wait()
		if !waitFor(10*time.Second, func() bool { return len(f.markerProcs()) == 0 }) {
			t.Errorf("agent outlived the harness: %v", f.markerProcs())
			for _, pid := range f.markerProcs() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	if !caps.Isolated {
		return
	}

	t.Run("WriteOutsideWorkspaceFails", func(t *testing.T) {
		f := newFixture(t, b)
		for _, target := range []string{
			filepath.Join(f.root, "outside.txt"),
			"/etc/ptb-sandbox-test",
			filepath.Join(os.TempDir(), "ptb-sandbox-test-"+filepath.Base(f.root)),
		} {
			spec, out, _ := f.spec("write:" + target)
			ex := f.run(spec)
			// Under /tmp the write may land in the sandbox's private /tmp;
			// elsewhere the host is read-only and the write must fail.
			if ex.Code == 0 && !strings.HasPrefix(target, os.TempDir()) {
				t.Errorf("write to %s succeeded inside the sandbox: %q", target, out.String())
			}
			if _, err := os.Stat(target); err == nil {
				os.Remove(target)
				t.Errorf("%s exists on the host after a sandboxed write", target)
			}
		}
	})

	t.Run("HiddenPathsInvisible", func(t *testing.T) {
		f := newFixture(t, b)
		spec, out, _ := f.spec("read:" + filepath.Join(f.root, "other-run"))
		if ex := f.run(spec); ex.Code == 0 {
			t.Errorf("another run's directory is readable in the sandbox: %q", out.String())
		}
	})

	t.Run("HostSecretsUnreadable", func(t *testing.T) {
		// Files the host keeps from other users stay unreadable even when
		// the harness runs as root.
		if _, err := os.Stat("/etc/shadow"); err != nil {
			t.Skip("no /etc/shadow here")
		}
		f := newFixture(t, b)
		spec, out, _ := f.spec("readfile:/etc/shadow")
		if ex := f.run(spec); ex.Code == 0 {
			t.Errorf("/etc/shadow is readable in the sandbox: %q", out.String())
		}
	})

	t.Run("OnlyAllowedHostPathsVisible", func(t *testing.T) {
		// What a harness keeps outside the usual places: its home with
		// the agent CLIs' credentials (HOME need not be under /home),
		// XDG and cache directories, another output root, and unix
		// sockets anyone may connect to. None of it is the agent's.
		f := newFixture(t, b)
		out := outsideDir(t)
		secrets := map[string]string{
			"harness home codex auth": filepath.Join(out, "h", ".codex", "auth.json"),
			"harness home hf token":   filepath.Join(out, "h", ".cache", "huggingface", "token"),
			"harness home ssh key":    filepath.Join(out, "h", ".ssh", "id_rsa"),
			"XDG config dir":          filepath.Join(out, "xdg", "config", "gh", "hosts.yml"),
			"HF_HOME":                 filepath.Join(out, "hf", "token"),
			"CLAUDE_CONFIG_DIR":       filepath.Join(out, "claude", ".credentials.json"),
			"another output root":     filepath.Join(out, "runs2", "gsm8k_x_s0", "workspace", "train.jsonl"),
			"another run's eval":      filepath.Join(out, "runs2", "gsm8k_x_s0", "eval", "samples.jsonl"),
		}
		for _, p := range secrets {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("secret"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("HOME", filepath.Join(out, "h"))
		t.Setenv("XDG_CONFIG_HOME", filepath.Join(out, "xdg", "config"))
		t.Setenv("HF_HOME", filepath.Join(out, "hf"))
		t.Setenv("CLAUDE_CONFIG_DIR", filepath.Join(out, "claude"))
		socks := map[string]string{
			"socket outside the run": filepath.Join(out, "host.sock"),
			"socket in /tmp":         filepath.Join(os.TempDir(), "ptb-sbxtest-"+filepath.Base(f.root)+".sock"),
			"abstract socket":        "@ptb-sbxtest-" + filepath.Base(f.root),
		}
		if os.Geteuid() == 0 {
			socks["socket in /run"] = "/run/ptb-sbxtest-" + filepath.Base(f.root) + ".sock"
		}
		for _, p := range socks {
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			if p[0] != '@' {
				os.Chmod(p, 0o777)
			}
		}
		type attempt struct{ name, mode string }
		var attempts []attempt
		for name, p := range secrets {
			attempts = append(attempts, attempt{name, "readfile:" + p})
		}
		attempts = append(attempts, attempt{"harness home listing", "read:" + filepath.Join(out, "h")},
			attempt{"another output root listing", "read:" + filepath.Join(out, "runs2")})
		for name, p := range socks {
			attempts = append(attempts, attempt{name, "connect:" + p})
		}
		for _, a := range attempts {
			t.Run(strings.ReplaceAll(a.name, " ", "_"), func(t *testing.T) {
				spec, sout, _ := f.spec(a.mode)
				if ex := f.run(spec); ex.Code == 0 {
					t.Errorf("%s: the agent got through (%s): %q", a.name, a.mode, sout.String())
				}
			})
		}
	})

	t.Run("Limits", func(t *testing.T) { RunLimits(t, b) })

	t.Run("NoNetworkByDefault", func(t *testing.T) {
		f := newFixture(t, b)
		spec, out, _ := f.spec("net")
		if ex := f.run(spec); ex.Code != 0 {
			t.Errorf("sandbox has network interfaces: %q", out.String())
		}
	})
}

// RunLimits checks that each limit a backend reports as enforced holds:
// a fork bomb ends at the pids limit, a memory hog at the memory limit,
// a /tmp fill at its size, a workspace fill at the disk limit. The
// process ends with the limit's name and the harness carries on.
func RunLimits(t *testing.T, b sandbox.Backend) {
	const mib = 1 << 20
	cases := []struct {
		name   string
		limit  string
		limits sandbox.Limits
		mode   func(f *fixture) string
		// ends: the process is ended with Exit.Limit == limit; otherwise
		// it runs to its end and check looks at its output.
		ends  bool
		check func(t *testing.T, out string)
	}{
		{name: "ForkBombBoundedByPids", limit: sandbox.LimitPids, limits: sandbox.Limits{Pids: 64},
			mode: func(*fixture) string { return "forkbomb" }, ends: true},
		{name: "MemoryHogBoundedByMemory", limit: sandbox.LimitMemory, limits: sandbox.Limits{MemoryBytes: 64 * mib},
			mode: func(*fixture) string { return "memhog:1024" }, ends: true},
		{name: "TmpFillBoundedBySize", limit: sandbox.LimitTmp, limits: sandbox.Limits{TmpBytes: 8 * mib},
			mode: func(*fixture) string { return "fill:/tmp/fill" },
			check: func(t *testing.T, out string) {
				var n int64
				if _, err := fmt.Sscanf(out, "filled %d bytes", &n); err != nil || n > 8*mib || !strings.Contains(out, "no space left") {
					t.Errorf("/tmp of 8 MiB took: %q", out)
				}
			}},
		{name: "DiskFillBoundedByWatchdog", limit: sandbox.LimitDisk, limits: sandbox.Limits{DiskBytes: 16 * mib},
			mode: func(f *fixture) string { return "fillslow:" + filepath.Join(f.root, "workspace", "big") }, ends: true},
		// Without a /tmp size, /tmp is a host directory the disk limit covers.
		{name: "UnsizedTmpFillBoundedByWatchdog", limit: sandbox.LimitDisk, limits: sandbox.Limits{DiskBytes: 16 * mib},
			mode: func(*fixture) string { return "fillslow:/tmp/big" }, ends: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, b)
			spec, out, _ := f.spec(c.mode(f))
			spec.Limits = c.limits
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, err := b.Start(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Destroy()
			lp, ok := p.(sandbox.Limited)
			if !ok {
				t.Skipf("backend %s enforces no limits", b.Capabilities().Name)
			}
			var st *sandbox.LimitStatus
			for _, s := range lp.Limits() {
				if s.Name == c.limit {
					st = &s
				}
			}
			if st == nil {
				t.Fatalf("limit %s asked for but not reported: %+v", c.limit, lp.Limits())
			}
			if !st.Enforced {
				t.Skipf("limit %s not enforced here: %s", c.limit, st.How)
			}
			ex, err := p.Wait(ctx)
			if err != nil {
				p.Stop(time.Second)
				t.Fatalf("the limit did not end the process in time: %v (output %q)", err, out.String())
			}
			if c.ends && ex.Limit != c.limit {
				t.Errorf("exit %+v, want ended by the %s limit (output %q)", ex, c.limit, out.String())
			}
			if c.check != nil {
				c.check(t, out.String())
			}
			if left := f.markerProcs(); len(left) > 0 {
				t.Errorf("processes left: %v", left)
			}
		})
	}
}
