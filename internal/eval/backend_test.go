package eval_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// TestBackendRegistry: the four backends by name, with what the evaluation
// asks of them; "" is url; an unknown name lists the known ones.
func TestBackendRegistry(t *testing.T) {
	cases := []struct {
		name, want      string
		server, replays bool
	}{
		{eval.BackendVLLM, "vllm", true, false},
		{eval.BackendHF, "hf", true, false},
		{eval.BackendURL, "url", false, false},
		{"", "url", false, false},
		{eval.BackendReplay, "replay", false, true},
	}
	for _, c := range cases {
		b, err := eval.LookupBackend(c.name)
		if err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		if b.Name() != c.want || b.StartsServer() != c.server || b.Replays() != c.replays {
			t.Errorf("%q: got %s server=%v replays=%v, want %s server=%v replays=%v", c.name, b.Name(), b.StartsServer(), b.Replays(), c.want, c.server, c.replays)
		}
		if eval.StartsServer(c.name) != c.server {
			t.Errorf("StartsServer(%q) = %v, want %v", c.name, !c.server, c.server)
		}
	}
	_, err := eval.LookupBackend("vlm")
	for _, n := range []string{`"vlm"`, "vllm", "hf", "url", "replay"} {
		if err == nil || !strings.Contains(err.Error(), n) {
			t.Errorf("unknown backend: got %v, want an error naming %s", err, n)
		}
	}
	if eval.StartsServer("vlm") {
		t.Error("StartsServer(unknown) = true")
	}
}

// echoBackend answers every sample with its target: a backend added from
// outside package eval, through the registry alone.
type echoBackend struct{}

func (echoBackend) Name() string       { return "test-echo" }
func (echoBackend) StartsServer() bool { return false }
func (echoBackend) Replays() bool      { return false }
func (echoBackend) Open(ctx context.Context, o eval.Options, info task.Info, hc *http.Client, timeout time.Duration) (eval.Generate, func(), error) {
	return func(ctx context.Context, s task.Sample, maxTokens int) (task.Output, bool, error) {
		return task.Output{Content: "The answer is " + s.Target}, true, nil
	}, func() {}, nil
}

func init() { eval.RegisterBackend(echoBackend{}) }

func TestRegisteredBackendRuns(t *testing.T) {
	data := evaltest.Datasets(t)
	sum, err := eval.Run(context.Background(), eval.Options{
		Task: "gsm8k", OutDir: t.TempDir(),
		Target: eval.Target{Backend: "test-echo"},
		Data:   eval.Data{DataDir: data, Limit: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Backend != "test-echo" || sum.Samples != 4 || sum.Accuracy != 1 || sum.Server != nil {
		t.Fatalf("got backend %s, %d samples, accuracy %v, server %v; want test-echo, 4, 1, none", sum.Backend, sum.Samples, sum.Accuracy, sum.Server)
	}
}
