package campaign

import (
	"strings"
	"testing"
)

// Parse never panics, and every error it returns names the file.
func FuzzParse(f *testing.F) {
	f.Add(strings.ReplaceAll(validFile, "ID", "x"))
	f.Add(matrixFile("x"))
	f.Add("name: [a\n")
	f.Add("agents: &a [*a]\n")
	f.Add("executor: {fake: 3}\nname: x\n")
	f.Fuzz(func(t *testing.T, body string) {
		_, err := Parse([]byte(body), "/f.yaml")
		if err != nil && !strings.HasPrefix(err.Error(), "/f.yaml") {
			t.Errorf("error %q does not name the file", err)
		}
	})
}
