// Package bwrap is the bubblewrap sandbox backend: new user, pid, ipc, uts,
// cgroup and (unless the job asks for the host network) network namespaces;
// the host by allowlist on an empty read-only root (system directories, a
// filtered /etc, the job's GPU nodes, the job's own paths); only the job's
// workspace, home, sized /tmp and /dev/shm writable; resource limits
// through a control group and a disk watchdog (package limits); one uid
// per concurrent sandbox under a root harness; the sandbox dies with the
// harness.
package bwrap

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
	"github.com/ptb-dev/ptb/internal/sandbox/limits"
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
	// root; the zero value means DefaultDrop. Concurrent sandboxes run as
	// Drop plus their slot number (0, 1, ...), one uid each.
	Drop Identity
	// SlotDir holds the slot lock files; "" means DefaultSlotDir.
	SlotDir string
	// CgroupRoot is where the cgroup hierarchies are mounted; "" means
	// limits.DefaultRoot.
	CgroupRoot string
	// DevRoot is the host's device directory; "" means /dev.
	DevRoot string
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
		Networks:     []sandbox.Network{sandbox.NetworkNone, sandbox.NetworkHost},
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

// SystemDirs are the host directories every sandbox sees read-only:
// programs, libraries, optional software (/opt, where conda and CUDA
// installs live) and /sys (which CUDA and NVML read). A directory that is
// a symlink on the host (/bin -> usr/bin) is recreated as that symlink.
// Nothing else of the host is visible unless a job names it.
var SystemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/sys"}

// EtcAllowed are the /etc entries (shell patterns) programs need: users
// and groups (no passwords: shadow and gshadow stay out), name
// resolution, TLS roots, the dynamic linker's cache, alternatives, time
// zone, locale and shell defaults, Python's and git's system config, GPU
// vendor files. Credentials (ssh host keys, sudoers, pip.conf, npmrc,
// netrc-like files) are not on the list; a job that needs one names it
// with --ro.
var EtcAllowed = []string{
	"passwd", "group", "hosts", "host.conf", "hostname", "resolv.conf", "nsswitch.conf", "gai.conf",
	"services", "protocols", "networks", "rpc", "ethertypes",
	"ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
	"localtime", "timezone", "locale.alias", "locale.conf", "default/locale",
	"mime.types", "magic", "magic.mime", "os-release", "lsb-release", "debian_version", "issue",
	"bash.bashrc", "profile", "profile.d", "inputrc", "shells", "terminfo", "mtab",
	"gitconfig", "python3", "python3.*", "perl", "java-*", "fonts", "xdg",
	"glvnd", "OpenCL", "vulkan", "nvidia", "cuda",
}

// EtcDenied are paths under allowed /etc entries that are hidden anyway
// (private keys kept beside the public certificates).
var EtcDenied = []string{"ssl/private", "pki/tls/private", "pki/CA/private"}

// etcEntries returns the entries of the etc directory at root that
// EtcAllowed admits, sorted.
func etcEntries(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		for _, pat := range EtcAllowed {
			if ok, _ := filepath.Match(pat, e.Name()); ok {
				out = append(out, e.Name())
				break
			}
		}
	}
	// Nested allowed entries (default/locale) whose parent is not itself
	// allowed.
	for _, pat := range EtcAllowed {
		if strings.Contains(pat, "/") && !strings.ContainsAny(pat, "*?[") {
			if _, err := os.Lstat(filepath.Join(root, pat)); err == nil && !slices.Contains(out, strings.SplitN(pat, "/", 2)[0]) {
				out = append(out, pat)
			}
		}
	}
	sort.Strings(out)
	return out
}

// mount is one bwrap mount operation.
type mount struct {
	op     string // --ro-bind, --bind, --tmpfs, --dev-bind, devnull, --symlink
	src    string
	target string
	size   int64 // tmpfs size, 0 = bwrap's default
	perms  string
	hidden bool // an empty mount over something the agent must not see
	own    bool // the agent's own space (its private /tmp): mount points may be made in it
}

// Args returns bwrap's arguments for spec (without the executable). With
// drop set (a root harness), bwrap creates no user namespace itself and the
// command is wrapped to run as drop in one of its own.
//
// The sandbox's root is an empty read-only tmpfs; onto it come the
// SystemDirs, the EtcAllowed entries of /etc, a fresh /dev, /proc and
// /run, the private /tmp, the job's read-only and writable paths, and its
// workspace and home. Hidden paths that fall inside what is bound become
// empty (directories) or /dev/null (files).
func Args(spec sandbox.Spec, drop *Identity) ([]string, error) {
	return hostLayout{}.args(spec, drop)
}

