package eval

import (
	_ "embed"
	"strconv"

	"github.com/ptb-dev/ptb/internal/eval/task"
)

// HFServerFile is the name the embedded transformers server is written under.
const HFServerFile = "server.py"

// hfServerPy is a small OpenAI-compatible server on transformers for machines
// without vLLM (hfserver/server.py).
//
//go:embed hfserver/server.py
var hfServerPy []byte

// HFServerSource returns the embedded server.py.
func HFServerSource() []byte { return append([]byte(nil), hfServerPy...) }

// HFArgs is the command line of the embedded server after the script path:
// the model, where to listen, the API key and, as for vLLM, the task's chat
// template (absent: the tokenizer's own).
func HFArgs(o Options, info task.Info, port int, key string) []string {
	args := []string{"--model", o.ModelPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--api-key", key}
	if t := chatTemplate(o, info); t != "" {
		args = append(args, "--chat-template", t)
	}
	return args
}
