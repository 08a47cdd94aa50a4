package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// firstBadLine returns the 1-based number of the first non-blank line of
// data that is not a JSON object (0 if none); complete says whether to
// skip a last line without a newline, as readScored does.
func firstBadLine(data []byte, complete bool) int {
	lines := bytes.Split(data, []byte("\n"))
	for i, l := range lines {
		if complete && i == len(lines)-1 {
			break // no newline after it: torn, ignored
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(l, &m) != nil {
			return i + 1
		}
	}
	return 0
}

// errLine is the line number an error names after "path:", or 0.
func errLine(err error, path string) int {
	msg := err.Error()
	i := strings.Index(msg, path+":")
	if i < 0 {
		return 0
	}
	var n int
	fmt.Sscanf(msg[i+len(path)+1:], "%d", &n)
	return n
}

// FuzzReadResponses feeds arbitrary replay files to ReadResponses: it
// never panics, and a line that is not a JSON object is refused with
// "path:line:". Seeds: testdata/fuzz/FuzzReadResponses.
func FuzzReadResponses(f *testing.F) {
	f.Add([]byte(`{"id": 1, "completion": "42"}` + "\n" + `{"id": "x", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "responses.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadResponses(p)
		if n := firstBadLine(data, false); n > 0 {
			// An earlier line may be refused first (no id).
			if err == nil || errLine(err, p) < 1 || errLine(err, p) > n {
				t.Fatalf("line %d is not a JSON object; got %v", n, err)
			}
		}
		if err != nil && !strings.Contains(err.Error(), p+":") {
			t.Fatalf("error does not name the file and line: %v", err)
		}
	})
}

// FuzzReadScored feeds arbitrary samples.jsonl files to readScored: it
// never panics, ignores a torn last line, and refuses a bad whole line with
// "path:line:". Seeds: testdata/fuzz/FuzzReadScored.
func FuzzReadScored(f *testing.F) {
	f.Add([]byte(`{"id": "1", "completion": "x", "extracted": "4", "score": 1, "target": "4"}` + "\n" + `{"id": "2", "sc`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "samples.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readScored(p)
		if n := firstBadLine(data, true); n > 0 {
			// An earlier line may be refused first (a field of the wrong
			// type: testdata/fuzz/FuzzReadScored/e6f9f60ca63ffd79).
			if err == nil || errLine(err, p) < 1 || errLine(err, p) > n {
				t.Fatalf("line %d is not a JSON object; got %v", n, err)
			}
		}
		if err != nil && !strings.Contains(err.Error(), p+":") {
			t.Fatalf("error does not name the file and line: %v", err)
		}
	})
}

// TestReadersNameLines: each malformed line is refused with file:line:column.
func TestReadersNameLines(t *testing.T) {
	cases := []struct {
		name, data, want string
		read             func(string) error
	}{
		{"samples: a number for the id (fuzz finding)", "{\"id\":10}\n0\n", "samples.jsonl:1:8: json: cannot unmarshal number", func(p string) error { _, err := readScored(p); return err }},
		{"samples: not JSON", "{\"id\": \"1\"}\nnot json\n", "samples.jsonl:2:2: invalid character", func(p string) error { _, err := readScored(p); return err }},
		{"responses: not JSON", "{\"id\": 1, \"completion\": \"a\"}\n{\"id\": 2, completion}\n", "samples.jsonl:2:11: invalid character", func(p string) error { _, err := ReadResponses(p); return err }},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "samples.jsonl")
		os.WriteFile(p, []byte(c.data), 0o644)
		err := c.read(p)
		if err == nil || !strings.Contains(err.Error(), filepath.Dir(p)+"/"+c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
