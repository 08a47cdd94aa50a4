package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent/npmcli"
)

// The README's commands use only flags the commands have, its npm line pins
// the versions ptb is verified with, and it builds the static binary.
func TestReadmeCommands(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for name, pkg := range npmcli.Packages() {
		if strings.Count(readme, pkg) < 2 {
			t.Errorf("README does not pin %s (%s) in both npm lines", pkg, name)
		}
	}
	if !strings.Contains(readme, "CGO_ENABLED=0 go build -o bin/ptb ./cmd/ptb") {
		t.Error("README does not build with CGO_ENABLED=0")
	}
	for _, v := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "--credentials FILE", "--env NAME"} {
		if !strings.Contains(readme, v) {
			t.Errorf("README's authentication section lacks %s", v)
		}
	}
	// Join continued lines, then check every `bin/ptb VERB --flag`.
	text := strings.ReplaceAll(readme, "\\\n", " ")
	flag := regexp.MustCompile(`--([a-z][a-z-]*)`)
	n := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "bin/ptb ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		root := newRootCmd(&env{})
		cmd, _, err := root.Find(f[:1])
		if err != nil || cmd == root {
			t.Errorf("README: %q: unknown command", line)
			continue
		}
		for _, m := range flag.FindAllStringSubmatch(rest, -1) {
			if cmd.Flags().Lookup(m[1]) == nil && cmd.InheritedFlags().Lookup(m[1]) == nil {
				t.Errorf("README: %q: %s has no --%s", line, cmd.Name(), m[1])
			}
		}
		n++
	}
	if n < 5 {
		t.Errorf("found %d ptb commands in the README", n)
	}
}
