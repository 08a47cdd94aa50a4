// Package monitor samples the machine while a job runs: per GPU its
// utilisation, memory, temperature, power and compute processes (from
// nvidia-smi), the CPU load, RAM and the workspace's disk. Samples are JSON
// lines in the run directory's monitor.jsonl; Summarize turns them into the
// record's peak GPU memory, mean utilisation and GPU-idle fraction.
package monitor

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
)

// DefaultInterval is the time between samples.
const DefaultInterval = 60 * time.Second

// The nvidia-smi queries a sample runs (scripts/capture_nvidia_smi.sh prints
// their output on a GPU machine, for testdata/nvidia-smi).
var (
	GPUQuery  = []string{"--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw", "--format=csv,noheader,nounits"}
	AppsQuery = []string{"--query-compute-apps=gpu_uuid,pid,process_name,used_memory", "--format=csv,noheader,nounits"}
)

// IdleUtil is the utilisation (%) below which a GPU counts as idle.
const IdleUtil = 5

// Sample is one line of monitor.jsonl. A field nvidia-smi reports as
// "[N/A]" or "[Not Supported]" is null.
type Sample struct {
	Time      time.Time `json:"time"`
	Stage     string    `json:"stage,omitempty"` // the run's stage at that time
	IntervalS float64   `json:"interval_s"`
	GPUs      []GPU     `json:"gpus"`
	GPUProcs  []GPUProc `json:"gpu_processes,omitempty"`
	GPUError  string    `json:"gpu_error,omitempty"` // why there is no GPU data
	Load1     float64   `json:"load1"`
	Load5     float64   `json:"load5"`
	Load15    float64   `json:"load15"`
	CPUs      int       `json:"cpus"`
	MemTotal  float64   `json:"mem_total_mib"`
	MemAvail  float64   `json:"mem_available_mib"`
	DiskPath  string    `json:"disk_path,omitempty"`
	DiskTotal float64   `json:"disk_total_gib,omitempty"`
	DiskFree  float64   `json:"disk_free_gib,omitempty"`
}

// GPU is one GPU in a sample.
type GPU struct {
	Index    int      `json:"index"`
	UUID     string   `json:"uuid"`
	Name     string   `json:"name"`
	UtilPct  *float64 `json:"util_pct"`
	MemUsed  *float64 `json:"mem_used_mib"`
	MemTotal *float64 `json:"mem_total_mib"`
	TempC    *float64 `json:"temp_c"`
	PowerW   *float64 `json:"power_w"`
}

// GPUProc is a compute process on a GPU.
type GPUProc struct {
	GPUUUID string   `json:"gpu_uuid"`
	PID     int      `json:"pid"`
	Name    string   `json:"name"`
	MemUsed *float64 `json:"mem_used_mib"`
}

// Sampler takes samples.
type Sampler struct {
	SMI       string // nvidia-smi executable (default "nvidia-smi" on PATH)
	Workspace string // directory whose file system's free space is sampled
	Proc      string // /proc (tests: a directory with loadavg and meminfo)
}

// Sample takes one sample. It never fails: what could not be read is left
// zero, and a missing GPU reading says why in GPUError.
func (s Sampler) Sample(ctx context.Context) Sample {
	out := Sample{Time: time.Now().UTC(), CPUs: runtime.NumCPU(), GPUs: []GPU{}}
	smi := s.SMI
	if smi == "" {
		smi = "nvidia-smi"
	}
	if b, err := run(ctx, smi, GPUQuery...); err != nil {
		out.GPUError = err.Error()
	} else if out.GPUs, err = ParseGPUs(b); err != nil {
		out.GPUError = err.Error()
		out.GPUs = []GPU{}
	} else if b, err := run(ctx, smi, AppsQuery...); err == nil {
		out.GPUProcs, _ = ParseApps(b)
	}
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	if b, err := os.ReadFile(proc + "/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			out.Load1, _ = strconv.ParseFloat(f[0], 64)
			out.Load5, _ = strconv.ParseFloat(f[1], 64)
			out.Load15, _ = strconv.ParseFloat(f[2], 64)
		}
	}
	if b, err := os.ReadFile(proc + "/meminfo"); err == nil {
		out.MemTotal, out.MemAvail = parseMeminfo(b)
	}
	if s.Workspace != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.Workspace, &st); err == nil {
			out.DiskPath = s.Workspace
			out.DiskTotal = float64(st.Blocks) * float64(st.Bsize) / (1 << 30)
			out.DiskFree = float64(st.Bavail) * float64(st.Bsize) / (1 << 30)
		}
	}
	return out
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		if msg != "" {
			return nil, fmt.Errorf("%s: %v: %s", name, err, firstLine(msg))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// ParseGPUs parses the output of nvidia-smi GPUQuery.
func ParseGPUs(b []byte) ([]GPU, error) {
	rows, err := csvRows(b, 8)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi --query-gpu: %w", err)
	}
	out := []GPU{}
	for i, r := range rows {
		idx, err := strconv.Atoi(r[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi --query-gpu: line %d: index %q: %w", i+1, r[0], err)
		}
		out = append(out, GPU{Index: idx, UUID: r[1], Name: r[2], UtilPct: num(r[3]), MemUsed: num(r[4]), MemTotal: num(r[5]), TempC: num(r[6]), PowerW: num(r[7])})
	}
	return out, nil
}

// ParseApps parses the output of nvidia-smi AppsQuery.
func ParseApps(b []byte) ([]GPUProc, error) {
	rows, err := csvRows(b, 4)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi --query-compute-apps: %w", err)
	}
	var out []GPUProc
	for _, r := range rows {
		pid, _ := strconv.Atoi(r[1])
		out = append(out, GPUProc{GPUUUID: r[0], PID: pid, Name: r[2], MemUsed: num(r[3])})
	}
	return out, nil
}

