package report

import "testing"

// The column titles come from the registry and are the paper's Table 1's.
func TestBenchmarkName(t *testing.T) {
	for b, want := range map[string]string{
		"aime2025": "AIME 2025", "arenahardwriting": "Arena Hard", "bfcl": "BFCL", "gpqamain": "GPQA",
		"gsm8k": "GSM8K", "healthbench": "HealthBench", "humaneval": "HumanEval", "mmlu": "mmlu",
	} {
		if got := BenchmarkName(b); got != want {
			t.Errorf("BenchmarkName(%q) = %q, want %q", b, got, want)
		}
	}
}
