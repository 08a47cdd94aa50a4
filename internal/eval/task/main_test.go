package task

import (
	"os"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/pyexec"
)

// The test binary is the HumanEval worker inside the sandbox, as `ptb
// humaneval-worker` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == pyexec.WorkerCommand {
		os.Exit(pyexec.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
