package audit

import "testing"

// The judge prompt's {benchmark} is the registry's display name (PROMPTS.md).
func TestBenchmarkName(t *testing.T) {
	for task, want := range map[string]string{
		"aime2025":         "American Invitational Mathematics Examination (AIME) 2025",
		"arenahardwriting": "Arena-Hard-v2.0 (Writing)",
		"bfcl":             "Berkeley Function Calling Leaderboard (BFCL)",
		"gpqamain":         "GPQA",
		"gsm8k":            "GSM8K (Grade School Math 8K)",
		"healthbench":      "HealthBench",
		"humaneval":        "HumanEval",
		"mmlu":             "mmlu",
	} {
		if got := BenchmarkName(task); got != want {
			t.Errorf("BenchmarkName(%q) = %q, want %q", task, got, want)
		}
	}
}
