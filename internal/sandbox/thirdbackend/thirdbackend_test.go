// Package thirdbackend_test adds a sandbox backend, "toybox", from a test
// package and nowhere else: it registers itself (sandbox.Register), and
// the CLI's backend choice (ptb run --sandbox, ptb eval --sandbox, the
// doctor's --sandbox) finds it by name.
package thirdbackend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ptb-dev/ptb/internal/cli"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// toybox runs processes as the none backend does, under a name of its own,
// and counts what it started.
type toybox struct{ none.Backend }

var started atomic.Int64

func (b *toybox) Capabilities() sandbox.Capabilities {
	c := b.Backend.Capabilities()
	c.Name = "toybox"
	return c
}

func (b *toybox) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Process, error) {
	started.Add(1)
	return b.Backend.Start(ctx, spec)
}

func init() { sandbox.Register("toybox", func() sandbox.Backend { return &toybox{} }) }

// TestMain plays ptb when a command under test starts it again.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (!strings.HasPrefix(os.Args[1], "-") || os.Getenv("PTB_TEST_AS_PTB") == "1") {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runPTB(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRegistry(t *testing.T) {
	if got := sandbox.Backends(); !slices.Equal(got, []string{"bwrap", "none", "toybox"}) {
		t.Errorf("Backends() = %v, want bwrap, none (linked through cli) and toybox", got)
	}
	b, err := sandbox.Lookup("toybox")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Capabilities().Name; got != "toybox" {
		t.Errorf("Lookup(toybox) is %q", got)
	}
	if _, err := sandbox.Lookup("docker"); err == nil || !strings.Contains(err.Error(), "bwrap, none, toybox") {
		t.Errorf("Lookup(docker) = %v, want an error naming the backends", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering none again did not panic")
		}
	}()
	sandbox.Register("none", func() sandbox.Backend { return &toybox{} })
}

// ptb run --sandbox toybox runs the agent in the toybox backend and
// records it.
func TestRunChoosesRegisteredBackend(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "runs")
	before := started.Load()
	code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "toybox",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.02", "--eval-backend", "none",
		"--monitor-interval", "0", "--run-id", "toybox-run", "--out", out)
	if code != 0 {
		t.Fatalf("ptb run --sandbox toybox: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if started.Load() == before {
		t.Error("the toybox backend started nothing")
	}
	b, err := os.ReadFile(filepath.Join(out, "toybox-run", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec result.Result
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Spec.SandboxName != "toybox" || rec.Sandbox.Backend != "toybox" || !rec.Sandbox.Unsandboxed {
		t.Errorf("result.json spec.sandbox %q, sandbox.backend %q, unsandboxed %v; want toybox, toybox, true (it isolates nothing)",
			rec.Spec.SandboxName, rec.Sandbox.Backend, rec.Sandbox.Unsandboxed)
	}
}

// An unknown name is a usage error that names the registered backends.
func TestUnknownBackendNamesRegistered(t *testing.T) {
	script := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(script, []byte("steps:\n  - model: final_model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "--agent", "scripted", "--script", script, "--sandbox", "docker", "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--eval-backend", "none", "--out", t.TempDir()},
		{"doctor", "--agents", "--sandbox", "docker"},
		{"eval", "--task", "gsm8k", "--model", t.TempDir(), "--sandbox", "docker"},
	} {
		code, _, stderr := runPTB(t, args...)
		if code != 2 || !strings.Contains(stderr, "bwrap or none or toybox") {
			t.Errorf("%s: exit %d, want 2 naming bwrap or none or toybox:\n%s", args[0], code, stderr)
		}
	}
}