// hostLayout says where the host's directories are; tests point it at a
// fake tree. Zero values mean the real ones.
type hostLayout struct {
	etc string // "/etc"
	dev string // "/dev"
}

func (h hostLayout) etcDir() string {
	if h.etc != "" {
		return h.etc
	}
	return "/etc"
}

func (h hostLayout) devDir() string {
	if h.dev != "" {
		return h.dev
	}
	return "/dev"
}

func (h hostLayout) args(spec sandbox.Spec, drop *Identity) ([]string, error) {
	for name, p := range map[string]string{"workspace": spec.Workspace, "home": spec.Home, "tmp": spec.Tmp} {
		if p == "" || !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox bwrap: %s must be an absolute path, got %q", name, p)
		}
	}
	for _, p := range append(append([]string{}, spec.ReadOnly...), spec.Writable...) {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox bwrap: read-only and writable paths must be absolute, got %q", p)
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
		return nil, fmt.Errorf("sandbox bwrap: network policy %q: want none or host (a gateway network is resolved by sandbox.Gateway.Apply)", spec.Network)
	}
	a = append(a, "--die-with-parent", "--new-session", "--hostname", "ptb-sandbox")

	// The system: programs and libraries, then the allowed part of /etc.
	var ms []mount
	for _, d := range SystemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			if t, err := os.Readlink(d); err == nil {
				ms = append(ms, mount{op: "--symlink", src: t, target: d})
			}
		case fi.IsDir():
			ms = append(ms, mount{op: "--ro-bind", src: d, target: d})
		}
	}
	etc := h.etcDir()
	for _, e := range etcEntries(etc) {
		src, target := filepath.Join(etc, e), filepath.Join("/etc", e)
		fi, err := os.Lstat(src)
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(src)
			if err != nil {
				continue
			}
			abs := t
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(filepath.Dir(target), t)
			}
			// A link into what the sandbox has anyway is kept as a
			// link (/etc/mtab -> /proc/mounts); one that leads elsewhere
			// (resolv.conf -> /run/...) is replaced by what it points to.
			if within(abs, "/proc") || within(abs, "/etc") || slices.ContainsFunc(SystemDirs, func(d string) bool { return within(abs, d) }) {
				ms = append(ms, mount{op: "--symlink", src: t, target: target})
				continue
			}
			if _, err := os.Stat(src); err != nil {
				continue // dangling
			}
		}
		ms = append(ms, mount{op: "--ro-bind", src: src, target: target})
	}
	for _, d := range EtcDenied {
		if fi, err := os.Stat(filepath.Join(etc, d)); err == nil && fi.IsDir() && slices.Contains(etcEntries(etc), strings.SplitN(d, "/", 2)[0]) {
			ms = append(ms, mount{op: "--tmpfs", target: filepath.Join("/etc", d), hidden: true})
		}
	}
	if spec.Limits.TmpBytes > 0 {
		// A tmpfs of bounded size: filling it fails the writes, not
		// the host's disk.
		ms = append(ms, mount{op: "--tmpfs", target: "/tmp", size: spec.Limits.TmpBytes, perms: "1777", own: true})
	} else {
		ms = append(ms, mount{op: "--bind", src: spec.Tmp, target: "/tmp", own: true})
	}

	// The job's own paths.
	var binds []mount
	for _, p := range spec.ReadOnly {
		binds = append(binds, mount{op: "--ro-bind", src: p, target: p})
	}
	for _, p := range spec.Writable {
		binds = append(binds, mount{op: "--bind", src: p, target: p})
	}
	binds = append(binds, mount{op: "--bind", src: spec.Workspace, target: spec.Workspace},
		mount{op: "--bind", src: spec.Home, target: spec.Home})
	// Host paths shown elsewhere (the run's socket directory at /run/ptb).
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return nil, fmt.Errorf("sandbox bwrap: mount %s at %s: both paths must be absolute", m.Source, m.Target)
		}
		op := "--ro-bind"
		if m.Writable {
			op = "--bind"
		}
		binds = append(binds, mount{op: op, src: m.Source, target: filepath.Clean(m.Target)})
	}
	ms = append(ms, binds...)

	// Hidden paths matter only where something bound would show them:
	// other runs under a bound output root, the harness's state inside a
	// read-only path. Directories an unprivileged agent could not enter
	// on the host are laid out afresh the same way.
	hidden := append([]string{}, spec.Hidden...)
	if drop != nil {
		hidden = append(hidden, untraversable(append(append([]string{spec.Workspace, spec.Home}, spec.ReadOnly...), spec.Writable...), *drop)...)
	}
	for _, hp := range hidden {
		if !filepath.IsAbs(hp) {
			continue
		}
		hp = filepath.Clean(hp)
		if !shownBy(hp, ms) {
			continue // not visible anyway
		}
		fi, err := os.Stat(hp)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			ms = append(ms, mount{op: "--tmpfs", target: hp, hidden: true})
		default:
			ms = append(ms, mount{op: "devnull", target: hp, hidden: true})
		}
	}
	ms = order(ms)

	a = append(a, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run", "--perms", "1777")
	if spec.Limits.TmpBytes > 0 {
		a = append(a, "--size", strconv.FormatInt(spec.Limits.TmpBytes, 10))
	}
	a = append(a, "--tmpfs", "/dev/shm") // shared memory (DataLoader workers), writable by the agent
	// bwrap makes missing mount points with mode 0700; lay out the
	// directories leading to each mount with 0755 first, wherever they
	// are not on a host bind already, so an unprivileged agent can reach
	// what is bound there.
	made := map[string]bool{}
	var done []mount
	for _, m := range ms {
		for _, d := range ancestors(m.target) {
			if made[d] || onHostBind(d, done) {
				continue
			}
			made[d] = true
			a = append(a, "--dir", d)
		}
		switch m.op {
		case "--symlink":
			a = append(a, "--symlink", m.src, m.target)
		case "--tmpfs":
			if m.perms != "" {
				a = append(a, "--perms", m.perms)
			}
			if m.size > 0 {
				a = append(a, "--size", strconv.FormatInt(m.size, 10))
			}
			a = append(a, "--tmpfs", m.target)
		case "devnull":
			a = append(a, "--ro-bind", "/dev/null", m.target)
		default:
			a = append(a, m.op, m.src, m.target)
		}
		done = append(done, m)
	}
	devs, err := gpuDevices(h.devDir(), spec.GPUs)
	if err != nil {
		return nil, err
	}
	for _, dev := range devs {
		a = append(a, "--dev-bind", dev[0], dev[1])
	}
	for _, m := range ms {
		if m.hidden && m.op == "--tmpfs" {
			a = append(a, "--remount-ro", m.target)
		}
	}
	a = append(a, "--remount-ro", "/", "--chdir", dir, "--")
	if drop != nil {
		return append(a, dropArgv(*drop, spec.Argv)...), nil
	}
	return append(a, spec.Argv...), nil
}

