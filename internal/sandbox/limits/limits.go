// Package limits enforces a sandboxed job's resource limits on the host:
// a control group per job for memory, processes and CPU (cgroup v2 where
// the host has the controllers in the unified tree, else the v1 memory,
// pids and cpu hierarchies), and a disk watchdog for the workspace and
// home. Process-based backends put their launcher into the group before
// it starts anything (JoinArgv).
package limits

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// DefaultRoot is where the host mounts its cgroup hierarchies.
const DefaultRoot = "/sys/fs/cgroup"

// Group is one job's control group.
type Group struct {
	v2   bool
	dirs map[string]string // controller -> directory (v2: the same one for each)

	mu   sync.Mutex // guards made: a watchdog reads it while Remove clears it
	made []string   // directories made, innermost last
}

// cfsPeriod is the CPU bandwidth period (µs) for the cpu limit.
const cfsPeriod = 100000

// Create makes the control group name (a single path element) under root
// (DefaultRoot when empty), inside a "ptb" group of its own, and applies
// the memory, pids and CPU limits of l. It returns the group and a status
// for each of those limits that l asks for; a limit the host cannot
// enforce is reported as such (Enforced false, How saying why), and only
// a group that cannot be made at all is an error (with a nil group).
func Create(root, name string, l sandbox.Limits) (*Group, []sandbox.LimitStatus, error) {
	if root == "" {
		root = DefaultRoot
	}
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, nil, fmt.Errorf("create cgroup: bad name %q", name)
	}
	want := map[string]bool{
		sandbox.LimitMemory: l.MemoryBytes > 0,
		sandbox.LimitPids:   l.Pids > 0,
		sandbox.LimitCPU:    l.CPUs > 0,
	}
	if !want[sandbox.LimitMemory] && !want[sandbox.LimitPids] && !want[sandbox.LimitCPU] {
		return nil, nil, nil
	}
	sweep(root)
	g := &Group{dirs: map[string]string{}}
	if ctrl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		g.v2 = true
		if err := g.makeV2(root, name, strings.Fields(string(ctrl))); err != nil {
			g.Remove()
			return nil, nil, err
		}
	} else {
		for _, c := range []string{"memory", "pids", "cpu"} {
			if !want[cgName(c)] {
				continue
			}
			base := filepath.Join(root, c)
			if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
				continue // this controller is not mounted here
			}
			d, err := g.mkdirs(base, "ptb", name)
			if err != nil {
				g.Remove()
				return nil, nil, fmt.Errorf("create cgroup: %w", err)
			}
			g.dirs[c] = d
		}
		if len(g.dirs) == 0 {
			return nil, nil, fmt.Errorf("create cgroup: no v1 memory, pids or cpu hierarchy under %s and no unified one", root)
		}
	}
	var st []sandbox.LimitStatus
	set := func(limit string, value float64, ctrl, file, content string) {
		if !want[limit] {
			return
		}
		s := sandbox.LimitStatus{Name: limit, Value: value}
		d, ok := g.dirs[ctrl]
		switch {
		case !ok:
			s.How = "not enforced: no " + ctrl + " controller on this host"
		default:
			if err := os.WriteFile(filepath.Join(d, file), []byte(content), 0o644); err != nil {
				s.How = "not enforced: " + err.Error()
			} else {
				s.Enforced = true
				s.How = g.kind() + " " + ctrl
			}
		}
		st = append(st, s)
	}
	if g.v2 {
		set(sandbox.LimitMemory, float64(l.MemoryBytes), "memory", "memory.max", strconv.FormatInt(l.MemoryBytes, 10))
		if d, ok := g.dirs["memory"]; ok && want[sandbox.LimitMemory] {
			// Swap would let the job exceed the limit on disk.
			os.WriteFile(filepath.Join(d, "memory.swap.max"), []byte("0"), 0o644)
		}
		set(sandbox.LimitPids, float64(l.Pids), "pids", "pids.max", strconv.FormatInt(l.Pids, 10))
		set(sandbox.LimitCPU, l.CPUs, "cpu", "cpu.max", fmt.Sprintf("%d %d", int64(l.CPUs*cfsPeriod), cfsPeriod))
	} else {
		set(sandbox.LimitMemory, float64(l.MemoryBytes), "memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10))
		if d, ok := g.dirs["memory"]; ok && want[sandbox.LimitMemory] {
			// Where swap is accounted, memory plus swap gets the same cap.
			if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
				os.WriteFile(filepath.Join(d, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(l.MemoryBytes, 10)), 0o644)
			}
		}
		set(sandbox.LimitPids, float64(l.Pids), "pids", "pids.max", strconv.FormatInt(l.Pids, 10))
		if d, ok := g.dirs["cpu"]; ok && want[sandbox.LimitCPU] {
			os.WriteFile(filepath.Join(d, "cpu.cfs_period_us"), []byte(strconv.Itoa(cfsPeriod)), 0o644)
		}
		set(sandbox.LimitCPU, l.CPUs, "cpu", "cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPUs*cfsPeriod), 10))
	}
	return g, st, nil
}

func cgName(controller string) string {
	switch controller {
	case "memory":
		return sandbox.LimitMemory
	case "pids":
		return sandbox.LimitPids
	}
	return sandbox.LimitCPU
}

