package slurm

import (
	"os"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// needSlurm skips unless a Slurm cluster is up (scripts/ci/slurm-up.sh
// prints PTB_SLURM=1 for it).
func needSlurm(t *testing.T) {
	t.Helper()
	if os.Getenv("PTB_SLURM") == "" {
		t.Skip("no Slurm cluster: run `eval \"$(scripts/ci/slurm-up.sh)\"` as root to start one and set PTB_SLURM=1")
	}
}

// TestContract runs the executor contract suite against the real Slurm.
func TestContract(t *testing.T) {
	needSlurm(t)
	campaigntest.Run(t, func(t *testing.T) campaigntest.Env {
		ex, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		os.Chmod(root, 0o777)
		return campaigntest.Env{Exec: ex, Root: root, Wait: 3 * time.Minute}
	})
}