// shownBy reports whether host path p would be visible through one of
// the binds in ms (it lies inside a bound directory), or contains one.
func shownBy(p string, ms []mount) bool {
	for _, m := range ms {
		if (m.op == "--ro-bind" || m.op == "--bind") && m.src == m.target && within(p, m.target) {
			return true
		}
	}
	return false
}

// onHostBind reports whether directory d exists on a host bind among ms
// (and so must not be created: it would be created on the host), rather
// than on a tmpfs or the sandbox's fresh root.
func onHostBind(d string, ms []mount) bool {
	best, bind := "", false
	for _, m := range ms {
		if within(d, m.target) && len(m.target) >= len(best) {
			best, bind = m.target, (m.op == "--ro-bind" || m.op == "--bind") && !m.own
		}
	}
	return bind
}

// order sorts mounts so that every mount comes after the mounts of the
// directories that contain it (a hidden directory after the bind that
// shows it, a bind after the hidden directory it lies in); a hidden path
// comes before a bind of the same path, so the bind wins.
func order(ms []mount) []mount {
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := depth(ms[i].target), depth(ms[j].target)
		if di != dj {
			return di < dj
		}
		if ms[i].target == ms[j].target {
			return ms[i].hidden && !ms[j].hidden
		}
		return false
	})
	return ms
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

