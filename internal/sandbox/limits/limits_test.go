package limits

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestMeasureCountsWhatTheDiskHolds(t *testing.T) {
	d := t.TempDir()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	os.WriteFile(filepath.Join(d, "a"), big, 0o644)
	// 40 hard links to it and a 1 GiB sparse file cost (about) nothing.
	for i := 0; i < 40; i++ {
		os.Link(filepath.Join(d, "a"), filepath.Join(d, "link"+string(rune('A'+i))))
	}
	f, _ := os.Create(filepath.Join(d, "sparse"))
	f.Truncate(1 << 30)
	f.Close()
	u, err := Measure(context.Background(), []string{d}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes < 1<<20 || u.Bytes > 2<<20 {
		t.Errorf("measured %d bytes, want about 1 MiB (hard links once, sparse holes free)", u.Bytes)
	}
	if u.Files != 43 { // the directory, a, 40 links, sparse
		t.Errorf("files %d, want 43", u.Files)
	}
	if u, _ := Measure(context.Background(), []string{d}, 10); u.Files != 11 {
		t.Errorf("with a cap of 10 files the walk went on to %d", u.Files)
	}
}

func TestCgroupLimitsAndRemoval(t *testing.T) {
	g, st, err := Create("", "job-test-"+filepath.Base(t.TempDir()), sandbox.Limits{MemoryBytes: 32 << 20, Pids: 16})
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	defer g.Remove()
	for _, s := range st {
		if !s.Enforced {
			t.Skipf("%s: %s", s.Name, s.How)
		}
		if !strings.HasPrefix(s.How, "cgroup v") {
			t.Errorf("%s enforced by %q", s.Name, s.How)
		}
	}
	// Forks beyond the pids limit fail, and the group says so.
	argv := JoinArgv(g.Procs(), []string{"/bin/sh", "-c", "for i in $(seq 1 40); do sleep 1 & done; wait"})
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if g.Hit() != sandbox.LimitPids {
		t.Errorf("hit %q after 40 forks under a limit of 16 (%s)", g.Hit(), out)
	}
	if !g.Kill() || len(g.Pids()) != 0 {
		t.Errorf("processes left in the group: %v", g.Pids())
	}
	procs := g.Procs()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if _, err := os.Stat(filepath.Dir(p)); err == nil {
			t.Errorf("%s left behind", filepath.Dir(p))
		}
	}
}

// TestCgroupV2WithoutControllers runs the unified-tree path where the
// tree has none of the controllers (a hybrid host's /sys/fs/cgroup/unified):
// the group is made, joined and removed, and each limit reads as not
// enforced, with the reason.
func TestCgroupV2WithoutControllers(t *testing.T) {
	root := "/sys/fs/cgroup/unified"
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err != nil || strings.Contains(string(b), "memory") || strings.Contains(string(b), "pids") {
		t.Skip("no controller-less unified tree here")
	}
	g, st, err := Create(root, "job-test-"+filepath.Base(t.TempDir()), sandbox.Limits{MemoryBytes: 32 << 20, Pids: 16})
	if err != nil {
		t.Skipf("cannot make a group: %v", err)
	}
	defer g.Remove()
	if len(st) != 2 {
		t.Fatalf("statuses %+v, want memory and pids", st)
	}
	for _, s := range st {
		if s.Enforced || !strings.Contains(s.How, "not enforced: no "+s.Name+" controller") {
			t.Errorf("%+v: want not enforced for want of the controller", s)
		}
	}
	argv := JoinArgv(g.Procs(), []string{"/bin/sh", "-c", "cat /proc/self/cgroup"})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0::/ptb/job-test-") {
		t.Errorf("the command did not run in the group: %v %s", err, out)
	}
	procs := g.Procs()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(procs[0])); err == nil {
		t.Errorf("group left behind")
	}
}
