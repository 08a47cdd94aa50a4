// Package bwrap is the bubblewrap sandbox backend: new user, pid, ipc, uts,
// cgroup and (unless the job asks for the host network) network namespaces;
// the host file system read-only; only the job's workspace, home and private
// /tmp writable; other runs and the harness's state hidden; the sandbox dies
// with the harness.
package bwrap

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// Backend runs processes under bubblewrap.
//
// When the harness runs as root, bwrap (as root) builds the mount, pid, ipc,
// uts, cgroup and network namespaces, and the agent then runs as the
// unprivileged host user Drop in a user namespace of its own where it
// appears as root (setpriv, then unshare --map-root-user). Files the host
// keeps from other users (/etc/shadow, host keys) stay unreadable, and the
// workspace, home and /tmp are handed to that user. When the harness is not
// root, bwrap itself creates the user namespace and the agent keeps the
// harness's own unprivileged identity.
type Backend struct {
	// Path is the bwrap executable; "" looks it up on PATH.
	Path string
	// Drop is the host identity the agent runs as when the harness is
	// root; the zero value means DefaultDrop.
	Drop Identity
}

// Identity is a host user and group id.
type Identity struct{ UID, GID int }

// DefaultDrop is the unprivileged identity agents run as under a root
// harness (no account needs to exist for it).
var DefaultDrop = Identity{UID: 60000, GID: 60000}

var (
	_ sandbox.Backend = (*Backend)(nil)
	_ sandbox.Reaper  = (*Backend)(nil)
)

// Reap implements sandbox.Reaper.
func (*Backend) Reap(h sandbox.Handle) error { return execproc.Reap(h) }

// New returns the bwrap backend using bwrap from PATH.
func New() *Backend { return &Backend{} }

// drop returns the identity to drop to, or nil when the harness is not
// the host's real root (an unprivileged user, or root inside a user
// namespace, which cannot switch to an unmapped uid).
func (b *Backend) drop() *Identity {
	if os.Geteuid() != 0 || !initialUserNS() {
		return nil
	}
	d := b.Drop
	if d.UID == 0 {
		d = DefaultDrop
	}
	return &d
}

// Capabilities implements sandbox.Backend.
func (*Backend) Capabilities() sandbox.Capabilities {
	return sandbox.Capabilities{
		Name:         "bwrap",
		Isolated:     true,
		Networks:     []string{sandbox.NetworkNone, sandbox.NetworkHost},
		SamePaths:    true,
		ReadOnlyHost: true,
	}
}

func (b *Backend) path() (string, error) {
	if b.Path != "" {
		return b.Path, nil
	}
	p, err := exec.LookPath("bwrap")
	if err != nil {
		return "", fmt.Errorf("%w: bwrap not found on PATH (Debian: apt-get install bubblewrap)", sandbox.ErrUnavailable)
	}
	return p, nil
}

