package jobrun

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// The run's gateway takes its keys from the environment it is given, never
// from the process's: a caller (a test, an executor) decides what it holds.
func TestRunGatewayKeysFromGivenEnvironment(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-from-the-process")
	spec := job.Spec{Agent: "claude", AgentModel: "claude-opus-4-6"}
	for _, c := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"no environment", nil, "set ANTHROPIC_API_KEY"},
		{"key given", map[string]string{"ANTHROPIC_API_KEY": "sk-given"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "gateway.sock")
			var getenv func(string) string
			if c.env != nil {
				getenv = func(k string) string { return c.env[k] }
			}
			s, err := RunGateway{Reg: registry.Default(), Getenv: getenv}.Start(context.Background(), rundir.Dir(dir), spec, sock)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		})
	}
}

// The default data directory hidden from the sandbox is the one the caller
// names (cli: $PTB_DATA_DIR), not whatever the process's environment says.
func TestHostDataHidesGivenDataDir(t *testing.T) {
	given, process := t.TempDir(), t.TempDir()
	t.Setenv("PTB_DATA_DIR", process)
	real := func(p string) string {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	h := hostData(job.Spec{}, given)
	if !slices.Contains(h, real(given)) {
		t.Errorf("hidden %q, want it to hold %s", h, given)
	}
	if slices.Contains(h, real(process)) {
		t.Errorf("hidden %q holds the process's $PTB_DATA_DIR %s", h, process)
	}
}

// Config.getenv reads the given lookup only.
func TestConfigGetenv(t *testing.T) {
	t.Setenv("PTB_TEST_VAR", "process")
	if got := (Config{}).getenv("PTB_TEST_VAR"); got != "" {
		t.Errorf("nil LookupEnv gave %q, want \"\"", got)
	}
	c := Config{LookupEnv: func(k string) (string, bool) { return "given-" + k, true }}
	if got := c.getenv("PTB_TEST_VAR"); got != "given-PTB_TEST_VAR" {
		t.Errorf("getenv = %q, want given-PTB_TEST_VAR", got)
	}
	if c.self() == "" || (Config{Self: "/x/ptb"}).self() != "/x/ptb" {
		t.Errorf("self: %q", c.self())
	}
}
