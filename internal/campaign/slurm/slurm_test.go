package slurm

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// captureIDs are the run ids of the campaign in testdata/squeue-*.json, by
// index (see TestCaptureSqueue).
var captureIDs = map[int]string{0: "ok-a", 1: "fail-b", 2: "sleep-c", 3: "sleep-d", 4: "nap-e", 5: "ok-f", 6: "sleep-g"}

// TestParseSqueueCaptures reads squeue --json as Slurm 22.05's slurmctld
// wrote it for a real campaign, other jobs included.
func TestParseSqueueCaptures(t *testing.T) {
	type st struct {
		backend string
		state   campaign.State
		reason  string
		restart int
	}
	tests := []struct {
		file string
		want map[string]st
	}{
		{"squeue-pending.json", map[string]st{
			// Arrays not yet started are one record each: "0-4%3", and
			// "0-1%3" with index base 5.
			"ok-a": {"21_0", campaign.StatePending, "", 0}, "fail-b": {"21_1", campaign.StatePending, "", 0},
			"sleep-c": {"21_2", campaign.StatePending, "", 0}, "sleep-d": {"21_3", campaign.StatePending, "", 0},
			"nap-e": {"21_4", campaign.StatePending, "", 0},
			"ok-f":  {"22_0", campaign.StatePending, "", 0}, "sleep-g": {"22_1", campaign.StatePending, "", 0},
		}},
		{"squeue-running.json", map[string]st{
			"ok-a": {"21_0", campaign.StateExited, "", 0}, "fail-b": {"21_1", campaign.StateFailed, "FAILED, exit 3", 0},
			"sleep-c": {"21_2", campaign.StateRunning, "", 0}, "sleep-d": {"21_3", campaign.StateRunning, "", 0},
			"nap-e": {"21_4", campaign.StateRunning, "", 0},
			"ok-f":  {"22_0", campaign.StatePending, "Dependency", 0}, "sleep-g": {"22_1", campaign.StatePending, "Dependency", 0},
		}},
		{"squeue-requeued.json", map[string]st{
			"ok-a": {"21_0", campaign.StateExited, "", 0}, "fail-b": {"21_1", campaign.StateFailed, "FAILED, exit 3", 0},
			// scontrol requeue: pending again until its begin time, one restart.
			"sleep-c": {"21_2", campaign.StatePending, "BeginTime", 1},
			// scancel: TERM reached the batch shell, which exited 75.
			"sleep-d": {"21_3", campaign.StateFailed, "CANCELLED, exit 75", 0},
			"nap-e":   {"21_4", campaign.StateRunning, "", 0},
			"ok-f":    {"22_0", campaign.StatePending, "Dependency", 0}, "sleep-g": {"22_1", campaign.StatePending, "Dependency", 0},
		}},
		{"squeue-ended.json", map[string]st{
			"ok-a": {"21_0", campaign.StateExited, "", 0}, "fail-b": {"21_1", campaign.StateFailed, "FAILED, exit 3", 0},
			"sleep-c": {"21_2", campaign.StateFailed, "CANCELLED, exit 75", 1},
			"sleep-d": {"21_3", campaign.StateFailed, "CANCELLED, exit 75", 0},
			"nap-e":   {"21_4", campaign.StateExited, "", 0},
			"ok-f":    {"22_0", campaign.StateExited, "", 0},
			// sleep-g was cancelled while in the array's pending rest: squeue forgot it at once.
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ts, err := parseSqueue(b, "capture")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]st{}
			for _, s := range statuses(ts, captureIDs) {
				got[s.RunID] = st{s.BackendID, s.State, s.Reason, s.Restarts}
			}
			for id, w := range tt.want {
				if got[id] != w {
					t.Errorf("%s: got %+v, want %+v", id, got[id], w)
				}
			}
			for id := range got {
				if _, ok := tt.want[id]; !ok {
					t.Errorf("%s: reported %+v, want absent", id, got[id])
				}
			}
			// Another campaign's name sees none of these jobs.
			if other, _ := parseSqueue(b, "captur"); len(other) != 0 {
				t.Errorf("campaign captur sees %d tasks of campaign capture", len(other))
			}
		})
	}
}

