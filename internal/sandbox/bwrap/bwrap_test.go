package bwrap_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

func newBackend() sandbox.Backend { return bwrap.New() }

func TestMain(m *testing.M) {
	sandboxtest.HelperMain(newBackend)
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	sandboxtest.Run(t, newBackend)
}

// TestLimitsWithoutCgroups: where no control group can be made (a
// non-root harness on a cgroup v1 host; here, a cgroup root with nothing
// mounted), memory and processes are watched from /proc and still end
// the sandbox at their limits.
func TestLimitsWithoutCgroups(t *testing.T) {
	b := &bwrap.Backend{CgroupRoot: t.TempDir()}
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	root := t.TempDir()
	ws, home := filepath.Join(root, "ws"), filepath.Join(root, "home")
	os.MkdirAll(ws, 0o755)
	os.MkdirAll(home, 0o755)
	p, err := b.Start(context.Background(), sandbox.Spec{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, Workspace: ws, Home: home,
		Tmp: filepath.Join(root, "tmp"), Limits: sandbox.Limits{MemoryBytes: 1 << 30, Pids: 100, CPUs: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait(context.Background())
	p.Destroy()
	for _, l := range p.(sandbox.Limited).Limits() {
		switch l.Name {
		case sandbox.LimitMemory, sandbox.LimitPids:
			if !l.Enforced || !strings.HasPrefix(l.How, "watchdog") || !strings.Contains(l.How, "no cgroup") {
				t.Errorf("%+v: want a /proc watchdog saying why there is no cgroup", l)
			}
		case sandbox.LimitCPU:
			if l.Enforced || !strings.HasPrefix(l.How, "not enforced") {
				t.Errorf("%+v: the CPU limit needs a cgroup", l)
			}
		}
	}
	sandboxtest.RunLimits(t, b)
}
