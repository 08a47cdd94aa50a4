package sandboxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
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

// harnessMain plays a harness: it starts the encoded spec with the backend
// newBackend makes and waits to be killed. HelperMain calls it.
func harnessMain(enc, backend string, newBackend func() sandbox.Backend) int {
	var w wireSpec
	if err := json.Unmarshal([]byte(enc), &w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if newBackend == nil {
		fmt.Fprintln(os.Stderr, "sandboxtest: no backend for the child harness: TestMain must pass Run's constructor to HelperMain")
		return 2
	}
	b := newBackend()
	if name := b.Capabilities().Name; name != backend {
		fmt.Fprintf(os.Stderr, "sandboxtest: the child harness got backend %s from HelperMain, but the suite runs %s\n", name, backend)
		return 2
	}
	p, err := b.Start(context.Background(), sandbox.Spec{Argv: w.Argv, Env: w.Env, ReadOnly: w.ReadOnly,
		Hidden: w.Hidden, Workspace: w.Workspace, Home: w.Home, Tmp: w.Tmp, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("started", p.Handle())
	time.Sleep(time.Hour)
	return 0
}
