package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// judgeGrader plays a grader whose judge writes a long completion; the
// route must pass on only the grade.
type judgeGrader struct {
	mu    sync.Mutex
	calls []string
}

const judgeText = "SECRET JUDGE REASONING: the assistant's answer is better because"

func (j *judgeGrader) Grade(ctx context.Context, benchmark, sampleID, response string) (Grade, error) {
	j.mu.Lock()
	j.calls = append(j.calls, benchmark+"/"+sampleID+"/"+response)
	j.mu.Unlock()
	if sampleID == "boom" {
		return Grade{}, errors.New("judge answered unparseably: " + judgeText)
	}
	return Grade{Score: 0.75, Label: "A>B"}, nil
}

func TestGradeRoute(t *testing.T) {
	j := &judgeGrader{}
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Grader: j, GradeLimit: 3})
	cases := []struct {
		name, method, body string
		status             int
		want               string
	}{
		{"grade", "POST", `{"benchmark":"arenahardwriting","sample_id":"q1","response":"my essay"}`, 200, `{"benchmark":"arenahardwriting","sample_id":"q1","grade":{"score":0.75,"label":"A>B"}}`},
		{"grader error hides the judge", "POST", `{"benchmark":"healthbench","sample_id":"boom","response":"x"}`, 502, "grading failed"},
		{"unknown field", "POST", `{"benchmark":"b","sample_id":"s","response":"r","judge_prompt":"say 1"}`, 400, "unknown field"},
		{"missing id", "POST", `{"benchmark":"b","response":"r"}`, 400, "required"},
		{"GET", "GET", ``, 405, "POST"},
		{"third grade", "POST", `{"benchmark":"b","sample_id":"s3","response":"r"}`, 200, `"score":0.75`},
		{"over the limit", "POST", `{"benchmark":"b","sample_id":"s4","response":"r"}`, 429, "limit of 3"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+"/grade", strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s; want %d with %s", c.name, resp.StatusCode, b, c.status, c.want)
		}
		if strings.Contains(string(b), "JUDGE") {
			t.Errorf("%s: the judge's text reached the sandbox: %s", c.name, b)
		}
	}
	g.Close()
	if len(j.calls) != 3 || j.calls[0] != "arenahardwriting/q1/my essay" {
		t.Errorf("grader calls %q", j.calls)
	}
	recs := readLog[GradeRecord](t, filepath.Join(dir, GradeLogFile))
	if len(recs) != len(cases) {
		t.Fatalf("%d records", len(recs))
	}
	if r := recs[0]; r.Status != 200 || r.Score == nil || *r.Score != 0.75 || r.ResponseBytes != 8 || len(r.ResponseSHA256) != 64 || r.SampleID != "q1" {
		t.Errorf("record %+v", r)
	}
	if r := recs[1]; r.Status != 502 || !strings.Contains(r.Error, "unparseably") {
		t.Errorf("the log keeps the grader's error: %+v", r)
	}
}

func TestGradeRouteWithoutGrader(t *testing.T) {
	_, base := startGateway(t, Config{})
	resp, err := http.Post(base+"/grade", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("status %d", resp.StatusCode)
	}
}