// Check implements sandbox.Backend: it runs `true` in the namespaces the
// backend uses, so a kernel or policy that forbids them is found up front.
func (b *Backend) Check(ctx context.Context) error {
	p, err := b.path()
	if err != nil {
		return err
	}
	args := []string{"--unshare-user", "--unshare-pid", "--unshare-net",
		"--unshare-ipc", "--unshare-uts", "--die-with-parent",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "true"}
	if d := b.drop(); d != nil {
		for _, tool := range []string{"setpriv", "unshare"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%w: %s not found (util-linux)", sandbox.ErrUnavailable, tool)
			}
		}
		args = append(append([]string{}, args[1:len(args)-1]...), dropArgv(*d, []string{"true"})...)
	}
	out, err := exec.CommandContext(ctx, p, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: bwrap cannot create namespaces here: %v: %s", sandbox.ErrUnavailable, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dropArgv wraps argv so that it runs as d, with no capabilities, in a
// new user namespace where it is root.
func dropArgv(d Identity, argv []string) []string {
	return append([]string{"setpriv", "--reuid=" + strconv.Itoa(d.UID), "--regid=" + strconv.Itoa(d.GID),
		"--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
		"unshare", "--user", "--map-root-user", "--"}, argv...)
}

// Args returns bwrap's arguments for spec (without the executable). With
// drop set (a root harness), bwrap creates no user namespace itself and the
// command is wrapped to run as drop in one of its own.
func Args(spec sandbox.Spec, drop *Identity) ([]string, error) {
	for name, p := range map[string]string{"workspace": spec.Workspace, "home": spec.Home, "tmp": spec.Tmp} {
		if p == "" || !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox bwrap: %s must be an absolute path, got %q", name, p)
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = spec.Workspace
	}
	a := []string{"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"}
	if drop == nil {
		a = append([]string{"--unshare-user"}, a...)
	}
	switch spec.Network {
	case "", sandbox.NetworkNone:
		a = append(a, "--unshare-net")
	case sandbox.NetworkHost:
	default:
		return nil, fmt.Errorf("sandbox bwrap: unknown network policy %q (want none or host)", spec.Network)
	}
	a = append(a,
		"--die-with-parent", "--new-session",
		"--hostname", "ptb-sandbox",
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/run", // host sockets (docker, dbus, ...) are not the agent's
	)
	// Hidden directories become empty tmpfs mounts, made read-only once
	// the job's own directories are bound inside them.
	hidden := []string{"/run"}
	for _, h := range []string{"/root", "/home"} {
		if _, err := os.Stat(h); err == nil {
			hidden = append(hidden, h)
		}
	}
	var hiddenFiles []string
	extra := []string{}
	if drop != nil {
		extra = untraversable(append(append([]string{spec.Workspace, spec.Home}, spec.ReadOnly...), spec.Writable...), *drop)
	}
	for _, h := range append(append([]string{}, spec.Hidden...), extra...) {
		// /tmp is replaced by the job's private directory, which already
		// hides whatever the host keeps there.
		if h == "/tmp" || strings.HasPrefix(h, "/tmp/") {
			continue
		}
		fi, err := os.Stat(h)
		switch {
		case err != nil:
			continue // nothing there to hide
		case !fi.IsDir():
			hiddenFiles = append(hiddenFiles, h) // a file: /dev/null is bound over it
			continue
		}
		hidden = append(hidden, h)
	}
	hidden = outermost(hidden)
	for _, h := range hidden {
		if h != "/run" {
			a = append(a, "--tmpfs", h)
		}
	}
	for _, h := range hiddenFiles {
		a = append(a, "--ro-bind", "/dev/null", h)
	}
	a = append(a, "--bind", spec.Tmp, "/tmp")
	binds := [][3]string{}
	for _, p := range spec.ReadOnly {
		binds = append(binds, [3]string{"--ro-bind", p, p})
	}
	for _, p := range spec.Writable {
		binds = append(binds, [3]string{"--bind", p, p})
	}
	binds = append(binds, [3]string{"--bind", spec.Workspace, spec.Workspace}, [3]string{"--bind", spec.Home, spec.Home})
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return nil, fmt.Errorf("sandbox bwrap: mount %s at %s: both paths must be absolute", m.Source, m.Target)
		}
		op := "--ro-bind"
		if m.Writable {
			op = "--bind"
		}
		binds = append(binds, [3]string{op, m.Source, filepath.Clean(m.Target)})
	}
	// bwrap makes missing mount points with mode 0700; inside the fresh
	// mounts (hidden directories, /tmp) make them 0755 first so that an
	// unprivileged agent can reach what is bound there.
	fresh := append(append([]string{}, hidden...), "/tmp")
	made := map[string]bool{}
	for _, b := range binds {
		for _, dir := range ancestorsUnder(b[2], fresh) {
			if !made[dir] {
				made[dir] = true
				a = append(a, "--dir", dir)
			}
		}
	}
	for _, b := range binds {
		a = append(a, b[0], b[1], b[2])
	}
	for _, dev := range gpuDevices(spec.GPUs) {
		a = append(a, "--dev-bind", dev, dev)
	}
	for _, h := range hidden {
		a = append(a, "--remount-ro", h)
	}
	a = append(a, "--chdir", dir, "--")
	if drop != nil {
		return append(a, dropArgv(*drop, spec.Argv)...), nil
	}
	return append(a, spec.Argv...), nil
}

