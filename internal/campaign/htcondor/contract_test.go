package htcondor

import (
	"os"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// poolBin returns the folder of the pool's condor_* commands, or skips the
// test when no pool was brought up.
func poolBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PTB_CONDOR_BIN")
	if bin == "" {
		t.Skip("no HTCondor pool: run scripts/ci/condor-up.sh and export the PTB_CONDOR_BIN it prints")
	}
	return bin
}

// sharedRoot makes an output root the pool's jobs can reach (under /tmp,
// which condor-up.sh binds into the pool's chroot) and write (they run as
// another user).
func sharedRoot(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("", "ptb-condor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Jobs being removed may still write their last files.
		for i := 0; i < 20 && os.RemoveAll(root) != nil; i++ {
			time.Sleep(500 * time.Millisecond)
		}
	})
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestContract(t *testing.T) {
	bin := poolBin(t)
	root := sharedRoot(t)
	campaigntest.Run(t, func(t *testing.T) campaigntest.Env {
		return campaigntest.Env{
			Exec: New(Settings{Bin: bin, VacateTime: 30 * time.Second}),
			Root: root,
			Wait: 2 * time.Minute,
		}
	})
}