// csvRows reads nvidia-smi's "a, b, c" lines, each with n fields.
func csvRows(b []byte, n int) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	var out [][]string
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != n {
			return nil, fmt.Errorf("line %d: %d fields, want %d: %q", line, len(rec), n, strings.Join(rec, ", "))
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		out = append(out, rec)
	}
}

// num parses a number, or nil for "[N/A]", "[Not Supported]" and the like.
func num(s string) *float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil
	}
	return &f
}

func parseMeminfo(b []byte) (total, avail float64) {
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "MemTotal:":
			total = kb / 1024
		case "MemAvailable:":
			avail = kb / 1024
		}
	}
	return total, avail
}

// Options configures Run.
type Options struct {
	Path     string        // monitor.jsonl
	Interval time.Duration // default DefaultInterval
	Sampler  Sampler
	Stage    func() string // the run's current stage, recorded in each sample
	OnSample func(Sample)  // called after each sample is written (the status line)
}

// Run samples at once and then every interval until ctx ends, appending
// each sample to o.Path. It returns the first write error, or nil when ctx
// ends.
func Run(ctx context.Context, o Options) error {
	iv := o.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	f, err := os.OpenFile(o.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open monitor file: %w", err)
	}
	defer f.Close()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		s := o.Sampler.Sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.IntervalS = iv.Seconds()
		if o.Stage != nil {
			s.Stage = o.Stage()
		}
		line, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("write monitor sample: %w", err)
		}
		if o.OnSample != nil {
			o.OnSample(s)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Summarize reads the samples at path taken during stage (all samples when
// none was taken during it) and summarises the GPUs in gpus (all GPUs when
// empty) for the record: peak memory, mean utilisation, and the fraction of
// samples in which every one of them was idle. It returns nil and no error
// when there is no sample.
func Summarize(path, stage string, gpus []int) (*result.Monitor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The monitor may be writing its next sample: a last line without its
	// newline is not complete yet.
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		b = b[:i+1]
	}
	var all, during []Sample
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var s Sample
		if err := json.Unmarshal(line, &s); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n+1, err)
		}
		all = append(all, s)
		if s.Stage == stage {
			during = append(during, s)
		}
	}
	if len(during) == 0 {
		during = all
	}
	if len(during) == 0 {
		return nil, nil
	}
	sum := &result.Monitor{Samples: len(during), IntervalS: during[0].IntervalS}
	var peak, utilSum float64
	utilN, withGPU, idle := 0, 0, 0
	var lastErr string
	for _, s := range during {
		mine := 0
		busy := false
		for _, g := range s.GPUs {
			if len(gpus) > 0 && !slices.Contains(gpus, g.Index) {
				continue
			}
			mine++
			if g.MemUsed != nil && *g.MemUsed > peak {
				peak = *g.MemUsed
			}
			if g.UtilPct != nil {
				utilSum += *g.UtilPct
				utilN++
				if *g.UtilPct >= IdleUtil {
					busy = true
				}
			}
		}
		if s.GPUError != "" {
			lastErr = s.GPUError
		}
		if mine > 0 {
			withGPU++
			if !busy {
				idle++
			}
		}
	}
	if withGPU == 0 {
		sum.Note = "no GPU data"
		if lastErr != "" {
			sum.Note += " (" + lastErr + ")"
		} else if len(gpus) > 0 {
			sum.Note += fmt.Sprintf(" for GPUs %v", gpus)
		}
		return sum, nil
	}
	sum.GPUMemPeakMiB = &peak
	if utilN > 0 {
		m := utilSum / float64(utilN)
		sum.GPUUtilMean = &m
	}
	fr := float64(idle) / float64(withGPU)
	sum.GPUIdleFraction = &fr
	return sum, nil
}
