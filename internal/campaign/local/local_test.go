package local

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// The test binary is the supervisor and the keeper: the executor starts
// os.Executable() with "campaign supervise ...".
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "campaign" && os.Args[2] == "supervise" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := Main(ctx, os.Args[3:], os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func newEnv(t *testing.T) campaigntest.Env {
	root := t.TempDir()
	t.Cleanup(func() { waitSupervisorsGone(t, root) })
	return campaigntest.Env{Exec: &Executor{GPUs: []int{0, 1, 2, 3}}, Root: root, Wait: time.Minute}
}

// waitSupervisorsGone waits until the supervisors of root's campaigns
// have left (idle), so that the test's directory can go.
func waitSupervisorsGone(t *testing.T, root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, campaign.CampaignsDir, "*"))
	for _, d := range dirs {
		for i := 0; i < 100 && supervised(d); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestContract(t *testing.T) {
	campaigntest.Run(t, newEnv)
}

func TestSettings(t *testing.T) {
	for _, c := range []struct {
		yaml string
		gpus []int
		auto bool
		err  string
	}{
		{"gpus: [0, 2]", []int{0, 2}, false, ""},
		{"gpus: auto", nil, true, ""},
		{"{}", nil, true, ""},
		{"gpus: [0, x]", nil, false, `line 1: executor local: gpus: "x" is not a GPU index`},
		{"gpus: [1, 1]", nil, false, "GPU 1 is listed twice"},
		{"\ngpu: [0]", nil, false, `line 2: executor local: unknown setting "gpu"`},
		{"gpus: all", nil, false, `want a list of GPU indices ([0, 1, 2, 3]) or auto, got "all"`},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(c.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		ex, err := New(doc.Content[0])
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.yaml, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		e := ex.(*Executor)
		if e.Auto != c.auto || !equal(e.GPUs, c.gpus) {
			t.Errorf("%q: gpus %v auto %v, want %v %v", c.yaml, e.GPUs, e.Auto, c.gpus, c.auto)
		}
	}
	if ex, err := New(nil); err != nil || !ex.(*Executor).Auto {
		t.Errorf("no settings: %v %+v, want auto", err, ex)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDetectGPUs(t *testing.T) {
	dir := t.TempDir()
	smi := filepath.Join(dir, "nvidia-smi")
	os.WriteFile(smi, []byte("#!/bin/sh\necho 'GPU 0: H100 (UUID: a)'\necho 'GPU 1: H100 (UUID: b)'\n"), 0o755)
	if got, err := DetectGPUs(context.Background(), smi, dir); err != nil || !equal(got, []int{0, 1}) {
		t.Errorf("from nvidia-smi: %v %v", got, err)
	}
	dev := t.TempDir()
	for _, n := range []string{"nvidia3", "nvidia1", "nvidiactl"} {
		os.WriteFile(filepath.Join(dev, n), nil, 0o644)
	}
	if got, err := DetectGPUs(context.Background(), filepath.Join(dir, "none"), dev); err != nil || !equal(got, []int{1, 3}) {
		t.Errorf("from /dev: %v %v", got, err)
	}
}
