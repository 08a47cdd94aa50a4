// Package bwrap is the bubblewrap sandbox backend: new user, pid, ipc, uts,
// cgroup and (unless the job asks for the host network) network namespaces;
// the host file system read-only; only the job's workspace, home and private
// /tmp writable; other runs and the harness's state hidden; the sandbox dies
// with the harness.
package bwrap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// Backend runs processes under bubblewrap.
type Backend struct {
	// Path is the bwrap executable; "" looks it up on PATH.
	Path string
}

var _ sandbox.Backend = (*Backend)(nil)

// New returns the bwrap backend using bwrap from PATH.
func New() *Backend { return &Backend{} }

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
	out, err := exec.CommandContext(ctx, p, "--unshare-user", "--unshare-pid", "--unshare-net",
		"--unshare-ipc", "--unshare-uts", "--die-with-parent",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: bwrap cannot create namespaces here: %v: %s", sandbox.ErrUnavailable, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Args returns bwrap's arguments for spec (without the executable).
func Args(spec sandbox.Spec) ([]string, error) {
	for name, p := range map[string]string{"workspace": spec.Workspace, "home": spec.Home, "tmp": spec.Tmp} {
		if p == "" || !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox bwrap: %s must be an absolute path, got %q", name, p)
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = spec.Workspace
	}
	a := []string{
		"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
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
	for _, h := range spec.Hidden {
		// /tmp is replaced by the job's private directory, which already
		// hides whatever the host keeps there.
		if h != "/tmp" && !strings.HasPrefix(h, "/tmp/") {
			hidden = append(hidden, h)
		}
	}
	for _, h := range hidden[1:] {
		a = append(a, "--tmpfs", h)
	}
	a = append(a, "--bind", spec.Tmp, "/tmp")
	for _, p := range spec.ReadOnly {
		a = append(a, "--ro-bind", p, p)
	}
	for _, p := range spec.Writable {
		a = append(a, "--bind", p, p)
	}
	a = append(a, "--bind", spec.Workspace, spec.Workspace, "--bind", spec.Home, spec.Home)
	for _, dev := range gpuDevices(spec.GPUs) {
		a = append(a, "--dev-bind", dev, dev)
	}
	for _, h := range hidden {
		a = append(a, "--remount-ro", h)
	}
	a = append(a, "--chdir", dir, "--")
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
	args, err := Args(spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.Tmp, 0o1777); err != nil {
		return nil, fmt.Errorf("sandbox bwrap: %w", err)
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
