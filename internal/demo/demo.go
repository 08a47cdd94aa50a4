// Package demo builds the inputs of `ptb demo`: a full job on a machine
// with no GPU, no API key and no network. Only two parts are stand-ins, and
// the output says so: the agent (the scripted agent playing agent.yaml) and
// the model server (completions recorded by StandInResponses).
package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// AgentScript is the scripted agent's script.
//
//go:embed agent.yaml
var AgentScript []byte

// Samples is how many GSM8K test problems the demo evaluates.
const Samples = 60

// StandInResponses writes recorded completions for the first n GSM8K test
// problems (read from src: dataset.Locate's rule, so the copy shipped in
// ptb when nothing else has it) to path, in the `ptb eval --responses` format. The stand-in
// "model" answers two problems in three correctly and the third with the
// answer plus one; its completions use the format the prompt asks for.
func StandInResponses(ctx context.Context, src dataset.Source, path string, n int) error {
	rows, err := dataset.Records(ctx, src, task.GSM8KTest)
	if err != nil {
		return fmt.Errorf("read gsm8k test set: %w", err)
	}
	if n > len(rows) {
		n = len(rows)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := 0; i < n; i++ {
		var r struct {
			Answer string `json:"answer"`
		}
		if err := json.Unmarshal(rows[i], &r); err != nil {
			f.Close()
			return fmt.Errorf("gsm8k test row %d: %w", i, err)
		}
		parts := strings.Split(r.Answer, "####")
		target := strings.TrimSpace(parts[len(parts)-1])
		answer := target
		if i%3 == 2 {
			answer = target + "1" // wrong: a stand-in model makes mistakes
		}
		completion := "Let me work through this step by step.\n\nANSWER: " + answer
		if err := enc.Encode(map[string]any{"id": i, "completion": completion}); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
