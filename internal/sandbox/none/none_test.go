package none_test

import (
	"os"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

func newBackend() sandbox.Backend { return none.New() }

func TestMain(m *testing.M) {
	sandboxtest.HelperMain(newBackend)
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	sandboxtest.Run(t, newBackend)
}
