package htcondor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// The htcondor example of docs/CAMPAIGN.md is a valid campaign file, and
// every line of the submit description the text shows is what the
// executor writes for it.
func TestDocExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "CAMPAIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	block := func(start string) string {
		i := strings.Index(doc, start)
		if i < 0 {
			t.Fatalf("docs/CAMPAIGN.md has no block starting %q", start)
		}
		body := doc[i+strings.Index(start, "\n")+1:]
		return body[:strings.Index(body, "```")]
	}
	f, err := campaign.Parse([]byte(block("```yaml\nname: htcondor-study")), "/docs/CAMPAIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := f.NewExecutor()
	if err != nil {
		t.Fatal(err)
	}
	sub := campaign.Submission{Campaign: f.Name, Root: f.Out, Dir: f.Dir(), Exe: "/shared/ptb/bin/ptb",
		Jobs: []campaign.Job{{Index: 0, RunID: "gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s1"}}, Resources: f.Resources,
		MaxParallel: f.Limits.MaxParallel, PassEnv: f.Secrets}
	got, err := Description(ex.(*Executor).s, sub, filepath.Join(f.Dir(), "htcondor", "submit-20261130T010203-1.runs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(block("```\nuniverse = vanilla")), "\n") {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("the doc's line %q is not in the description:\n%s", l, got)
		}
	}
}
