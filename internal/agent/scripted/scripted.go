// Package scripted is the built-in stand-in agent for tests and the demo: it
// runs a small script of steps (shell commands, waits, file writes, a tiny
// model) inside the sandbox and emits a JSONL trace like a real agent CLI.
// A relaunch (resume after a harness crash) continues after the last step
// that finished, using a state file in the workspace.
package scripted

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/agent"
)

// Script is the YAML a scripted agent runs.
type Script struct {
	Steps []Step `yaml:"steps"`
	Final string `yaml:"final"` // the final message
}

// Step is one action; exactly one field is set.
type Step struct {
	Say   string     `yaml:"say,omitempty"`   // an assistant message
	Run   string     `yaml:"run,omitempty"`   // a shell command (sh -c), like a Bash tool call
	Sleep string     `yaml:"sleep,omitempty"` // a Go duration, e.g. 2s
	Write *WriteStep `yaml:"write,omitempty"` // a file write
	Model string     `yaml:"model,omitempty"` // write a tiny safetensors model into this directory
}

// WriteStep writes Content to Path (relative to the workspace).
type WriteStep struct {
	Path    string `yaml:"path"`
	Content string `yaml:"content"`
}

// Parse reads and checks a script.
func Parse(b []byte, name string) (*Script, error) {
	var s Script
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("script %s: %w", name, err)
	}
	for i, st := range s.Steps {
		n := 0
		for _, set := range []bool{st.Say != "", st.Run != "", st.Sleep != "", st.Write != nil, st.Model != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("script %s: steps[%d]: exactly one of say, run, sleep, write, model must be set", name, i)
		}
		if st.Sleep != "" {
			if _, err := time.ParseDuration(st.Sleep); err != nil {
				return nil, fmt.Errorf("script %s: steps[%d]: sleep: %w", name, i, err)
			}
		}
	}
	return &s, nil
}

// StateFile is where progress is kept, relative to the workspace.
const StateFile = ".ptb-scripted-state"

// Main runs the script at path in the current directory, writing the trace
// to stdout, and returns the exit code.
func Main(ctx context.Context, path string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "scripted:", err)
		return 2
	}
	s, err := Parse(b, path)
	if err != nil {
		fmt.Fprintln(stderr, "scripted:", err)
		return 2
	}
	enc := json.NewEncoder(stdout)
	emit := func(v map[string]any) { enc.Encode(v) }
	done := 0
	if b, err := os.ReadFile(StateFile); err == nil {
		done, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	emit(map[string]any{"type": "session_start", "agent": "scripted", "resumed_at_step": done,
		"continue": os.Getenv("PTB_CONTINUE") == "1", "note": os.Getenv("PTB_CONTINUE_NOTE")})
	calls := 0
	for i := done; i < len(s.Steps); i++ {
		st := s.Steps[i]
		id := "step-" + strconv.Itoa(i)
		switch {
		case st.Say != "":
			emit(map[string]any{"type": "assistant", "text": st.Say})
		case st.Run != "":
			calls++
			emit(map[string]any{"type": "tool_call", "id": id, "name": "bash", "input": map[string]string{"command": st.Run}})
			cmd := exec.CommandContext(ctx, "sh", "-c", st.Run)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if err != nil {
				code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
			}
			emit(map[string]any{"type": "tool_result", "id": id, "output": out.String(), "exit_code": code, "is_error": code != 0})
		case st.Sleep != "":
			d, _ := time.ParseDuration(st.Sleep)
			emit(map[string]any{"type": "tool_call", "id": id, "name": "sleep", "input": map[string]string{"duration": st.Sleep}})
			calls++
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return 1
			}
			emit(map[string]any{"type": "tool_result", "id": id, "output": "", "exit_code": 0})
		case st.Write != nil:
			calls++
			emit(map[string]any{"type": "tool_call", "id": id, "name": "write", "input": map[string]string{"path": st.Write.Path}})
			err := writeFile(st.Write.Path, []byte(st.Write.Content))
			emit(map[string]any{"type": "tool_result", "id": id, "output": errText(err), "is_error": err != nil})
		case st.Model != "":
			calls++
			emit(map[string]any{"type": "tool_call", "id": id, "name": "write_model", "input": map[string]string{"dir": st.Model}})
			err := WriteTinyModel(st.Model)
			emit(map[string]any{"type": "tool_result", "id": id, "output": errText(err), "is_error": err != nil})
		}
		os.WriteFile(StateFile, []byte(strconv.Itoa(i+1)), 0o644)
	}
	emit(map[string]any{"type": "result", "final_message": s.Final, "tool_calls": calls,
		"usage": map[string]int{"input_tokens": 0, "output_tokens": 0}})
	return 0
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// WriteTinyModel writes a small but real Hugging Face model directory:
// config.json and model.safetensors with two bf16 tensors. It stands in for
// a trained checkpoint in tests and the demo.
func WriteTinyModel(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 8, "vocab_size": 16, "num_hidden_layers": 1, "torch_dtype": "bfloat16"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	tensors := []struct {
		name  string
		shape []int
	}{{"model.embed_tokens.weight", []int{16, 8}}, {"model.norm.weight", []int{8}}}
	var data bytes.Buffer
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	for k, t := range tensors {
		n := 1
		for _, d := range t.shape {
			n *= d
		}
		start := data.Len()
		for i := 0; i < n; i++ {
			v := float32(math.Sin(float64(k*1000+i))) * 0.02
			binary.Write(&data, binary.LittleEndian, uint16(math.Float32bits(v)>>16)) // bf16
		}
		header[t.name] = map[string]any{"dtype": "BF16", "shape": t.shape, "data_offsets": []int{start, data.Len()}}
	}
	h, _ := json.Marshal(header)
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(len(h)))
	out.Write(h)
	out.Write(data.Bytes())
	return os.WriteFile(filepath.Join(dir, "model.safetensors"), out.Bytes(), 0o644)
}

// Scaffold launches the scripted agent: the harness's own executable run
// as `ptb agent-run scripted --script ~/.ptb-script.yaml`.
type Scaffold struct {
	Binary string // the ptb executable as seen inside the sandbox
	Script []byte // the script's content
}

var _ agent.Scaffold = (*Scaffold)(nil)

// Name implements agent.Scaffold.
func (*Scaffold) Name() string { return Info.Name }

// Version implements agent.Scaffold.
func (*Scaffold) Version(context.Context) string { return "builtin" }

// Command implements agent.Scaffold.
func (s *Scaffold) Command(_ context.Context, l agent.Launch) (agent.Command, error) {
	if _, err := Parse(s.Script, "script"); err != nil {
		return agent.Command{}, err
	}
	c := agent.Command{
		Argv:      []string{s.Binary, "agent-run", "scripted", "--script", filepath.Join(l.Home, ".ptb-script.yaml")},
		HomeFiles: map[string][]byte{".ptb-script.yaml": s.Script},
	}
	if l.Continue {
		c.Env = append(c.Env, "PTB_CONTINUE=1", "PTB_CONTINUE_NOTE="+l.Note)
	}
	return c, nil
}
