package cli

import (
	"os"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/registry"
)

// jobConfig is the configuration of a run's wiring: the one place where
// the harness's environment reaches it (jobrun and the pipeline read none).
func jobConfig(e *env, reg *registry.Registry, verbose bool) jobrun.Config {
	return jobrun.Config{
		Registry: reg, Stderr: e.stderr, Verbose: verbose, Version: Version, Pins: pinTable,
		Self:      selfPath(),
		LookupEnv: os.LookupEnv,
		DataDir:   os.Getenv(dataset.DataDirEnv),
		Grader:    jobrun.Grader{URL: os.Getenv("PTB_JUDGE_URL"), Key: os.Getenv("OPENAI_API_KEY")},
	}
}
