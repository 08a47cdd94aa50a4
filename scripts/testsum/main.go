// Command testsum reads `go test -json` on stdin, prints what plain
// `go test` prints (package results, the output of failed tests), and ends
// with one line that counts the skipped tests by reason. It exits 1 when a
// test or a package failed. scripts/test.sh pipes the test run through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// location is the "file_test.go:12: " prefix of a t.Log/t.Skip line.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// summarize copies the essentials of the event stream r to w and reports
// whether anything failed.
func summarize(r io.Reader, w io.Writer) (bool, error) {
	out := map[string][]string{} // package/test -> its output lines
	skips := map[string]int{}    // reason -> tests
	skipped, failed := 0, false
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var ev event
			if json.Unmarshal(line, &ev) != nil {
				w.Write(line) // build errors and other plain text
			} else {
				key := ev.Package + "/" + ev.Test
				switch ev.Action {
				case "output":
					if ev.Test == "" {
						// Package-level lines: the ok/FAIL summary, build
						// failures, output outside tests.
						if !strings.HasPrefix(ev.Output, "=== ") && !strings.HasPrefix(ev.Output, "PASS\n") && ev.Output != "FAIL\n" {
							io.WriteString(w, ev.Output)
						}
						continue
					}
					out[key] = append(out[key], ev.Output)
				case "fail":
					if ev.Test != "" {
						failed = true
						io.WriteString(w, strings.Join(out[key], ""))
					} else {
						failed = true
					}
					delete(out, key)
				case "skip":
					if ev.Test != "" {
						skipped++
						skips[skipReason(out[key])]++
					}
					delete(out, key)
				case "pass":
					delete(out, key)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return failed, err
		}
	}
	fmt.Fprintln(w, skipLine(skipped, skips))
	return failed, nil
}

// skipReason is the message a test skipped with: the last logged line
// before "--- SKIP", without its file:line prefix.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return strings.TrimSpace(location.ReplaceAllString(lines[i], ""))
	}
	return "no reason given"
}

// skipLine is the one-line summary: "skipped N tests: 3 × reason; ...",
// the most frequent reasons first.
func skipLine(n int, reasons map[string]int) string {
	if n == 0 {
		return "skipped 0 tests"
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if reasons[keys[i]] != reasons[keys[j]] {
			return reasons[keys[i]] > reasons[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d × %s", reasons[k], k)
	}
	return fmt.Sprintf("skipped %d tests: %s", n, strings.Join(parts, "; "))
}
