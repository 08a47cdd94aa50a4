package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/monitor"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/trace"
)

// watcher runs beside a job: the system monitor (monitor.jsonl) and the
// solve's status line on stderr, redrawn every second on a terminal, a
// plain line per monitor sample otherwise. It follows the run through its
// events (the stage running, the solve segment's deadline and budget).
type watcher struct {
	w    io.Writer
	tty  bool
	dir  rundir.Dir
	spec job.Spec

	mu       sync.Mutex
	sample   *monitor.Sample
	tools    int
	usage    trace.Usage
	last     string
	drawn    bool
	lastLine string
	stage    string           // the stage running ("" between stages)
	seg      *runevents.Event // the running solve segment's segment_started
}

// watchRun starts the watcher; the returned function stops it and waits.
// The run's events go to the returned handler. interval 0 turns the
// monitor (and the plain lines) off.
func watchRun(ctx context.Context, e *env, dir rundir.Dir, spec job.Spec, interval time.Duration) (runevents.Handler, func()) {
	ctx, cancel := context.WithCancel(ctx)
	wt := &watcher{w: e.stderr, tty: isTerminalWriter(e.stderr), dir: dir, spec: spec}
	var wg sync.WaitGroup
	if interval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := monitor.Run(ctx, monitor.Options{
				Path: dir.Path(rundir.MonitorFile), Interval: interval,
				Sampler:  monitor.Sampler{Workspace: dir.Path(rundir.Workspace)},
				Stage:    wt.currentStage,
				OnSample: wt.onSample,
			})
			if err != nil {
				fmt.Fprintf(e.stderr, "ptb: warning: system monitor stopped: %v\n", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		wt.tailTrace(ctx)
	}()
	if wt.tty {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					wt.clear()
					return
				case <-t.C:
					wt.redraw()
				}
			}
		}()
	}
	return runevents.HandlerFunc(wt.runEvent), func() {
		cancel()
		wg.Wait()
	}
}

// runEvent follows the run: the stage running and the solve segment.
func (wt *watcher) runEvent(ev runevents.Event) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	switch ev.Type {
	case runevents.StageStarted:
		wt.stage = ev.Stage
	case runevents.StageEnded:
		wt.stage, wt.seg = "", nil
	case runevents.SegmentStarted:
		wt.seg = &ev
	}
	return nil
}

// currentStage is the stage running, or "".
func (wt *watcher) currentStage() string {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.stage
}

// lockedWriter serialises the writes of the pipeline's progress, its log
// and the watcher to one stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func isTerminalWriter(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (wt *watcher) onSample(s monitor.Sample) {
	wt.mu.Lock()
	wt.sample = &s
	wt.mu.Unlock()
	if !wt.tty && s.Stage == result.StageSolve {
		fmt.Fprintf(wt.w, "ptb: %s\n", wt.text(time.Now()))
	}
}

func (wt *watcher) redraw() {
	if wt.currentStage() != result.StageSolve {
		wt.clear()
		return
	}
	line := wt.text(time.Now())
	if len(line) > 160 {
		line = line[:157] + "..."
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	fmt.Fprintf(wt.w, "\r\033[K%s", line)
	wt.drawn = true
}

func (wt *watcher) clear() {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.drawn {
		fmt.Fprint(wt.w, "\r\033[K")
		wt.drawn = false
	}
}

// text is the status: time, agent activity, GPU use.
func (wt *watcher) text(now time.Time) string {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	parts := []string{"solve"}
	if seg := wt.seg; seg != nil && seg.Deadline != nil {
		left := time.Until(*seg.Deadline)
		if !now.IsZero() {
			left = seg.Deadline.Sub(now)
		}
		left = max(left, 0)
		budget := time.Duration(seg.BudgetS * float64(time.Second))
		parts[0] = fmt.Sprintf("solve %s elapsed, %s left", clock(budget-left), clock(left))
	}
	parts = append(parts, fmt.Sprintf("%d tool calls", wt.tools))
	if wt.usage.InputTokens+wt.usage.OutputTokens > 0 {
		parts = append(parts, fmt.Sprintf("%s in / %s out tokens", count(wt.usage.InputTokens), count(wt.usage.OutputTokens)))
	}
	if wt.last != "" {
		parts = append(parts, "last: "+wt.last)
	}
	if g := gpuText(wt.sample, wt.spec.GPUs); g != "" {
		parts = append(parts, g)
	}
	return strings.Join(parts, " · ")
}

// gpuText is the GPU part of the status line, from the latest sample.
func gpuText(s *monitor.Sample, gpus []int) string {
	if s == nil {
		return ""
	}
	var out []string
	for _, g := range s.GPUs {
		if len(gpus) > 0 && !slices.Contains(gpus, g.Index) {
			continue
		}
		t := fmt.Sprintf("GPU%d", g.Index)
		if g.UtilPct != nil {
			t += fmt.Sprintf(" %.0f%%", *g.UtilPct)
		}
		if g.MemUsed != nil && g.MemTotal != nil {
			t += fmt.Sprintf(" %.1f/%.1f GiB", *g.MemUsed/1024, *g.MemTotal/1024)
		}
		out = append(out, t)
	}
	return strings.Join(out, ", ")
}

// clock renders d as H:MM:SS.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// count renders n as 950, 12.3k, 4.5M.
func count(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// Event implements trace.Handler: it counts tool calls and tokens and
// keeps the last action.
func (wt *watcher) Event(ev *trace.Event) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	switch ev.Kind {
	case trace.KindToolCall:
		wt.tools++
		if ev.Tool != nil {
			wt.last = action(ev.Tool)
		}
	case trace.KindUsage:
		if ev.Usage != nil {
			wt.usage.Add(*ev.Usage)
		}
	}
	return nil
}

// NonJSON implements trace.Handler.
func (wt *watcher) NonJSON(int, []byte) error { return nil }

// action is a tool call in a few words: its name and command or path.
func action(t *trace.ToolCall) string {
	var in map[string]any
	json.Unmarshal(t.Input, &in)
	detail := ""
	for _, k := range []string{"command", "cmd", "file_path", "path", "pattern", "url"} {
		switch v := in[k].(type) {
		case string:
			detail = v
		case []any:
			var s []string
			for _, x := range v {
				s = append(s, fmt.Sprint(x))
			}
			detail = strings.Join(s, " ")
		}
		if detail != "" {
			break
		}
	}
	detail = strings.Join(strings.Fields(detail), " ")
	if len(detail) > 50 {
		detail = detail[:47] + "..."
	}
	if detail == "" {
		return t.Name
	}
	return t.Name + " " + detail
}

// tailTrace follows trace/agent.jsonl as it grows and feeds it to the
// trace decoder, until ctx ends. It reads what the harness itself wrote
// (the raw trace), at most a chunk at a time.
func (wt *watcher) tailTrace(ctx context.Context) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		agent := wt.spec.Agent
		trace.Stream(ctx, pr, agent, wt)
		io.Copy(io.Discard, pr)
	}()
	defer func() {
		pw.Close()
		<-done
	}()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 256<<10)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if f == nil {
			if g, err := os.Open(wt.dir.Path(rundir.TraceRaw)); err == nil {
				f = g
			}
		}
		for f != nil {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					return
				}
			}
			if errors.Is(err, io.EOF) || n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
