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
	"path/filepath"
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

// FindDataDir returns the first directory that holds the benchmark data
// (gsm8k/test.jsonl): dir itself if given, $PTB_DATA_DIR, or shared/datasets
// beside a checkout, searched upwards from the working directory and from
// the ptb executable.
func FindDataDir(dir string) (string, error) {
	if dir != "" {
		if ok(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("--data-dir %s: no gsm8k/test.jsonl there", dir)
	}
	if d := os.Getenv("PTB_DATA_DIR"); d != "" && ok(d) {
		return d, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			for _, c := range []string{filepath.Join(d, "shared", "datasets"), filepath.Join(d, "..", "shared", "datasets")} {
				if ok(c) {
					return filepath.Clean(c), nil
				}
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", fmt.Errorf("no benchmark data found: pass --data-dir DIR (a directory laid out like shared/datasets, with gsm8k/test.jsonl) or set PTB_DATA_DIR")
}

func ok(d string) bool {
	_, err := os.Stat(filepath.Join(d, "gsm8k", "test.jsonl"))
	return err == nil
}

// StandInResponses writes recorded completions for the first n GSM8K test
// problems to path, in the `ptb eval --responses` format. The stand-in
// "model" answers two problems in three correctly and the third with the
// answer plus one; its completions use the format the prompt asks for.
func StandInResponses(ctx context.Context, dataDir, path string, n int) error {
	rows, err := dataset.Records(ctx, dataset.Dir(dataDir), task.GSM8KTest)
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