func (g *Group) kind() string {
	if g.v2 {
		return "cgroup v2"
	}
	return "cgroup v1"
}

// makeV2 makes root/ptb/name with the memory, pids and cpu controllers
// enabled for it, as far as root offers them.
func (g *Group) makeV2(root, name string, avail []string) error {
	var enable []string
	for _, c := range []string{"memory", "pids", "cpu"} {
		for _, a := range avail {
			if a == c {
				enable = append(enable, "+"+c)
			}
		}
	}
	parent := filepath.Join(root, "ptb")
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup: %w", err)
	}
	for _, dir := range []string{root, parent} {
		for _, e := range enable {
			// Already enabled is fine; a refusal shows as a missing
			// controller below.
			os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(e), 0o644)
		}
	}
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	g.made = append(g.made, d)
	ctrl, _ := os.ReadFile(filepath.Join(d, "cgroup.controllers"))
	for _, c := range strings.Fields(string(ctrl)) {
		g.dirs[c] = d // a controller missing here: its limit reads as not enforced
	}
	return nil
}

// mkdirs makes base/parts..., remembering what it made.
func (g *Group) mkdirs(base string, parts ...string) (string, error) {
	d := base
	for i, p := range parts {
		d = filepath.Join(d, p)
		err := os.Mkdir(d, 0o755)
		if errors.Is(err, fs.ErrExist) && i < len(parts)-1 {
			continue
		}
		if err != nil {
			return "", err
		}
		if i == len(parts)-1 {
			g.made = append(g.made, d)
		}
	}
	return d, nil
}

// Procs are the cgroup.procs files a process writes its pid into to join
// the group (one per hierarchy).
func (g *Group) Procs() []string {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, d := range g.made {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// JoinArgv wraps argv so that the process first joins the groups whose
// cgroup.procs files are given, then execs argv: everything it starts is
// inside the group from its first instruction on.
func JoinArgv(procs []string, argv []string) []string {
	if len(procs) == 0 {
		return argv
	}
	const script = `n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"`
	out := []string{"/bin/sh", "-c", script, "ptb-cgroup-join", strconv.Itoa(len(procs))}
	out = append(out, procs...)
	return append(out, argv...)
}

// Hit reports the limit the group has hit, if any: memory when the kernel
// killed a process for it, pids when a fork was refused.
func (g *Group) Hit() string {
	if g == nil {
		return ""
	}
	if g.v2 {
		g.mu.Lock()
		if len(g.made) == 0 {
			g.mu.Unlock()
			return "" // removed
		}
		d := g.made[0]
		g.mu.Unlock()
		if counter(filepath.Join(d, "memory.events"), "oom_kill") > 0 {
			return sandbox.LimitMemory
		}
		if counter(filepath.Join(d, "pids.events"), "max") > 0 {
			return sandbox.LimitPids
		}
		return ""
	}
	if d, ok := g.dirs["memory"]; ok && counter(filepath.Join(d, "memory.oom_control"), "oom_kill") > 0 {
		return sandbox.LimitMemory
	}
	if d, ok := g.dirs["pids"]; ok && counter(filepath.Join(d, "pids.events"), "max") > 0 {
		return sandbox.LimitPids
	}
	return ""
}

// counter reads "key N" from a flat-keyed cgroup file.
func counter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Pids lists the processes in the group.
func (g *Group) Pids() []int {
	if g == nil {
		return nil
	}
	seen := map[int]bool{}
	var out []int
	for _, p := range g.Procs() {
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Kill SIGKILLs every process in the group, until none is left or a few
// seconds have passed. It reports whether the group is empty.
func (g *Group) Kill() bool {
	if g == nil {
		return true
	}
	if g.v2 {
		// cgroup.kill (Linux 5.14) kills atomically, forks included.
		g.mu.Lock()
		for _, d := range g.made {
			os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0o644)
		}
		g.mu.Unlock()
	}
	end := time.Now().Add(5 * time.Second)
	for {
		pids := g.Pids()
		if len(pids) == 0 {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove kills what is left in the group and removes it.
func (g *Group) Remove() error {
	if g == nil {
		return nil
	}
	g.Kill()
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for i := len(g.made) - 1; i >= 0; i-- {
		if err := os.Remove(g.made[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	g.made = nil
	return errors.Join(errs...)
}

// sweep removes the groups that harnesses which died left behind: empty
// groups named job-PID-N whose PID is gone. (A group still holding
// processes is not empty and stays.)
func sweep(root string) {
	var parents []string
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		parents = []string{filepath.Join(root, "ptb")}
	} else {
		for _, c := range []string{"memory", "pids", "cpu"} {
			parents = append(parents, filepath.Join(root, c, "ptb"))
		}
	}
	for _, p := range parents {
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			f := strings.Split(e.Name(), "-")
			if !e.IsDir() || len(f) != 3 || f[0] != "job" {
				continue
			}
			pid, err := strconv.Atoi(f[1])
			if err != nil || pid == os.Getpid() {
				continue
			}
			if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
				os.Remove(filepath.Join(p, e.Name()))
			}
		}
	}
}
