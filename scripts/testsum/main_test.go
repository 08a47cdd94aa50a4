package main

import (
	"bytes"
	"strings"
	"testing"
)

// Real `go test -json` lines: a pass, two skips with the same reason, one
// with another, a failure, and the package result.
const stream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:12: bwrap unavailable: no user namespaces\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB","Elapsed":0}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:40: bwrap unavailable: no user namespaces\n"}
{"Action":"skip","Package":"p","Test":"TestC","Elapsed":0}
{"Action":"output","Package":"p","Test":"TestD","Output":"    d_test.go:7: set PTB_E2E_AGENTS=1 to run the real agent CLIs\n"}
{"Action":"skip","Package":"p","Test":"TestD","Elapsed":0}
{"Action":"output","Package":"p","Test":"TestE","Output":"    e_test.go:3: got 1, want 2\n"}
{"Action":"output","Package":"p","Test":"TestE","Output":"--- FAIL: TestE (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestE","Elapsed":0}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}
{"Action":"fail","Package":"p","Elapsed":0.01}
`

func TestSummarize(t *testing.T) {
	var out bytes.Buffer
	failed, err := summarize(strings.NewReader(stream), &out)
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v; want a failure reported", failed, err)
	}
	got := out.String()
	for _, want := range []string{
		"e_test.go:3: got 1, want 2", // a failed test's output
		"FAIL\tp\t0.01s",             // the package result
		"skipped 3 tests: 2 × bwrap unavailable: no user namespaces; 1 × set PTB_E2E_AGENTS=1 to run the real agent CLIs\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestA") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	if !strings.HasSuffix(got, "no user namespaces; 1 × set PTB_E2E_AGENTS=1 to run the real agent CLIs\n") {
		t.Errorf("the skip summary is not the last line:\n%s", got)
	}
}

func TestNoSkips(t *testing.T) {
	var out bytes.Buffer
	failed, _ := summarize(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}`+"\n"), &out)
	if failed || out.String() != "skipped 0 tests\n" {
		t.Errorf("failed %v, out %q", failed, out.String())
	}
}
