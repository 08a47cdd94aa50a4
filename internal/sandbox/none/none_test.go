package none_test

import (
	"os"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	sandboxtest.HelperMain()
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	sandboxtest.Run(t, func() sandbox.Backend { return none.New() })
}
