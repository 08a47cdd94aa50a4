package task

import (
	"context"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
)

// An early exit before check() runs scores 1 in faithful (the original's
// exit-code rule, a named quirk) and 0 in strict (the nonce printed after
// check() is missing); a correct solution scores 1 in both.
func TestHumanEvalStrictNonce(t *testing.T) {
	env := Env{Programs: evaltest.Programs(t, HumanEvalLimits, 10*time.Second)}
	faithful, err := New("humaneval", Faithful, Config{})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := New("humaneval", Strict, Config{})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := faithful.Load(context.Background(), dataset.Dir(evaltest.Datasets(t)))
	if err != nil {
		t.Fatal(err)
	}
	s := samples[0]
	cases := []struct {
		name, completion         string
		wantFaithful, wantStrict float64
	}{
		{"early exit", "pass\nimport os\nos._exit(0)", 1, 0},
		{"exit inside the function, fenced", "```python\ndef has_close_elements(numbers, threshold):\n    import os\n    os._exit(0)\n```", 1, 0},
		{"sys.exit(0) before check", "    return True\nimport sys\nsys.exit(0)\n", 1, 0},
		{"prints a guessed nonce", "    return True\nprint('ptb-humaneval-check-returned 00000000000000000000000000000000')\nimport os\nos._exit(0)\n", 1, 0},
		{"canonical solution", s.Target, 1, 1},
		{"wrong answer", "    return False\n", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []struct {
				tk   Task
				want float64
			}{{faithful, c.wantFaithful}, {strict, c.wantStrict}} {
				got, err := v.tk.Score(context.Background(), env, s, Output{Content: c.completion})
				if err != nil {
					t.Fatal(err)
				}
				if got.Score != v.want {
					t.Errorf("%s: score %v, want %v", v.tk.Info().Version, got.Score, v.want)
				}
			}
		})
	}
}
