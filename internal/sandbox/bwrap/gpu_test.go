package bwrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// fakeDev lays out a /dev of a 2-GPU host as plain files.
func fakeDev(t *testing.T, names ...string) string {
	t.Helper()
	d := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(d, n), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestGPUBindList(t *testing.T) {
	full := []string{"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps"}
	for _, c := range []struct {
		name  string
		dev   []string
		gpus  []int
		want  []string // device nodes inside
		error string
	}{
		{name: "one of two", dev: full, gpus: []int{1},
			want: []string{"/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}},
		{name: "both", dev: full, gpus: []int{0, 1},
			want: []string{"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}},
		{name: "no modeset, no tools", dev: []string{"nvidia0", "nvidiactl", "nvidia-uvm"}, gpus: []int{0},
			want: []string{"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"}},
		{name: "none asked", dev: full, gpus: nil, want: nil},
		{name: "missing GPU", dev: full, gpus: []int{2}, error: "nvidia2"},
		{name: "no uvm node", dev: []string{"nvidia0", "nvidiactl"}, gpus: []int{0}, error: "nvidia-modprobe"},
		{name: "no driver", dev: []string{"nvidia0"}, gpus: []int{0}, error: "nvidiactl"},
		{name: "repeated index", dev: full, gpus: []int{0, 0}, error: "distinct"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev := fakeDev(t, c.dev...)
			dir := t.TempDir()
			spec := sandbox.Spec{Argv: []string{"true"}, Workspace: dir, Home: dir, Tmp: dir, GPUs: c.gpus}
			a, err := hostLayout{dev: dev, etc: fakeEtc(t)}.args(spec, nil)
			if c.error != "" {
				if err == nil || !strings.Contains(err.Error(), c.error) {
					t.Fatalf("error %v, want one mentioning %q", err, c.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := 0; i+2 < len(a); i++ {
				if a[i] == "--dev-bind" {
					if a[i+1] != filepath.Join(dev, filepath.Base(a[i+2])) {
						t.Errorf("%s bound from %s, want the host's node", a[i+2], a[i+1])
					}
					got = append(got, a[i+2])
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("device nodes %v, want %v", got, c.want)
			}
		})
	}
}

func TestNoGPUsNoDeviceBinds(t *testing.T) {
	// With no GPUs asked for, nothing of the host's /dev is bound, whatever
	// it holds: the sandbox gets bwrap's minimal /dev.
	dir := t.TempDir()
	a, err := hostLayout{etc: fakeEtc(t)}.args(sandbox.Spec{Argv: []string{"true"}, Workspace: dir, Home: dir, Tmp: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range a {
		if x == "--dev-bind" {
			t.Errorf("device bound without GPUs: %v", a[i:i+3])
		}
	}
}
