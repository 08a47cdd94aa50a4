package task

import (
	"slices"
	"strings"
	"testing"
)

// Every task registers itself under the name its Info gives, with its data
// files; the set and order are the leaderboard's.
func TestRegisteredTasks(t *testing.T) {
	want := []string{"aime2025", "arenahardwriting", "bfcl", "gpqamain", "gsm8k", "healthbench", "humaneval"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		for _, v := range []string{"", Faithful, Strict} {
			tk, err := New(name, v, Config{})
			if err != nil {
				t.Fatalf("New(%s, %q): %v", name, v, err)
			}
			wantV := v
			if wantV == "" {
				wantV = Faithful
			}
			if got := tk.Info(); got.Name != name || got.Version != wantV {
				t.Errorf("New(%s, %q).Info() = %s %s", name, v, got.Name, got.Version)
			}
		}
		files, ok := Files(name)
		if !ok || len(files) == 0 {
			t.Errorf("Files(%s) = %v, %v", name, files, ok)
		}
	}
	if _, err := New("mmlu", "", Config{}); err == nil || !strings.Contains(err.Error(), `unknown task "mmlu"`) {
		t.Errorf("New(mmlu) = %v", err)
	}
	if _, ok := Files("mmlu"); ok {
		t.Error("Files(mmlu) found")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering gsm8k again did not panic")
		}
	}()
	Register(Registration{Name: "gsm8k", New: func(bool, Config) Task { return nil }})
}
