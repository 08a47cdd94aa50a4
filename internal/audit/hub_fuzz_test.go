package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzHubLog feeds arbitrary hub logs to checkHub: it never panics, every
// finding names the log, a line that is not a request makes the check
// unverified (or a flag stands) with that line's number, and a served file
// of a denied repo always flags. Seeds: testdata/fuzz/FuzzHubLog.
func FuzzHubLog(f *testing.F) {
	f.Add([]byte(hubLines(HubRequest{Method: "GET", URL: "https://huggingface.co/Qwen/Qwen3-1.7B/resolve/main/model.safetensors", Repo: instructID, RepoType: "model", Path: "model.safetensors", Status: 200})))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "hub.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fs := checkHub(p, "gateway")
		if len(fs) == 0 {
			t.Fatal("no finding")
		}
		var ev strings.Builder
		status := map[string]bool{}
		for _, f := range fs {
			status[f.Status] = true
			ev.WriteString(strings.Join(f.Evidence, "\n"))
		}
		if !strings.Contains(ev.String(), p) {
			t.Fatalf("findings do not name the log: %+v", fs)
		}
		firstBad, served := 0, false
		for i, line := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var r HubRequest
			if json.Unmarshal([]byte(line), &r) != nil {
				if firstBad == 0 {
					firstBad = i + 1
				}
				continue
			}
			if _, ok := deniedFor(r); ok && r.Status < 400 && r.Path != "" {
				served = true
			}
		}
		if served && !status[Flag] {
			t.Fatalf("a served file of a denied repo did not flag: %+v", fs)
		}
		if firstBad > 0 && (status[Pass] || !strings.Contains(ev.String(), fmt.Sprintf("line %d", firstBad))) {
			t.Fatalf("line %d is not a request, findings %+v", firstBad, fs)
		}
	})
}
