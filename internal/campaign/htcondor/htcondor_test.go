package htcondor

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
)

var update = flag.Bool("update", false, "rewrite the golden submit descriptions in testdata/")

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name, src string
		want      Settings
		wantErr   string
	}{
		{name: "none", src: "", want: Settings{VacateTime: DefaultVacateTime}},
		{name: "all", src: "bin: /opt/c/bin\nrequirements: 'CUDACapability >= 8.0'\naccounting_group: group_ptb.alice\nvacate_time: 2m\nsubmit:\n  +WantGPUHomeNode: 'true'\n  priority: 5\n",
			want: Settings{Bin: "/opt/c/bin", Requirements: "CUDACapability >= 8.0", AccountingGroup: "group_ptb.alice", VacateTime: 2 * time.Minute,
				Submit: [][2]string{{"+WantGPUHomeNode", "true"}, {"priority", "5"}}}},
		{name: "unknown field", src: "bin: /x\nrequirement: foo\n", wantErr: `line 2: executor htcondor: unknown field "requirement"`},
		{name: "relative bin", src: "bin: ptb-bin\n", wantErr: `line 1: htcondor.bin: "ptb-bin" is not an absolute path`},
		{name: "bad duration", src: "vacate_time: soon\n", wantErr: `line 1: htcondor.vacate_time: "soon"`},
		{name: "owned command", src: "submit:\n  kill_sig: SIGKILL\n", wantErr: "line 2: htcondor.submit: kill_sig is set by the executor"},
		{name: "owned attribute", src: "submit:\n  +PtbRunId: '\"x\"'\n", wantErr: "line 2: htcondor.submit: +PtbRunId is set by the executor"},
		{name: "bad name", src: "submit:\n  'a b': 1\n", wantErr: `line 2: htcondor.submit: "a b" is not a submit command name`},
		{name: "multi-line value", src: "requirements: |\n  a\n  b\n", wantErr: "line 1: htcondor.requirements: a submit value must fit on one line"},
		{name: "not a mapping", src: "- bin\n", wantErr: "line 1: executor htcondor: want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSettings(node(t, tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Bin != tt.want.Bin || got.Requirements != tt.want.Requirements || got.AccountingGroup != tt.want.AccountingGroup ||
				got.VacateTime != tt.want.VacateTime || len(got.Submit) != len(tt.want.Submit) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got.Submit {
				if got.Submit[i] != tt.want.Submit[i] {
					t.Errorf("submit[%d] = %v, want %v", i, got.Submit[i], tt.want.Submit[i])
				}
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	f, ok := campaign.Lookup("htcondor")
	if !ok {
		t.Fatal(`executor "htcondor" is not registered`)
	}
	ex, err := f(node(t, "bin: /opt/c\n"))
	if err != nil || ex.Name() != "htcondor" {
		t.Fatalf("factory: %v, %v", ex, err)
	}
	if _, err := f(node(t, "nope: 1\n")); err == nil {
		t.Fatal("factory accepted an unknown field")
	}
}

func TestDescriptionGolden(t *testing.T) {
	sub := campaign.Submission{
		Campaign: "paper-3seeds",
		Root:     "/data/ptb out",
		Dir:      "/data/ptb out/.campaign/paper-3seeds",
		Exe:      "/opt/ptb/bin/ptb",
		Jobs:     []campaign.Job{{Index: 0, RunID: "claude_qwen3-1.7b_gsm8k_s1"}, {Index: 1, RunID: "claude_qwen3-1.7b_gsm8k_s2"}},
	}
	gpu := sub
	gpu.Resources = campaign.Resources{GPUs: 1, CPUs: 8, MemoryMB: 65536, DiskMB: 200000, TimeLimit: 11 * time.Hour}
	gpu.MaxParallel = 4
	gpu.PassEnv = []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}
	full := Settings{Requirements: "CUDACapability >= 8.0", AccountingGroup: "group_ptb.alice", VacateTime: 2 * time.Minute,
		Submit: [][2]string{{"+WantGPUHomeNode", "true"}, {"priority", "5"}}}
	tests := []struct {
		golden string
		s      Settings
		sub    campaign.Submission
	}{
		{"submit-minimal.sub", Settings{VacateTime: DefaultVacateTime}, sub},
		{"submit-gpu.sub", full, gpu},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			got, err := Description(tt.s, tt.sub, filepath.Join(tt.sub.Dir, "htcondor", "submit-20261130T010203-1.runs"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("submit description differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestDescriptionRefuses(t *testing.T) {
	base := campaign.Submission{Campaign: "c", Dir: "/r/.campaign/c", Exe: "/bin/ptb", Jobs: []campaign.Job{{RunID: "a"}}}
	tests := []struct {
		name    string
		edit    func(*campaign.Submission)
		wantErr string
	}{
		{"macro in path", func(s *campaign.Submission) { s.Dir = "/r/$(x)/.campaign/c" }, "campaign directory"},
		{"relative exe", func(s *campaign.Submission) { s.Exe = "ptb" }, "not an absolute path"},
		{"quote in exe", func(s *campaign.Submission) { s.Exe = `/b/p"tb` }, "cannot carry"},
		{"bad env name", func(s *campaign.Submission) { s.PassEnv = []string{"A=1"} }, `"A=1" is not an environment variable name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.edit(&s)
			_, err := Description(Settings{VacateTime: time.Minute}, s, "/r/.campaign/c/htcondor/q.runs")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := QueueFile([]campaign.Job{{RunID: "ok-1"}, {RunID: "two words"}}); err == nil {
		t.Error("QueueFile accepted a run id with a space")
	}
}

func TestQuoteArgs(t *testing.T) {
	got := quoteArgs([]string{"campaign", "--dir", "/a b/c's", `say "hi"`, "--run-id=$(run_id)"})
	want := `"'campaign' '--dir' '/a b/c''s' 'say ""hi""' '--run-id=$(run_id)'"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseTerse(t *testing.T) {
	tests := []struct {
		in                   string
		cluster, first, last int
		bad                  bool
	}{
		{in: "12.0 - 12.2\n", cluster: 12, first: 0, last: 2},
		{in: "WARNING: something\n7.0 - 7.0\n", cluster: 7, first: 0, last: 0},
		{in: "12.0 - 13.2\n", bad: true},
		{in: "Submitting job(s).\n", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		c, f, l, err := parseTerse([]byte(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("parseTerse(%q) accepted it", tt.in)
			}
			continue
		}
		if err != nil || c != tt.cluster || f != tt.first || l != tt.last {
			t.Errorf("parseTerse(%q) = %d %d %d %v, want %d %d %d", tt.in, c, f, l, err, tt.cluster, tt.first, tt.last)
		}
	}
}

func TestLogsOrder(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "htcondor", "logs")
	os.MkdirAll(logs, 0o755)
	for _, n := range []string{"r1.10.err", "r1.10.out", "r1.9.out", "r1.9.err", "r10.9.out", "r1.x.out", "r1.9.log"} {
		os.WriteFile(filepath.Join(logs, n), nil, 0o644)
	}
	got, err := New(Settings{}).Logs(t.Context(), campaign.Ref{Campaign: "c", Dir: dir}, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	if want := "r1.9.out r1.9.err r1.10.out r1.10.err"; strings.Join(names, " ") != want {
		t.Errorf("Logs = %v, want %s", names, want)
	}
	if _, err := New(Settings{}).Logs(t.Context(), campaign.Ref{Dir: dir}, "../x"); err == nil {
		t.Error("Logs accepted a run id with a path")
	}
}

// Resubmissions leave several ads per run id: a live job wins over an
// ended one, then the newest cluster.proc.
func TestMergePrefersLiveThenNewest(t *testing.T) {
	code := func(n int) *int { return &n }
	history := []ad{
		{ClusterID: 3, ProcID: 0, RunID: "r1", JobStatus: statusCompleted, ExitCode: code(4)},
		{ClusterID: 5, ProcID: 0, RunID: "r1", JobStatus: statusCompleted, ExitCode: code(0)},
		{ClusterID: 3, ProcID: 1, RunID: "r2", JobStatus: statusRemoved, RemoveReason: "by hand"},
		{ClusterID: 4, ProcID: 0, RunID: "r3", JobStatus: statusCompleted, ExitBySignal: true, ExitSignal: 9},
	}
	queue := []ad{
		{ClusterID: 6, ProcID: 0, RunID: "r2", JobStatus: statusIdle, NumJobStarts: 2},
		{ClusterID: 6, ProcID: 1, RunID: "r4", JobStatus: statusRemoved, RemoveReason: "ptb campaign cancel"},
	}
	got := merge(queue, nil, history, nil)
	want := map[string]campaign.Status{
		"r1": {RunID: "r1", BackendID: "5.0", State: campaign.StateExited},
		"r2": {RunID: "r2", BackendID: "6.0", State: campaign.StatePending, Reason: "idle: waiting to run again", Restarts: 1},
		"r3": {RunID: "r3", BackendID: "4.0", State: campaign.StateFailed, Reason: "killed by signal 9"},
		"r4": {RunID: "r4", BackendID: "6.1", State: campaign.StateRunning, Reason: "leaving the queue: removed: ptb campaign cancel"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for _, s := range got {
		if s != want[s.RunID] {
			t.Errorf("got %+v, want %+v", s, want[s.RunID])
		}
	}
}

func TestCheckSaysWhatToDo(t *testing.T) {
	err := New(Settings{Bin: t.TempDir()}).Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "condor_q") || !strings.Contains(err.Error(), "condor-up.sh") {
		t.Fatalf("Check with no condor_q = %v", err)
	}
}

// condor_submit's complaint reaches the caller with the submit file.
func TestSubmitReportsCondorSubmitError(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "condor_submit"), []byte("#!/bin/sh\necho 'ERROR: on Line 9 of submit file: bad requirements' >&2\nexit 1\n"), 0o755)
	dir := filepath.Join(t.TempDir(), ".campaign", "c")
	os.MkdirAll(dir, 0o755)
	_, err := New(Settings{Bin: bin}).Submit(t.Context(), campaign.Submission{Campaign: "c", Dir: dir, Exe: "/bin/ptb", Jobs: []campaign.Job{{RunID: "a"}}})
	if err == nil || !strings.Contains(err.Error(), "Line 9 of submit file") || !strings.Contains(err.Error(), ".sub") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "htcondor", "logs")); err != nil {
		t.Errorf("the logs folder was not made: %v", err)
	}
}
