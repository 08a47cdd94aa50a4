package bwrap_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// TestConcurrentSandboxesHaveTheirOwnUID: under a root harness, two
// sandboxes running at once run as two different unprivileged uids, and
// a slot is reused once its sandbox is destroyed.
func TestConcurrentSandboxesHaveTheirOwnUID(t *testing.T) {
	if os.Geteuid() != 0 || !rootDrops() {
		t.Skip("uid slots are for a root harness in the host's user namespace")
	}
	b := &bwrap.Backend{SlotDir: t.TempDir()}
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	marker := "ptb-slot-test-" + filepath.Base(t.TempDir())
	start := func() sandbox.Process {
		root := t.TempDir()
		ws, home := filepath.Join(root, "ws"), filepath.Join(root, "home")
		os.MkdirAll(ws, 0o755)
		os.MkdirAll(home, 0o755)
		p, err := b.Start(context.Background(), sandbox.Spec{Argv: []string{"/bin/sh", "-c", "sleep 30", marker},
			Env: []string{"PATH=/usr/bin:/bin"}, Workspace: ws, Home: home, Tmp: filepath.Join(root, "tmp")})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	uids := func() map[int]bool {
		out := map[int]bool{}
		for _, p := range proctree.List() {
			cl, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
			if !bytes.Contains(cl, []byte(marker)) || p.Comm == "bwrap" {
				continue
			}
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/status")
			for _, l := range strings.Split(string(st), "\n") {
				if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
					u, _ := strconv.Atoi(f[1])
					out[u] = true
				}
			}
		}
		return out
	}
	base := bwrap.DefaultDrop.UID
	// The launcher passes through root (the harness's uid) on its way to
	// the agent's; wait for the agents themselves.
	wait := func(n int) map[int]bool {
		end := time.Now().Add(10 * time.Second)
		for time.Now().Before(end) {
			if u := uids(); len(u) == n && u[base] && u[base+1] {
				return u
			}
			time.Sleep(50 * time.Millisecond)
		}
		return uids()
	}
	p1, p2 := start(), start()
	got := wait(2)
	if len(got) != 2 || !got[base] || !got[base+1] {
		t.Errorf("agent uids %v, want %d and %d", got, base, base+1)
	}
	p1.Destroy()
	p3 := start()
	defer p3.Destroy()
	defer p2.Destroy()
	time.Sleep(200 * time.Millisecond)
	if got := wait(2); !got[base] || !got[base+1] || len(got) != 2 {
		t.Errorf("after the first sandbox ended, uids %v: its slot was not reused", got)
	}
}
