package monitor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func standIn(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "nvidia-smi", "nvidia-smi"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A sample from the stand-in nvidia-smi (captured output), a fake /proc
// and the real workspace file system.
func TestSampleFromStandIn(t *testing.T) {
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "loadavg"), []byte("3.52 2.10 1.05 4/1234 99999\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal:       2113425408 kB\nMemFree:        1500000000 kB\nMemAvailable:   1800000000 kB\n"), 0o644)
	ws := t.TempDir()
	s := Sampler{SMI: standIn(t), Workspace: ws, Proc: proc}.Sample(context.Background())
	if s.GPUError != "" || len(s.GPUs) != 2 {
		t.Fatalf("gpus %+v, error %q", s.GPUs, s.GPUError)
	}
	g0, g1 := s.GPUs[0], s.GPUs[1]
	if g0.Index != 0 || g0.Name != "NVIDIA H100 80GB HBM3" || *g0.UtilPct != 98 || *g0.MemUsed != 74213 || *g0.MemTotal != 81559 || *g0.TempC != 67 || *g0.PowerW != 598.31 {
		t.Errorf("gpu 0 = %+v", g0)
	}
	if g1.PowerW != nil || *g1.UtilPct != 0 {
		t.Errorf("gpu 1 power %v (want null for [N/A]), util %v", g1.PowerW, *g1.UtilPct)
	}
	if len(s.GPUProcs) != 1 || s.GPUProcs[0].PID != 2381447 || s.GPUProcs[0].Name != "/usr/bin/python3" || *s.GPUProcs[0].MemUsed != 74198 {
		t.Errorf("processes %+v", s.GPUProcs)
	}
	if s.Load1 != 3.52 || s.Load15 != 1.05 || s.MemTotal < 2063891 || s.MemTotal > 2063892 || s.MemAvail < 1757812 || s.MemAvail > 1757813 {
		t.Errorf("load %v/%v, mem %v/%v", s.Load1, s.Load15, s.MemTotal, s.MemAvail)
	}
	if s.DiskPath != ws || s.DiskTotal <= 0 || s.DiskFree <= 0 {
		t.Errorf("disk %q %v %v", s.DiskPath, s.DiskTotal, s.DiskFree)
	}
}

// A real capture (testdata/nvidia-smi-h200, see testdata/README.md): one
// H200 at full use by a python3 process in ptb's sandbox.
func TestSampleFromRealCapture(t *testing.T) {
	smi, err := filepath.Abs(filepath.Join("testdata", "nvidia-smi-h200", "nvidia-smi"))
	if err != nil {
		t.Fatal(err)
	}
	s := Sampler{SMI: smi, Workspace: t.TempDir(), Proc: t.TempDir()}.Sample(context.Background())
	if s.GPUError != "" || len(s.GPUs) != 1 {
		t.Fatalf("gpus %+v, error %q", s.GPUs, s.GPUError)
	}
	g := s.GPUs[0]
	if g.Index != 0 || g.UUID != "GPU-3da86024-3532-219c-fa86-2e99ec9b1705" || g.Name != "NVIDIA H200" ||
		*g.UtilPct != 100 || *g.MemUsed != 1395 || *g.MemTotal != 143771 || *g.TempC != 53 || *g.PowerW != 658.25 {
		t.Errorf("gpu 0 = %+v", g)
	}
	if len(s.GPUProcs) != 1 || s.GPUProcs[0].PID != 508 || s.GPUProcs[0].Name != "python3" || *s.GPUProcs[0].MemUsed != 1386 {
		t.Errorf("processes %+v", s.GPUProcs)
	}
}

// Without nvidia-smi, a sample says why it has no GPU data.
func TestSampleWithoutNvidiaSMI(t *testing.T) {
	s := Sampler{SMI: filepath.Join(t.TempDir(), "nvidia-smi")}.Sample(context.Background())
	if len(s.GPUs) != 0 || !strings.Contains(s.GPUError, "nvidia-smi") {
		t.Errorf("gpus %v, error %q", s.GPUs, s.GPUError)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"0, GPU-x, H100, 1, 2\n", "zero, GPU-x, H100, 1, 2, 3, 4, 5\n"} {
		if _, err := ParseGPUs([]byte(in)); err == nil {
			t.Errorf("ParseGPUs(%q) accepted", in)
		}
	}
}

// Run appends a sample at once and then one per interval, with the stage.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "samples.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{Path: path, Interval: 20 * time.Millisecond, Sampler: Sampler{SMI: standIn(t)},
			Stage: func() string { return "solve" },
			OnSample: func(Sample) {
				n++
				if n == 3 {
					cancel()
				}
			}})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d samples, want 3:\n%s", len(lines), b)
	}
	var s Sample
	if err := json.Unmarshal([]byte(lines[2]), &s); err != nil || s.Stage != "solve" || s.IntervalS != 0.02 || len(s.GPUs) != 2 {
		t.Errorf("sample %+v, %v", s, err)
	}
}

func f(x float64) *float64 { return &x }

// The summary over the solve's samples of the job's GPUs.
func TestSummarize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "samples.jsonl")
	samples := []Sample{
		{Stage: "prepare", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(0), MemUsed: f(99999)}}},
		{Stage: "solve", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(0), MemUsed: f(1)}, {Index: 1, UtilPct: f(100), MemUsed: f(80000)}}},
		{Stage: "solve", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(90), MemUsed: f(70000)}, {Index: 1, UtilPct: f(100), MemUsed: f(80000)}}},
		{Stage: "solve", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(2), MemUsed: f(60000)}, {Index: 1, UtilPct: f(100), MemUsed: f(80000)}}},
		{Stage: "solve", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(40), MemUsed: f(71000)}}},
		{Stage: "evaluate", IntervalS: 60, GPUs: []GPU{{Index: 0, UtilPct: f(100), MemUsed: f(79000)}}},
	}
	var b strings.Builder
	for _, s := range samples {
		j, _ := json.Marshal(s)
		b.Write(j)
		b.WriteByte('\n')
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	m, err := Summarize(path, "solve", []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if m.Samples != 4 || m.IntervalS != 60 || *m.GPUMemPeakMiB != 71000 || *m.GPUUtilMean != 33 || *m.GPUIdleFraction != 0.5 {
		t.Errorf("summary %+v peak %v mean %v idle %v", m, *m.GPUMemPeakMiB, *m.GPUUtilMean, *m.GPUIdleFraction)
	}
	none, err := Summarize(path, "solve", []int{7})
	if err != nil || none.GPUMemPeakMiB != nil || !strings.Contains(none.Note, "no GPU data for GPUs [7]") {
		t.Errorf("summary for an absent GPU: %+v, %v", none, err)
	}
	if m, err := Summarize(filepath.Join(t.TempDir(), "none.jsonl"), "solve", nil); m != nil || err != nil {
		t.Errorf("no file: %+v, %v", m, err)
	}
}

// The capture script runs exactly the queries the monitor parses.
func TestCaptureScriptMatchesQueries(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "capture_nvidia_smi.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range [][]string{GPUQuery, AppsQuery} {
		if line := "nvidia-smi " + strings.Join(q, " "); !strings.Contains(string(b), line) {
			t.Errorf("capture script lacks %q", line)
		}
	}
}