// gpuDevices lists the NVIDIA device nodes for the given indices plus the
// shared control nodes, keeping only those that exist.
func gpuDevices(gpus []int) []string {
	if len(gpus) == 0 {
		return nil
	}
	var cand []string
	for _, g := range gpus {
		cand = append(cand, "/dev/nvidia"+strconv.Itoa(g))
	}
	cand = append(cand, "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
	var out []string
	for _, c := range cand {
		if _, err := os.Stat(c); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// Start implements sandbox.Backend.
func (b *Backend) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Process, error) {
	path, err := b.path()
	if err != nil {
		return nil, err
	}
	// A missing bind source would make bwrap fail before the agent starts,
	// which must read as the harness's error, not as the agent's exit.
	sources := append(append([]string{spec.Workspace, spec.Home}, spec.ReadOnly...), spec.Writable...)
	for _, m := range spec.Mounts {
		sources = append(sources, m.Source)
	}
	for _, p := range sources {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("sandbox bwrap: %w", err)
		}
	}
	drop := b.drop()
	args, err := Args(spec, drop)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.Tmp, 0o1777); err != nil {
		return nil, fmt.Errorf("sandbox bwrap: %w", err)
	}
	if drop != nil {
		// The agent's own directories belong to the identity it runs as.
		for _, d := range []string{spec.Workspace, spec.Home, spec.Tmp} {
			if err := chownTree(d, *drop); err != nil {
				return nil, fmt.Errorf("sandbox bwrap: hand %s to uid %d: %w", d, drop.UID, err)
			}
		}
	}
	launch := spec
	launch.Dir = "" // bwrap itself starts wherever; --chdir places the agent
	p, err := execproc.Start(ctx, append([]string{path}, args...), launch, execproc.Options{
		Backend: "bwrap",
		// bwrap's own processes (the launcher and the namespace's init)
		// are not sent SIGTERM: the namespace must stay up through the
		// grace period. They are killed at the end.
		Term: func(p proctree.Proc) bool { return p.Comm != "bwrap" && p.Comm != "leader" },
		// bwrap exits with 128+n when the agent was killed by signal n.
		ExitFromCode: func(code int) sandbox.Exit {
			if code > 128 && code < 160 {
				return sandbox.Exit{Code: -1, Signal: execproc.SignalName(code - 128)}
			}
			return sandbox.Exit{Code: code}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox bwrap: %w", err)
	}
	return p, nil
}

// chownTree gives every file under root to id, without following symlinks.
func chownTree(root string, id Identity) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id.UID, id.GID)
	})
}

// ancestorsUnder lists the ancestors of p (outermost first, p excluded)
// that lie strictly inside one of roots.
func ancestorsUnder(p string, roots []string) []string {
	var out []string
	for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
		for _, r := range roots {
			if d != r && within(d, r) {
				out = append([]string{d}, out...)
				break
			}
		}
	}
	return out
}

// initialUserNS reports whether this process runs in the host's initial
// user namespace (uid_map maps every uid onto itself).
func initialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// untraversable returns, for each path, its outermost ancestor that the
// unprivileged identity could not enter on the host (no search permission
// for others, owned by someone else). Hidden behind an empty tmpfs, it
// becomes a path bwrap can lay out for the agent; what else it held stays
// out of sight, as it would be for that user anyway.
func untraversable(paths []string, id Identity) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		var chain []string
		for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			if d == "/tmp" || strings.HasPrefix(d, "/tmp/") {
				break // the private /tmp is laid out by bwrap already
			}
			fi, err := os.Stat(d)
			if err != nil {
				break
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if ok && fi.Mode().Perm()&0o001 == 0 && int(st.Uid) != id.UID {
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
				}
				break
			}
		}
	}
	return out
}

// outermost drops the paths that lie under another one of paths (already
// hidden with it) and orders the rest, shallowest first.
func outermost(paths []string) []string {
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		covered := false
		for _, q := range out {
			if within(p, q) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}
