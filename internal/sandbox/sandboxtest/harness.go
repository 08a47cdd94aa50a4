package sandboxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// Environment of the child harness that DiesWithHarness starts and kills.
const (
	HarnessEnv        = "PTB_SANDBOXTEST_HARNESS"
	HarnessBackendEnv = "PTB_SANDBOXTEST_BACKEND"
)

type wireSpec struct {
	Argv, Env, ReadOnly, Hidden []string
	Workspace, Home, Tmp        string
}

func encodeSpec(s sandbox.Spec) string {
	b, _ := json.Marshal(wireSpec{Argv: s.Argv, Env: s.Env, ReadOnly: s.ReadOnly, Hidden: s.Hidden,
		Workspace: s.Workspace, Home: s.Home, Tmp: s.Tmp})
	return string(b)
}

// harnessMain plays a harness: it starts the encoded spec and waits to be
// killed. HelperMain calls it.
func harnessMain(enc, backend string) int {
	var w wireSpec
	if err := json.Unmarshal([]byte(enc), &w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var b sandbox.Backend
	switch backend {
	case "none":
		b = none.New()
	case "bwrap":
		b = bwrap.New()
	default:
		fmt.Fprintln(os.Stderr, "unknown backend", backend)
		return 2
	}
	p, err := b.Start(context.Background(), sandbox.Spec{Argv: w.Argv, Env: w.Env, ReadOnly: w.ReadOnly,
		Hidden: w.Hidden, Workspace: w.Workspace, Home: w.Home, Tmp: w.Tmp, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("started", p.Handle().PID)
	time.Sleep(time.Hour)
	return 0
}
