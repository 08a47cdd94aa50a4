package bwrap

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// indexOf returns where group starts in a as a contiguous run, or -1.
func indexOf(a, group []string) int {
	for i := 0; i+len(group) <= len(a); i++ {
		if slices.Equal(a[i:i+len(group)], group) {
			return i
		}
	}
	return -1
}

// TestArgsTable: the argv bwrap gets for representative specs. Each case
// names argv runs that must appear (in the order given), runs that must
// not, and how the argv starts and ends.
func TestArgsTable(t *testing.T) {
	root := t.TempDir()
	ws, home, tmp := filepath.Join(root, "ws"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
	out := filepath.Join(root, "out")
	other, secret := filepath.Join(out, "other-run"), filepath.Join(out, "harness.key")
	sock, model := filepath.Join(root, "sock"), filepath.Join(root, "model")
	for _, d := range []string{ws, home, tmp, other, sock, model} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(secret, []byte("k"), 0o600)
	etc := fakeEtc(t)
	dev := fakeDev(t, "nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm")
	drop := &Identity{UID: 60000, GID: 60000}
	ns := []string{"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"}
	base := func() sandbox.Spec {
		return sandbox.Spec{Argv: []string{"agent", "-p", "hi"}, Workspace: ws, Home: home, Tmp: tmp}
	}
	tests := []struct {
		name    string
		spec    func(*sandbox.Spec)
		drop    *Identity
		head    []string   // the argv starts so
		tail    []string   // and ends so
		want    [][]string // runs that appear, in this order
		not     [][]string // runs that do not appear
		wantErr string
	}{
		{name: "network none by default",
			head: append(append([]string{"--unshare-user"}, ns...), "--unshare-net", "--die-with-parent", "--new-session", "--hostname", "ptb-sandbox"),
			tail: []string{"--remount-ro", "/", "--chdir", ws, "--", "agent", "-p", "hi"},
			want: [][]string{{"--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"}, {"--tmpfs", "/dev/shm"}, {"--bind", tmp, "/tmp"}, {"--bind", ws, ws}, {"--bind", home, home}},
			not:  [][]string{{"--dev-bind"}, {"--share-net"}}},
		{name: "network none named", spec: func(s *sandbox.Spec) { s.Network = sandbox.NetworkNone },
			want: [][]string{{"--unshare-net"}}},
		{name: "network host", spec: func(s *sandbox.Spec) { s.Network = sandbox.NetworkHost },
			head: append(append([]string{"--unshare-user"}, ns...), "--die-with-parent"),
			not:  [][]string{{"--unshare-net"}}},
		{name: "network gateway is resolved before", spec: func(s *sandbox.Spec) { s.Network = sandbox.NetworkGateway },
			wantErr: `network policy "gateway"`},
		{name: "GPUs", spec: func(s *sandbox.Spec) { s.GPUs = []int{1} },
			want: [][]string{{"--dev-bind", filepath.Join(dev, "nvidia1"), "/dev/nvidia1"}, {"--dev-bind", filepath.Join(dev, "nvidiactl"), "/dev/nvidiactl"},
				{"--dev-bind", filepath.Join(dev, "nvidia-uvm"), "/dev/nvidia-uvm"}, {"--remount-ro", "/"}},
			not: [][]string{{"--dev-bind", filepath.Join(dev, "nvidia0"), "/dev/nvidia0"}}},
		{name: "GPU the host lacks", spec: func(s *sandbox.Spec) { s.GPUs = []int{5} }, wantErr: "nvidia5"},
		{name: "read-only and writable paths", spec: func(s *sandbox.Spec) { s.ReadOnly = []string{model}; s.Writable = []string{sock} },
			want: [][]string{{"--ro-bind", model, model}, {"--bind", sock, sock}},
			not:  [][]string{{"--bind", model, model}}},
		{name: "relative read-only path", spec: func(s *sandbox.Spec) { s.ReadOnly = []string{"model"} }, wantErr: "must be absolute"},
		{name: "mounts elsewhere", spec: func(s *sandbox.Spec) {
			s.Mounts = []sandbox.Mount{{Source: sock, Target: sandbox.SocketDir}, {Source: model, Target: "/opt/model/", Writable: true}}
		},
			want: [][]string{{"--tmpfs", "/run"}, {"--ro-bind", sock, "/run/ptb"}},
			not:  [][]string{{"--bind", sock, "/run/ptb"}}},
		{name: "writable mount", spec: func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: sock, Target: "/run/srv", Writable: true}} },
			want: [][]string{{"--bind", sock, "/run/srv"}}},
		{name: "relative mount", spec: func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "sock", Target: "/run/ptb"}} }, wantErr: "both paths must be absolute"},
		{name: "hidden paths inside a read-only path", spec: func(s *sandbox.Spec) {
			s.ReadOnly = []string{out}
			s.Hidden = []string{other, secret, filepath.Join(root, "not-shown")}
		},
			// The hidden directory becomes an empty read-only tmpfs after the
			// bind that shows it; the hidden file is /dev/null.
			want: [][]string{{"--ro-bind", out, out}, {"--tmpfs", other}, {"--ro-bind", "/dev/null", secret}, {"--remount-ro", other}, {"--remount-ro", "/"}},
			not:  [][]string{{"--tmpfs", filepath.Join(root, "not-shown")}}},
		{name: "sized tmp", spec: func(s *sandbox.Spec) { s.Limits.TmpBytes = 8 << 20 },
			want: [][]string{{"--tmpfs", "/run", "--perms", "1777", "--size", "8388608", "--tmpfs", "/dev/shm"}, {"--perms", "1777", "--size", "8388608", "--tmpfs", "/tmp"}},
			not:  [][]string{{"--bind", tmp, "/tmp"}}},
		{name: "working directory", spec: func(s *sandbox.Spec) { s.Dir = filepath.Join(ws, "sub") },
			tail: []string{"--chdir", filepath.Join(ws, "sub"), "--", "agent", "-p", "hi"}},
		{name: "root harness drops to an unprivileged user", drop: drop,
			head: append(append([]string{}, ns...), "--unshare-net"),
			tail: append([]string{"--chdir", ws, "--"}, dropArgv(*drop, []string{"agent", "-p", "hi"})...),
			not:  [][]string{{"--unshare-user"}}},
		{name: "relative workspace", spec: func(s *sandbox.Spec) { s.Workspace = "ws" }, wantErr: "workspace must be an absolute path"},
		{name: "no tmp", spec: func(s *sandbox.Spec) { s.Tmp = "" }, wantErr: "tmp must be an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := base()
			if tt.spec != nil {
				tt.spec(&spec)
			}
			a, err := hostLayout{etc: etc, dev: dev}.args(spec, tt.drop)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.head) > 0 && !slices.Equal(a[:min(len(a), len(tt.head))], tt.head) {
				t.Errorf("argv starts %q, want %q", a[:min(len(a), len(tt.head))], tt.head)
			}
			if len(tt.tail) > 0 && !slices.Equal(a[max(0, len(a)-len(tt.tail)):], tt.tail) {
				t.Errorf("argv ends %q, want %q", a[max(0, len(a)-len(tt.tail)):], tt.tail)
			}
			last := -1
			for _, g := range tt.want {
				i := indexOf(a[last+1:], g)
				if i < 0 {
					if indexOf(a, g) >= 0 {
						t.Errorf("%q is out of order in:\n%s", g, strings.Join(a, " "))
					} else {
						t.Errorf("argv lacks %q:\n%s", g, strings.Join(a, " "))
					}
					continue
				}
				last += 1 + i
			}
			for _, g := range tt.not {
				if indexOf(a, g) >= 0 {
					t.Errorf("argv has %q:\n%s", g, strings.Join(a, " "))
				}
			}
		})
	}
}