// ancestors lists the directories above p, outermost first, / excluded.
func ancestors(p string) []string {
	var out []string
	for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// gpuDevices lists the device nodes a job with the given GPU indices
// sees, as host path and path inside: /dev/nvidiaN for each index plus
// the shared nodes CUDA opens (nvidiactl, nvidia-uvm, nvidia-uvm-tools,
// and nvidia-modeset where the host has it). A job's own GPU node,
// nvidiactl or nvidia-uvm missing on the host is an error that says so.
func gpuDevices(devRoot string, gpus []int) ([][2]string, error) {
	if len(gpus) == 0 {
		return nil, nil
	}
	var out [][2]string
	need := func(name, hint string) error {
		p := filepath.Join(devRoot, name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("sandbox bwrap: the job's GPU needs %s, which this host lacks%s", p, hint)
		}
		out = append(out, [2]string{p, "/dev/" + name})
		return nil
	}
	seen := map[int]bool{}
	for _, g := range gpus {
		if g < 0 || seen[g] {
			return nil, fmt.Errorf("sandbox bwrap: GPU indices must be distinct and not negative, got %v", gpus)
		}
		seen[g] = true
		if err := need("nvidia"+strconv.Itoa(g), " (is GPU "+strconv.Itoa(g)+" on this machine? nvidia-smi -L lists them)"); err != nil {
			return nil, err
		}
	}
	if err := need("nvidiactl", " (is the NVIDIA driver loaded?)"); err != nil {
		return nil, err
	}
	if err := need("nvidia-uvm", " (as root, `nvidia-modprobe -u -c=0` creates it)"); err != nil {
		return nil, err
	}
	for _, opt := range []string{"nvidia-uvm-tools", "nvidia-modeset"} {
		if _, err := os.Stat(filepath.Join(devRoot, opt)); err == nil {
			out = append(out, [2]string{filepath.Join(devRoot, opt), "/dev/" + opt})
		}
	}
	return out, nil
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
	p := &process{stop: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			p.release()
		}
	}()
	drop := b.drop()
	if drop != nil {
		// Each concurrent sandbox runs as a uid of its own.
		slot, err := b.slots().acquire()
		if err != nil {
			return nil, fmt.Errorf("sandbox bwrap: %w", err)
		}
		p.slot = slot
		d := Identity{UID: drop.UID + slot.n, GID: drop.GID + slot.n}
		drop = &d
		p.uid = d.UID
	}
	layout := hostLayout{dev: b.DevRoot}
	// The harness's own home and config directories stay hidden even
	// where a bound directory would show them (a HOME under /opt).
	spec.Hidden = append(append([]string{}, spec.Hidden...), harnessPrivate(os.Getenv)...)
	args, err := layout.args(spec, drop)
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
	if len(spec.GPUs) > 0 {
		if err := b.preflight(ctx, path, spec, layout, drop); err != nil {
			return nil, err
		}
	}
	p.status, p.cg = b.limits(spec)
	argv := limits.JoinArgv(p.cg.Procs(), append([]string{path}, args...))
	launch := spec
	launch.Dir = "" // bwrap itself starts wherever; --chdir places the agent
	ep, err := execproc.Start(ctx, argv, launch, execproc.Options{
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
	p.Process = ep
	p.pid = ep.PID()
	ok = true
	go p.watch(spec)
	return p, nil
}

// limits makes the job's control group and reports how each limit of
// spec is enforced.
func (b *Backend) limits(spec sandbox.Spec) ([]sandbox.LimitStatus, *limits.Group) {
	l := spec.Limits
	var st []sandbox.LimitStatus
	var g *limits.Group
	if l.MemoryBytes > 0 || l.Pids > 0 || l.CPUs > 0 {
		var err error
		g, st, err = limits.Create(b.CgroupRoot, fmt.Sprintf("job-%d-%d", os.Getpid(), groupSeq.Add(1)), l)
		if err != nil {
			for _, x := range []struct {
				name string
				v    float64
			}{{sandbox.LimitMemory, float64(l.MemoryBytes)}, {sandbox.LimitPids, float64(l.Pids)}, {sandbox.LimitCPU, l.CPUs}} {
				if x.v > 0 {
					st = append(st, sandbox.LimitStatus{Name: x.name, Value: x.v, How: "not enforced: " + err.Error()})
				}
			}
		}
		// Without a control group, memory and processes are watched
		// from /proc instead: not a hard cap (the tree can overshoot
		// between two looks), but the sandbox ends at the limit.
		for i := range st {
			if st[i].Enforced || (st[i].Name != sandbox.LimitMemory && st[i].Name != sandbox.LimitPids) {
				continue
			}
			why := strings.TrimPrefix(st[i].How, "not enforced: ")
			st[i].Enforced = true
			if st[i].Name == sandbox.LimitMemory {
				st[i].How = "watchdog every " + cgroupInterval.String() + ": proportional memory of the sandbox's processes (no cgroup: " + why + ")"
			} else {
				st[i].How = "watchdog every " + cgroupInterval.String() + ": threads of the sandbox's processes (no cgroup: " + why + ")"
			}
		}
	}
	if l.TmpBytes > 0 {
		st = append(st, sandbox.LimitStatus{Name: sandbox.LimitTmp, Value: float64(l.TmpBytes), Enforced: true, How: "tmpfs size (/tmp and /dev/shm)"})
	}
	watched := "workspace and home"
	if l.TmpBytes <= 0 {
		watched = "workspace, home and /tmp"
	}
	if l.DiskBytes > 0 {
		st = append(st, sandbox.LimitStatus{Name: sandbox.LimitDisk, Value: float64(l.DiskBytes), Enforced: true, How: "watchdog every " + DiskInterval.String() + " or more for large trees (" + watched + ")"})
	}
	if l.DiskFiles > 0 {
		st = append(st, sandbox.LimitStatus{Name: sandbox.LimitFiles, Value: float64(l.DiskFiles), Enforced: true, How: "watchdog every " + DiskInterval.String() + " or more for large trees (" + watched + ")"})
	}
	return st, g
}

var groupSeq atomic.Int64

// DiskInterval is how often the disk watchdog measures the workspace and
// home; a job can exceed its disk limit by what it writes in that time.
var DiskInterval = 2 * time.Second

// cgroupInterval is how often the control group's counters are read.
const cgroupInterval = 500 * time.Millisecond

// process is a bwrap sandbox: the launcher's process tree, its control
// group, its uid slot, and the watchdog that ends it on a limit.
type process struct {
	*execproc.Process
	cg     *limits.Group
	slot   *slot
	uid    int
	status []sandbox.LimitStatus
	hit    atomic.Value // the first limit hit (a string)
	pid    int          // the launcher's pid
	stop   chan struct{}
	once   sync.Once
}

var _ sandbox.Limited = (*process)(nil)

// Limits implements sandbox.Limited.
func (p *process) Limits() []sandbox.LimitStatus { return p.status }

// watch ends the sandbox when a limit is hit: the control group's
// memory (the kernel killed a process for it) or pids (a fork was
// refused) counters, or the disk watchdog.
func (p *process) watch(spec sandbox.Spec) {
	l := spec.Limits
	cg := time.NewTicker(cgroupInterval)
	defer cg.Stop()
	disk := time.NewTicker(DiskInterval)
	defer disk.Stop()
	if l.DiskBytes <= 0 && l.DiskFiles <= 0 {
		disk.Stop()
	}
	for {
		var reason string
		select {
		case <-p.stop:
			return
		case <-cg.C:
			reason = p.cg.Hit()
			if reason == "" && p.watchTree(l) {
				u := limits.MeasureTree(pidsOf(proctree.Descendants(p.pid, p.pid)))
				switch {
				case p.treeLimit(sandbox.LimitPids) && u.Tasks > l.Pids:
					reason = sandbox.LimitPids
				case p.treeLimit(sandbox.LimitMemory) && u.MemoryBytes > l.MemoryBytes:
					reason = sandbox.LimitMemory
				}
			}
		case <-disk.C:
			// A partial measure (a tree too large to walk in a minute)
			// is a lower bound: over the limit is over, under it says
			// nothing and the next walk comes later.
			began := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			dirs := []string{spec.Workspace, spec.Home}
			if l.TmpBytes <= 0 {
				dirs = append(dirs, spec.Tmp) // /tmp is this host directory, not a sized tmpfs
			}
			u, _ := limits.Measure(ctx, dirs, l.DiskFiles)
			cancel()
			switch {
			case l.DiskFiles > 0 && u.Files > l.DiskFiles:
				reason = sandbox.LimitFiles
			case l.DiskBytes > 0 && u.Bytes > l.DiskBytes:
				reason = sandbox.LimitDisk
			}
			// The watchdog spends at most a fifth of a core.
			disk.Reset(max(DiskInterval, 4*time.Since(began)))
		}
		if reason != "" {
			p.hit.CompareAndSwap(nil, reason)
			// Everything in the group dies at once; without a group,
			// the whole tree is stopped.
			if p.cg == nil || !p.cg.Kill() {
				// Killing bwrap's init ends its whole pid namespace.
				p.Process.Stop(0)
			}
			return
		}
	}
}

// treeLimit reports whether limit name is watched from /proc (no cgroup
// enforces it).
func (p *process) treeLimit(name string) bool {
	for _, s := range p.status {
		if s.Name == name && strings.HasPrefix(s.How, "watchdog") {
			return true
		}
	}
	return false
}

func (p *process) watchTree(l sandbox.Limits) bool {
	return (l.Pids > 0 && p.treeLimit(sandbox.LimitPids)) || (l.MemoryBytes > 0 && p.treeLimit(sandbox.LimitMemory))
}

func pidsOf(ps []proctree.Proc) []int {
	out := make([]int, len(ps))
	for i, q := range ps {
		out[i] = q.PID
	}
	return out
}

// Wait implements sandbox.Process: the exit names the limit that ended
// the sandbox, if one did.
func (p *process) Wait(ctx context.Context) (sandbox.Exit, error) {
	ex, err := p.Process.Wait(ctx)
	if err != nil {
		return ex, err
	}
	if h := p.cg.Hit(); h != "" {
		p.hit.CompareAndSwap(nil, h)
	}
	if h, ok := p.hit.Load().(string); ok {
		ex.Limit = h
	}
	return ex, nil
}

// Destroy implements sandbox.Process: it also empties and removes the
// control group and frees the uid slot.
func (p *process) Destroy() error {
	err := p.Process.Destroy()
	p.release()
	return err
}

func (p *process) release() {
	p.once.Do(func() {
		close(p.stop)
		p.cg.Remove()
		p.slot.release()
	})
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

func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// preflight checks, inside a sandbox laid out as spec's, that every GPU
// device node is a character device the agent can open for reading and
// writing, as the original's check_cuda did before the agent started.
func (b *Backend) preflight(ctx context.Context, path string, spec sandbox.Spec, layout hostLayout, drop *Identity) error {
	devs, err := gpuDevices(layout.devDir(), spec.GPUs)
	if err != nil {
		return err
	}
	const script = `for d; do if [ ! -e "$d" ]; then echo "$d is missing"; exit 1; fi; ` +
		`if [ ! -c "$d" ]; then echo "$d is not a character device"; exit 1; fi; ` +
		`if [ ! -r "$d" ] || [ ! -w "$d" ]; then echo "$d is not readable and writable by the agent ($(id -u))"; exit 1; fi; done`
	check := spec
	check.Argv = []string{"/bin/sh", "-c", script, "ptb-gpu-preflight"}
	for _, d := range devs {
		check.Argv = append(check.Argv, d[1])
	}
	check.Network, check.Limits = sandbox.NetworkNone, sandbox.Limits{}
	args, err := layout.args(check, drop)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sandbox bwrap: GPU preflight failed for GPUs %v: %s (%v)", spec.GPUs, strings.TrimSpace(string(out)), err)
	}
	return nil
}

// HarnessPrivateEnv are the harness's environment variables that name
// its private directories and files: its home, XDG directories, and the
// homes and credentials of the agent CLIs and the Hugging Face hub.
var HarnessPrivateEnv = []string{"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
	"XDG_RUNTIME_DIR", "HF_HOME", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "CODEX_HOME", "CLAUDE_CONFIG_DIR",
	"GEMINI_CLI_HOME", "OPENCODE_CONFIG_DIR", "NPM_CONFIG_USERCONFIG", "PIP_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE"}

// harnessPrivate lists the paths HarnessPrivateEnv names, leaving out
// any that would cover a system directory (HOME=/).
func harnessPrivate(getenv func(string) string) []string {
	var out []string
	for _, k := range HarnessPrivateEnv {
		v := getenv(k)
		if v == "" || !filepath.IsAbs(v) {
			continue
		}
		v = filepath.Clean(v)
		if v == "/" || slices.ContainsFunc(SystemDirs, func(d string) bool { return within(d, v) }) || within(v, "/etc") || within(v, "/dev") || within(v, "/proc") {
			continue
		}
		out = append(out, v)
	}
	return out
}
