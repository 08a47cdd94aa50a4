package task

import "testing"

// TestInfoSeams: what callers learn from a task instead of switching on its
// name: whether it needs a grading model (the CLI gives evaluate a judge
// only then) and whether it supplies test items to the audit.
func TestInfoSeams(t *testing.T) {
	cases := []struct {
		name             string
		judge, testItems bool
	}{
		{"aime2025", false, false},
		{"arenahardwriting", true, true},
		{"bfcl", false, true},
		{"gpqamain", false, false},
		{"gsm8k", false, true},
		{"healthbench", true, true},
		{"humaneval", false, true},
	}
	if len(cases) != len(Names()) {
		t.Fatalf("%d cases for %d tasks %v", len(cases), len(Names()), Names())
	}
	for _, c := range cases {
		for _, v := range []string{Faithful, Strict} {
			tk, err := New(c.name, v, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tk.Info().Judge; got != c.judge {
				t.Errorf("%s %s: Info().Judge = %v, want %v", c.name, v, got, c.judge)
			}
			if _, got := tk.(TestItems); got != c.testItems {
				t.Errorf("%s %s: implements TestItems = %v, want %v", c.name, v, got, c.testItems)
			}
		}
	}
}