func TestParseSqueueLaterReleases(t *testing.T) {
	// Slurm 23.02+ writes numbers as {set, number}, job_state as a list and
	// exit_code as an object.
	b := []byte(`{"errors":[],"jobs":[
	 {"job_id":7,"array_job_id":{"set":true,"number":5},"array_task_id":{"set":true,"number":2},"name":"ptb-x","comment":"ptb-index-base=0",
	  "job_state":["FAILED"],"state_reason":"NonZeroExitCode","exit_code":{"status":["EXITED"],"return_code":{"set":true,"number":4},"signal":{"id":{"set":false,"number":0}}}},
	 {"job_id":5,"array_job_id":{"set":true,"number":5},"array_task_id":{"set":false,"number":0},"array_task_string":"3,6-8:2%1","name":"ptb-x","comment":"ptb-index-base=0",
	  "job_state":["PENDING","REQUEUED"],"state_reason":"JobArrayTaskLimit"},
	 {"job_id":9,"array_job_id":{"set":true,"number":9},"array_task_id":{"set":true,"number":0},"name":"ptb-x","comment":"someone else's"}]}`)
	ts, err := parseSqueue(b, "x")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range ts {
		got = append(got, tk.backendID()+" "+string(tk.State)+" "+tk.Reason)
	}
	want := []string{"5_2 failed FAILED, exit 4", "5_3 pending JobArrayTaskLimit", "5_6 pending JobArrayTaskLimit", "5_8 pending JobArrayTaskLimit"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := parseSqueue([]byte(`{"errors":[{"error":"Unable to contact slurm controller","description":"connect failure"}],"jobs":[]}`), "x"); err == nil || !strings.Contains(err.Error(), "connect failure") {
		t.Errorf("squeue errors: got %v, want the description", err)
	}
}

func TestStatusesPreferLiveThenNewest(t *testing.T) {
	ids := map[int]string{0: "a", 1: "b"}
	ts := []task{
		{ArrayJobID: 10, TaskID: 0, Index: 0, State: campaign.StateFailed, Reason: "CANCELLED, exit 75"},
		{ArrayJobID: 12, TaskID: 0, Index: 0, State: campaign.StatePending},
		{ArrayJobID: 11, TaskID: 0, Index: 0, State: campaign.StateExited},
		{ArrayJobID: 10, TaskID: 1, Index: 1, State: campaign.StateFailed},
		{ArrayJobID: 12, TaskID: 1, Index: 1, State: campaign.StateExited},
		{ArrayJobID: 12, TaskID: 7, Index: 7, State: campaign.StateRunning}, // not in the index
	}
	got := statuses(ts, ids)
	want := []campaign.Status{{RunID: "a", BackendID: "12_0", State: campaign.StatePending}, {RunID: "b", BackendID: "12_1", State: campaign.StateExited}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestChunks(t *testing.T) {
	tests := []struct {
		indices  []int
		max      int
		parallel int
		want     []string // "base: --array"
	}{
		{[]int{3, 5, 9}, 1001, 2, []string{"0: 3,5,9%2"}},
		{[]int{0, 1, 2, 3, 7, 8}, 1001, 0, []string{"0: 0-3,7-8"}},
		// Indices at or above MaxArraySize cannot be task ids: windows from
		// their first index.
		{[]int{0, 1, 2, 3, 4, 5, 6}, 5, 3, []string{"0: 0-4%3", "5: 0-1%3"}},
		{[]int{12, 4, 20, 13, 30}, 5, 0, []string{"0: 4", "12: 0-1", "20: 0", "30: 0"}},
		{[]int{1000, 1002, 2001}, 1001, 0, []string{"0: 1000", "1002: 0,999"}},
	}
	for _, tt := range tests {
		var jobs []campaign.Job
		for _, i := range tt.indices {
			jobs = append(jobs, campaign.Job{Index: i, RunID: "r"})
		}
		var got []string
		for _, c := range chunks(jobs, tt.max) {
			for _, j := range c.Jobs {
				if id := j.Index - c.Base; id < 0 || id >= tt.max {
					t.Errorf("%v: index %d has task id %d outside [0,%d)", tt.indices, j.Index, id, tt.max)
				}
			}
			got = append(got, strings.Join([]string{strconv.Itoa(c.Base), arraySpec(c, tt.parallel)}, ": "))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("chunks(%v, %d): got %q, want %q", tt.indices, tt.max, got, tt.want)
		}
	}
}

func TestParseArray(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1-4%1", []int{1, 2, 3, 4}, false},
		{"3,5,9", []int{3, 5, 9}, false},
		{"0-8:4", []int{0, 4, 8}, false},
		{"7", []int{7}, false},
		{"4-2", nil, true},
		{"x", nil, true},
		{"0-99999999", nil, true},
	}
	for _, tt := range tests {
		got, err := parseArray(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parseArray(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestScriptGolden checks the batch scripts against testdata/*.sbatch
// (go test -run TestScriptGolden -update rewrites them).
func TestScriptGolden(t *testing.T) {
	sub := campaign.Submission{
		Campaign: "paper-3seed", Root: "/scratch/ptb", Dir: "/scratch/ptb/.campaign/paper-3seed", Exe: "/opt/ptb/bin/ptb",
		Resources:   campaign.Resources{GPUs: 1, CPUs: 8, MemoryMB: 64000, DiskMB: 200000, TimeLimit: 10*time.Hour + 30*time.Minute},
		MaxParallel: 4,
		PassEnv:     []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HOME"},
	}
	tests := []struct {
		name string
		set  Settings
		sub  func(campaign.Submission) campaign.Submission
		base int
		idx  []int
	}{
		{"gpu-array", Settings{GRES: "gpu:h100", SignalBefore: 300, Partition: "gpu", Account: "ml-lab", QOS: "normal", Export: []string{"PTB_SHARED"}, SbatchArgs: []string{"--constraint=h100", "--exclusive"}, TmpDisk: true}, nil, 0, []int{0, 1, 2, 5, 6}},
		{"chunk-base", Settings{GRES: "gpu", SignalBefore: 300}, nil, 1000, []int{1000, 1003}},
		{"cpu-short", Settings{GRES: "gpu", SignalBefore: 300}, func(s campaign.Submission) campaign.Submission {
			s.GPUs, s.MaxParallel, s.TimeLimit, s.PassEnv, s.DiskMB = 0, 0, 4*time.Minute, nil, 0
			s.Exe = "/home/a b/ptb's bin/ptb"
			return s
		}, 0, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sub
			if tt.sub != nil {
				s = tt.sub(s)
			}
			c := chunk{Base: tt.base}
			for _, i := range tt.idx {
				c.Jobs = append(c.Jobs, campaign.Job{Index: i, RunID: "r"})
			}
			got := (&Executor{set: tt.set}).script(s, c)
			path := filepath.Join("testdata", tt.name+".sbatch")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("script differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		yaml    string
		want    Settings
		wantErr string
	}{
		{"", Settings{GRES: "gpu", SignalBefore: 300}, ""},
		{"partition: gpu\naccount: lab\ngres: gpu:a100\nmax_array_size: 1001\ntimeout_signal_s: 600\nexport: [PTB_SHARED]\nsbatch_args: [--constraint=a100]\n",
			Settings{Partition: "gpu", Account: "lab", GRES: "gpu:a100", MaxArraySize: 1001, SignalBefore: 600, Export: []string{"PTB_SHARED"}, SbatchArgs: []string{"--constraint=a100"}}, ""},
		{"partition: gpu\nqueue: x\n", Settings{}, "line 2: slurm.queue: unknown setting"},
		{"partition: \"gpu\\n#SBATCH --uid=0\"\n", Settings{}, "line 1: slurm.partition"},
		{"gres: gpu:2\n", Settings{}, "line 1: slurm.gres: \"gpu:2\""},
		{"max_array_size: -1\n", Settings{}, "line 1: slurm.max_array_size"},
		{"timeout_signal_s: soon\n", Settings{}, "line 1: slurm.timeout_signal_s"},
		{"export: [ANTHROPIC_API_KEY=sk-123]\n", Settings{}, "names only"},
		{"sbatch_args:\n  - --exclusive\n  - --array=0-9\n", Settings{}, "line 3: slurm.sbatch_args: \"--array=0-9\": ptb sets --array itself"},
		{"sbatch_args: [-pdebug]\n", Settings{}, "ptb sets -p itself"},
		{"sbatch_args: [exclusive]\n", Settings{}, "want an option"},
		{"- partition\n", Settings{}, "want a mapping"},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		var n *yaml.Node
		if len(doc.Content) > 0 {
			n = doc.Content[0]
		}
		got, err := parseSettings(n)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got error %v, want one containing %q", tt.yaml, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.yaml, err)
			continue
		}
		if got.Partition != tt.want.Partition || got.Account != tt.want.Account || got.GRES != tt.want.GRES || got.MaxArraySize != tt.want.MaxArraySize ||
			got.SignalBefore != tt.want.SignalBefore || !slices.Equal(got.Export, tt.want.Export) || !slices.Equal(got.SbatchArgs, tt.want.SbatchArgs) {
			t.Errorf("%q: got %+v, want %+v", tt.yaml, got, tt.want)
		}
	}
}

func TestCheckSubmission(t *testing.T) {
	ok := campaign.Submission{Campaign: "c", Dir: "/r/.campaign/c", Exe: "/bin/ptb", Jobs: []campaign.Job{{Index: 0, RunID: "a"}}}
	tests := []struct {
		name    string
		edit    func(*campaign.Submission)
		wantErr string
	}{
		{"ok", func(*campaign.Submission) {}, ""},
		{"relative dir", func(s *campaign.Submission) { s.Dir = "out/.campaign/c" }, "not absolute"},
		{"percent in dir", func(s *campaign.Submission) { s.Dir = "/r/100%/.campaign/c" }, "--output pattern"},
		{"newline in dir", func(s *campaign.Submission) { s.Dir = "/r/x\n#SBATCH --uid=0" }, "--output pattern"},
		{"bad name", func(s *campaign.Submission) { s.Campaign = "My Campaign" }, "campaign name"},
		{"no jobs", func(s *campaign.Submission) { s.Jobs = nil }, "no jobs"},
		{"env value", func(s *campaign.Submission) { s.PassEnv = []string{"KEY=v"} }, "not a variable name"},
	}
	for _, tt := range tests {
		s := ok
		tt.edit(&s)
		err := checkSubmission(s)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestParseMaxArraySize(t *testing.T) {
	got, err := parseMaxArraySize([]byte("MaxArraySize            = 5\nMaxJobCount             = 10000\n"))
	if err != nil || got != 5 {
		t.Errorf("got %d, %v; want 5", got, err)
	}
	if _, err := parseMaxArraySize([]byte("MaxJobCount = 1\n")); err == nil {
		t.Error("no MaxArraySize: want an error")
	}
}

func TestSignalBefore(t *testing.T) {
	e := &Executor{set: Settings{SignalBefore: 300}}
	for _, tt := range []struct {
		limit time.Duration
		want  int
	}{{0, 300}, {10 * time.Hour, 300}, {4 * time.Minute, 120}, {time.Second, 1}} {
		if got := e.signalBefore(tt.limit); got != tt.want {
			t.Errorf("signalBefore(%s) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

func TestCheckWithoutSlurm(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := (&Executor{}).Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "sbatch is not on PATH") {
		t.Errorf("Check without Slurm's commands: %v, want one naming sbatch", err)
	}
}

// The worked example of docs/CAMPAIGN.md ("## Executor: slurm") is a valid
// campaign file, and the script shown is the one this executor writes for
// its first four cells.
func TestDocExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "CAMPAIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	sec := doc[strings.Index(doc, "## Executor: slurm"):]
	yamlAt := strings.Index(sec, "```yaml\nname: qwen-gsm8k")
	scriptAt := strings.Index(sec, "```bash\n#!/bin/bash")
	if yamlAt < 0 || scriptAt < 0 {
		t.Fatal("docs/CAMPAIGN.md's slurm section lacks the qwen-gsm8k example or its script")
	}
	block := func(s string) string {
		s = s[strings.Index(s, "\n")+1:]
		return s[:strings.Index(s, "```")]
	}
	f, err := campaign.Parse([]byte(block(sec[yamlAt:])), "/docs/study.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := f.NewExecutor()
	if err != nil {
		t.Fatal(err)
	}
	sub := campaign.Submission{Campaign: f.Name, Root: f.Out, Dir: f.Dir(), Exe: "/usr/local/bin/ptb",
		Resources: f.Resources, MaxParallel: f.Limits.MaxParallel, PassEnv: f.Secrets}
	c := chunk{Base: 0}
	for i := range 4 {
		c.Jobs = append(c.Jobs, campaign.Job{Index: i, RunID: "r"})
	}
	if got, want := ex.(*Executor).script(sub, c), block(sec[scriptAt:]); got != want {
		t.Errorf("the doc's script is not what the executor writes:\n--- executor\n%s\n--- doc\n%s", got, want)
	}
}
