package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/monitor"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/trace"
)

// A run samples the machine into monitor.jsonl (here from a stand-in
// nvidia-smi replaying captured output), records the GPU summary in
// result.json, and, on a non-terminal stderr, prints a plain status line
// per sample during the solve.
func TestRunMonitorAndStatus(t *testing.T) {
	smi, err := filepath.Abs(filepath.Join("..", "monitor", "testdata", "nvidia-smi"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", smi+":/usr/local/bin:/usr/bin:/bin")
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - run: \"echo training\"\n  - sleep: 1500ms\n  - model: final_model\nfinal: done\n"), 0o644)
	out := filepath.Join(dir, "runs")
	code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "none", "--gpus", "0",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--monitor-interval", "300ms", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r result.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	m := r.Monitor
	if m == nil || m.Samples < 2 || m.IntervalS != 0.3 || m.GPUMemPeakMiB == nil || *m.GPUMemPeakMiB != 74213 ||
		*m.GPUUtilMean != 98 || *m.GPUIdleFraction != 0 {
		t.Fatalf("monitor summary %+v", m)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*", rundir.MonitorFile))
	if len(runs) != 1 {
		t.Fatalf("monitor files %v", runs)
	}
	b, _ := os.ReadFile(runs[0])
	var s monitor.Sample
	json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &s)
	if len(s.GPUs) != 2 || len(s.GPUProcs) != 1 || s.MemTotal <= 0 || s.DiskTotal <= 0 || s.CPUs <= 0 {
		t.Errorf("first sample %+v", s)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("carriage returns on a non-terminal stderr: %q", stderr)
	}
	if !strings.Contains(stderr, "ptb: solve 0:00:") || !strings.Contains(stderr, "GPU0 98% 72.5/79.6 GiB") || strings.Contains(stderr, "GPU1") {
		t.Errorf("no plain status line with the job's GPU:\n%s", stderr)
	}
}

func TestStatusText(t *testing.T) {
	wt := &watcher{dir: "/nonexistent", spec: specWithGPUs(0)}
	wt.Event(&trace.Event{Kind: trace.KindToolCall, Tool: &trace.ToolCall{Name: "Bash", Input: json.RawMessage(`{"command":"python  train.py --epochs 3 --lr 2e-5 --output final_model --bf16 --gradient-checkpointing"}`)}})
	wt.Event(&trace.Event{Kind: trace.KindUsage, Usage: &trace.Usage{InputTokens: 1234567, OutputTokens: 45678}})
	u, mu, mt := 12.0, 2048.0, 81559.0
	wt.sample = &monitor.Sample{GPUs: []monitor.GPU{{Index: 0, UtilPct: &u, MemUsed: &mu, MemTotal: &mt}, {Index: 1}}}
	got := wt.text(time.Now())
	want := "solve · 1 tool calls · 1.2M in / 45.7k out tokens · last: Bash python train.py --epochs 3 --lr 2e-5 --output f... · GPU0 12% 2.0/79.6 GiB"
	if got != want {
		t.Errorf("status\n got %q\nwant %q", got, want)
	}
	if c := clock(10*time.Hour - 90*time.Second); c != "9:58:30" {
		t.Errorf("clock %q", c)
	}
}

func specWithGPUs(g ...int) (s job.Spec) {
	s.GPUs = g
	return s
}

// openPTY opens a pseudo-terminal pair: the status line's terminal side.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Skipf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Skipf("pty number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal the status line is redrawn in place (carriage return and
// erase-line frames) during the solve, and erased after it.
func TestStatusLineOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	var got bytes.Buffer
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - run: \"echo training\"\n  - sleep: 2500ms\n  - model: final_model\nfinal: done\n"), 0o644)
	var stdout bytes.Buffer
	code := Main([]string{"run", "--agent", "scripted", "--script", script, "--sandbox", "none",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--monitor-interval", "0", "--out", filepath.Join(dir, "runs")}, strings.NewReader(""), &stdout, slave)
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	out := got.String()
	mu.Unlock()
	if code != 0 {
		t.Fatalf("exit %d\n%q", code, out)
	}
	if !regexp.MustCompile(`\r\x1b\[Ksolve 0:00:0\d elapsed, 0:00:\d\d left · \d+ tool calls`).MatchString(out) {
		t.Errorf("no redrawn status line on the terminal:\n%q", out)
	}
	if strings.Contains(out, "ptb: solve 0:00") {
		t.Errorf("plain status lines on a terminal:\n%q", out)
	}
}

// The status line follows the run's events: the stage running, and the
// solve segment's deadline and budget.
func TestStatusFromEvents(t *testing.T) {
	wt := &watcher{dir: "/nonexistent"}
	h := runevents.HandlerFunc(wt.runEvent)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	deadline := now.Add(90 * time.Minute)
	steps := []struct {
		ev        runevents.Event
		wantStage string
		wantText  string
	}{
		{runevents.Event{Type: runevents.StageStarted, Stage: result.StagePrepare}, result.StagePrepare, "solve · 0 tool calls"},
		{runevents.Event{Type: runevents.StageEnded, Stage: result.StagePrepare}, "", "solve · 0 tool calls"},
		{runevents.Event{Type: runevents.StageStarted, Stage: result.StageSolve}, result.StageSolve, "solve · 0 tool calls"},
		{runevents.Event{Type: runevents.SegmentStarted, Segment: 2, BudgetS: 2 * 3600, Deadline: &deadline}, result.StageSolve, "solve 0:30:00 elapsed, 1:30:00 left · 0 tool calls"},
		{runevents.Event{Type: runevents.Heartbeat, Segment: 2}, result.StageSolve, "solve 0:30:00 elapsed, 1:30:00 left · 0 tool calls"},
		{runevents.Event{Type: runevents.StageEnded, Stage: result.StageSolve}, "", "solve · 0 tool calls"},
	}
	for i, s := range steps {
		if err := h.Event(s.ev); err != nil {
			t.Fatal(err)
		}
		if got := wt.currentStage(); got != s.wantStage {
			t.Errorf("step %d (%s): stage %q, want %q", i, s.ev.Type, got, s.wantStage)
		}
		if got := wt.text(now); got != s.wantText {
			t.Errorf("step %d (%s): text %q, want %q", i, s.ev.Type, got, s.wantText)
		}
	}
}

// ptb run records the run's events in RUN_DIR/events.jsonl.
func TestRunWritesEvents(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	out := filepath.Join(dir, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "none",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--monitor-interval", "0", "--out", out, "--run-id", "r1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []string
	err := runevents.ReadFile(filepath.Join(out, "r1", rundir.EventsFile), func(ev runevents.Event, _ int, lineErr error) error {
		if lineErr != nil {
			return lineErr
		}
		got = append(got, string(ev.Type)+" "+ev.Stage)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "stage_started prepare,stage_ended prepare,stage_started solve,segment_started ,segment_ended ,stage_ended solve," +
		"stage_started collect,stage_ended collect,stage_started audit,verdict ,stage_ended audit,stage_started evaluate,stage_ended evaluate,result_recorded "
	if strings.Join(got, ",") != want {
		t.Errorf("events\n got %s\nwant %s", strings.Join(got, ","), want)
	}
}
