package cli

import (
	"fmt"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
)

// wireStages connects the evaluate and audit stages and usage accounting.
func wireStages(r *pipeline.Runner, spec job.Spec) {}

// cliScaffold returns the adapter of a real agent CLI.
func cliScaffold(spec job.Spec) (agent.Scaffold, error) {
	return nil, fmt.Errorf("%w for agent %q yet", errNoAdapter, spec.Agent)
}
