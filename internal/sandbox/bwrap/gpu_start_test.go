package bwrap_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

// TestGPUPreflightAndVisibility runs sandboxes against a fake /dev of a
// 2-GPU host whose nodes are real character devices (the null device's
// numbers): the job's GPU and the shared nodes are all the agent sees, and
// the preflight refuses nodes that are missing, not character devices, or
// not writable by the agent, before anything runs.
func TestGPUPreflightAndVisibility(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	mk := func(t *testing.T, mode uint32, plain ...string) string {
		d := t.TempDir()
		os.Chmod(d, 0o755)
		for _, n := range []string{"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"} {
			p := filepath.Join(d, n)
			var err error
			if slices.Contains(plain, n) {
				err = os.WriteFile(p, nil, 0o666)
			} else {
				err = syscall.Mknod(p, syscall.S_IFCHR|mode, 1<<8|3)
				os.Chmod(p, os.FileMode(mode))
			}
			if err != nil {
				t.Skipf("cannot make device nodes here: %v", err)
			}
		}
		return d
	}
	for _, c := range []struct {
		name  string
		mode  uint32
		plain []string
		error string
	}{
		{name: "visible", mode: 0o666},
		{name: "not a device", mode: 0o666, plain: []string{"nvidia1"}, error: "not a character device"},
		{name: "not writable", mode: 0o600, error: "not readable and writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev := mk(t, c.mode, c.plain...)
			if c.name == "not writable" && os.Geteuid() == 0 && !rootDrops() {
				t.Skip("the agent keeps the harness's uid here")
			}
			root := t.TempDir()
			ws, home, tmp := filepath.Join(root, "ws"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
			for _, d := range []string{ws, home} {
				os.MkdirAll(d, 0o755)
			}
			var out sandboxtest.Buffer
			be := &bwrap.Backend{DevRoot: dev}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := be.Start(ctx, sandbox.Spec{Argv: []string{"/bin/sh", "-c", "ls /dev"}, Env: []string{"PATH=/usr/bin:/bin"},
				Workspace: ws, Home: home, Tmp: tmp, GPUs: []int{1}, Stdout: &out, Stderr: &out})
			if c.error != "" {
				if err == nil {
					p.Destroy()
					t.Fatalf("started; want the preflight to fail with %q", c.error)
				}
				if !strings.Contains(err.Error(), c.error) || !strings.Contains(err.Error(), "/dev/nvidia1") {
					t.Errorf("error %v, want one naming /dev/nvidia1 and %q", err, c.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Destroy()
			if _, err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			var nv []string
			for _, n := range strings.Fields(out.String()) {
				if strings.HasPrefix(n, "nvidia") {
					nv = append(nv, n)
				}
			}
			if got, want := strings.Join(nv, " "), "nvidia-uvm nvidia-uvm-tools nvidia1 nvidiactl"; got != want {
				t.Errorf("GPU nodes inside: %q, want %q", got, want)
			}
		})
	}
}

// rootDrops reports whether a root harness here runs the agent as an
// unprivileged uid (the host's initial user namespace).
func rootDrops() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && len(strings.Fields(string(b))) == 3 && strings.Fields(string(b))[2] == "4294967295"
}
