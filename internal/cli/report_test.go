package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPTB(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// writeOriginalRun lays out one run as the original harness does.
func writeOriginalRun(t *testing.T, root, method, run string, files map[string]string) {
	t.Helper()
	d := filepath.Join(root, method, run)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(d, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportThenReport(t *testing.T) {
	src, imported, out := t.TempDir(), t.TempDir(), t.TempDir()
	judged := func(acc string) map[string]string {
		return map[string]string{
			"metrics.json":                   `{"accuracy": ` + acc + `}`,
			"time_taken.txt":                 "4:30:00\n",
			"contamination_judgement.txt":    "no contamination detected\n",
			"disallowed_model_judgement.txt": "only allowed use detected\n",
		}
	}
	writeOriginalRun(t, src, "claude_claude-opus-4-6_10h_run1", "gsm8k_Qwen_Qwen3-4B-Base_11", judged("0.8"))
	writeOriginalRun(t, src, "claude_claude-opus-4-6_10h_run2", "gsm8k_Qwen_Qwen3-4B-Base_12", judged("0.6"))
	writeOriginalRun(t, src, "codex_gpt-5.2_10h_run1", "gsm8k_Qwen_Qwen3-4B-Base_13", judged("0.4"))

	code, stdout, stderr := runPTB(t, "import", "posttrainbench", src, "--out", imported)
	if code != 0 || !strings.Contains(stdout, `"claude-opus-4-6 (Claude Code)" seed 2`) {
		t.Fatalf("import: code %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = runPTB(t, "report", imported, "--format", "json")
	if code != 0 {
		t.Fatalf("report: code %d: %s", code, stderr)
	}
	var rep struct {
		Methods []struct {
			Method string  `json:"method"`
			NSeeds int     `json:"n_seeds"`
			Avg    float64 `json:"avg"`
		} `json:"methods"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Methods) != 2 || rep.Methods[0].Method != "claude-opus-4-6 (Claude Code)" || rep.Methods[0].NSeeds != 2 {
		t.Errorf("methods %+v", rep.Methods)
	}

	code, _, stderr = runPTB(t, "report", imported, "--format", "all", "--out", out,
		"--compare", "claude-opus-4-6 (Claude Code) vs gpt-5.2 (Codex CLI)")
	if code != 0 {
		t.Fatalf("report --out: code %d: %s", code, stderr)
	}
	for _, f := range []string{"report.md", "report.csv", "report.json", "report.html", "figures/avg.svg", "figures/time_vs_score.svg", "figures/bench_gsm8k.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "## claude-opus-4-6 (Claude Code) vs gpt-5.2 (Codex CLI)") {
		t.Errorf("report.md lacks the comparison")
	}
}

func TestReportUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no runs given", []string{"report"}, 2, "run directory"},
		{"unknown format", []string{"report", dir, "--format", "pdf"}, 2, "--format"},
		{"several formats to stdout", []string{"report", dir, "--format", "md,json"}, 2, "--out"},
		{"unknown comparison", []string{"report", dir, "--compare", "a vs b"}, 2, "--compare"},
		{"absent path", []string{"report", filepath.Join(dir, "nope")}, 1, "nope"},
		{"bad baselines", []string{"report", dir, "--baselines", filepath.Join(dir, "nope.yaml")}, 1, "baselines"},
		{"import without --out", []string{"import", "posttrainbench", dir}, 2, "--out"},
		{"import without kind", []string{"import"}, 2, "posttrainbench"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runPTB(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Errorf("code %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.msg)
			}
		})
	}
}

func TestReportHelp(t *testing.T) {
	code, stdout, _ := runPTB(t, "report", "--help")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{"--baselines", "--format", "--out", "--compare", "--bootstrap", "zero-shot", "sample std"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
