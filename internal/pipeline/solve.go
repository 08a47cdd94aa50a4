package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// SolveState is trace/solve.json: every launch of the agent (segment) with
// its times, so a resumed solve knows how much of the budget is spent.
type SolveState struct {
	BudgetS  float64   `json:"budget_s"`
	Segments []Segment `json:"segments"`
	// Secrets are credential files the scaffold put into the sandbox.
	Secrets []string `json:"secrets,omitempty"`
	// Waited is the time spent waiting between reprompts; like the
	// original's wall-clock timer, it counts against the budget.
	Waited time.Duration `json:"waited_ns,omitempty"`
	// Limits are the resource limits of the last segment and how the
	// sandbox enforced each.
	Limits []result.Limit `json:"limits,omitempty"`
	// GPUs are the GPUs bound into the sandbox, with their UUIDs.
	GPUs []result.GPU `json:"gpus,omitempty"`
}

// Segment is one launch of the agent.
type Segment struct {
	N         int            `json:"n"`
	Kind      string         `json:"kind"` // start | resume | reprompt
	Start     time.Time      `json:"start"`
	Heartbeat time.Time      `json:"heartbeat"` // last time the harness saw it running
	End       *time.Time     `json:"end"`
	Deadline  time.Time      `json:"deadline"`
	EndReason string         `json:"end_reason"`      // exited | deadline | signal | limit | harness_error | interrupted | harness_died
	Limit     string         `json:"limit,omitempty"` // the limit that ended it (memory, pids, disk, files)
	ExitCode  *int           `json:"exit_code"`
	Signal    string         `json:"signal,omitempty"`
	Error     string         `json:"error,omitempty"`
	Handle    sandbox.Handle `json:"handle"`
	// GPUs are the device indices this segment ran with (assigned when the
	// run started; a resumed run may get others).
	GPUs []int `json:"gpus,omitempty"`
}

// Spent is the agent's time so far: closed segments count to their end, a
// segment cut short by a harness crash to its last heartbeat, and the waits
// between reprompts.
func (s *SolveState) Spent() time.Duration {
	d := s.Waited
	for _, g := range s.Segments {
		end := g.Heartbeat
		if g.End != nil {
			end = *g.End
		}
		if end.After(g.Start) {
			d += end.Sub(g.Start)
		}
	}
	return d
}

// Heartbeat is how often the solve state is saved while the agent runs; a
// harness crash loses at most this much of the accounting.
const Heartbeat = 2 * time.Second

// ContinuationNote is given to an agent relaunched after an interruption.
const ContinuationNote = "The run was interrupted and has been resumed in the same workspace. Continue the task from where you left off; use timer.sh to see the remaining time."

// RepromptNote is the original's continuation prompt for its reprompt
// variants (agents/*_reprompt/solve.sh).
func RepromptNote(left time.Duration) string {
	h := int(left / time.Hour)
	m := int((left % time.Hour) / time.Minute)
	return fmt.Sprintf("You still have %dh %dm remaining. Please continue improving your result and maximize performance.", h, m)
}

// ShortSession is how long a session must last for a reprompt to follow
// at once; after shorter ones the harness waits RepromptBackoff, doubling.
const ShortSession = 30 * time.Second

func (r *Runner) repromptBackoff() time.Duration {
	if r.RepromptBackoff > 0 {
		return r.RepromptBackoff
	}
	return time.Second
}

// MaxSegments bounds relaunches of one solve (resumes and reprompts), so an
// agent that exits at once cannot make the harness spin.
const MaxSegments = 100

func (x *run) solve(ctx context.Context) (result.Stage, error) {
	statePath := x.dir.Path(rundir.SolveState)
	var st SolveState
	if err := readJSON(statePath, &st); err != nil && !errors.Is(err, os.ErrNotExist) {
		return result.Stage{}, fmt.Errorf("read solve state: %w", err)
	}
	st.BudgetS = x.spec.Budget().Seconds()
	for i := range st.Segments {
		if g := &st.Segments[i]; g.End == nil {
			end := g.Heartbeat
			g.End, g.EndReason = &end, "harness_died"
			// Processes the dead harness could not take with it (with the
			// none backend, a child that left its process) go now, before
			// the agent is relaunched in the same workspace.
			if r, ok := x.r.Sandbox.(sandbox.Reaper); ok {
				r.Reap(g.Handle)
			}
		}
	}
	gw, link, err := x.startGateway(ctx)
	if err != nil {
		x.save(&st)
		return result.Stage{}, err
	}
	if gw != nil {
		x.gw, x.link = gw, link
		defer func() {
			if err := gw.Close(); err != nil {
				x.log.Warn("gateway close", "err", err)
			}
			x.gw, x.link = nil, nil
		}()
	}
	kind := "start"
	if len(st.Segments) > 0 {
		kind = "resume"
	}
	short := 0 // consecutive short sessions before a reprompt
	for {
		remaining := x.spec.Budget() - st.Spent()
		if remaining <= 0 {
			x.save(&st)
			if len(st.Segments) == 0 {
				return result.Stage{Status: result.StatusDone, Reason: "no time left in the budget"}, nil
			}
			break
		}
		if len(st.Segments) >= MaxSegments {
			x.save(&st)
			return result.Stage{}, fmt.Errorf("the agent was launched %d times; not relaunching again", MaxSegments)
		}
		note := ContinuationNote
		if kind == "reprompt" {
			note = RepromptNote(remaining)
		}
		seg, err := x.segment(ctx, &st, remaining, kind, note)
		if err != nil {
			return result.Stage{}, err
		}
		left := x.spec.Budget() - st.Spent()
		if seg.EndReason == result.EndExited && x.spec.Reprompt > 0 && left >= x.spec.Reprompt {
			// An agent that gives up at once is not relaunched in a tight
			// loop: after each short session the wait doubles.
			wait := time.Duration(0)
			if seg.End.Sub(seg.Start) < ShortSession {
				short++
				wait = min(x.r.repromptBackoff()<<(short-1), 60*time.Second)
			} else {
				short = 0
			}
			x.log.Info("agent exited early; reprompting", "left", left.Round(time.Second), "after", wait)
			x.r.progressf("ptb: solve: agent exited with %s left; reprompting\n", left.Round(time.Second))
			if wait > left {
				wait = left
			}
			waitStart := x.r.now()
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			st.Waited += x.r.now().Sub(waitStart)
			x.save(&st)
			if ctx.Err() != nil {
				return result.Stage{}, errors.New("interrupted; the solve will resume with the time left")
			}
			kind = "reprompt"
			continue
		}
		break
	}
	last := &st.Segments[len(st.Segments)-1]
	reason := describe(last)
	if n := len(st.Segments); n > 1 {
		reason += fmt.Sprintf(" (%d segments)", n)
	}
	return result.Stage{Status: result.StatusDone, Reason: reason}, nil
}

// segment launches the agent once and supervises it until it exits, the
// deadline passes or ctx ends. kind is start, resume or reprompt.
func (x *run) segment(ctx context.Context, st *SolveState, remaining time.Duration, kind, note string) (*Segment, error) {
	resumed := kind != "start"
	now := x.r.now()
	seg := Segment{N: len(st.Segments) + 1, Kind: kind, Start: now, Heartbeat: now, Deadline: now.Add(remaining), GPUs: slices.Clone(x.spec.GPUs)}
	fail := func(err error) (*Segment, error) {
		end := x.r.now()
		seg.End, seg.EndReason, seg.Error = &end, result.EndHarnessError, err.Error()
		st.Segments = append(st.Segments, seg)
		x.save(st)
		return nil, err
	}

	scaffold, err := x.r.Scaffold(x.spec)
	if err != nil {
		return fail(fmt.Errorf("agent %s: %w", x.spec.Agent, err))
	}
	promptText, err := os.ReadFile(x.dir.Path(PromptFile))
	if err != nil {
		return fail(fmt.Errorf("read prompt: %w", err))
	}
	ws, home := x.dir.Path(rundir.Workspace), x.dir.Path(rundir.Home)
	launch := agent.Launch{Prompt: string(promptText), Model: x.spec.AgentModel, Workspace: ws, Home: home, Endpoint: x.spec.Endpoint}
	gwBase := ""
	if x.link != nil {
		// The agent CLI talks to the gateway's LLM route; the job's
		// endpoint is the gateway's upstream.
		if gwBase, err = x.link.URL(x.r.Sandbox.Capabilities()); err != nil {
			return fail(err)
		}
		launch.Endpoint = x.gw.Endpoint(gwBase)
	}
	if resumed {
		launch.Continue, launch.Note = true, note
	}
	cmd, err := scaffold.Command(ctx, launch)
	if err != nil {
		return fail(fmt.Errorf("agent %s: %w", x.spec.Agent, err))
	}
	st.Secrets = cmd.Secrets
	if err := WriteFiles(home, cmd.HomeFiles, 0o600); err != nil {
		return fail(err)
	}
	if err := WriteFiles(ws, cmd.WorkspaceFiles, 0o600); err != nil {
		return fail(err)
	}
	if err := WriteFiles(ws, map[string][]byte{"timer.sh": []byte(TimerScript(seg.Deadline))}, 0o755); err != nil {
		return fail(err)
	}

	raw, err := os.OpenFile(x.dir.Path(rundir.TraceRaw), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer raw.Close()
	logf, err := os.OpenFile(x.dir.Path(rundir.TraceLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	if resumed {
		// A marker between segments; trace decoders keep unknown events.
		m, _ := json.Marshal(map[string]any{"type": "ptb.segment", "segment": seg.N, "reason": kind,
			"time": result.Now(now), "remaining_s": remaining.Seconds(), "note": note})
		raw.Write(append(m, '\n'))
	}
	bounds := x.spec.Bounds.WithDefaults()
	var already, logAlready int64
	if fi, err := raw.Stat(); err == nil {
		already = fi.Size()
	}
	if fi, err := logf.Stat(); err == nil {
		logAlready = fi.Size()
	}
	rt := newRawTrace(raw, seg.N, bounds.TraceMaxLine, bounds.TraceMaxBytes, already)
	ll := &lineLog{w: logf, now: x.r.now, maxLine: bounds.TraceMaxLine, maxBytes: bounds.TraceMaxBytes, written: logAlready}
	so, se := ll.stream("stdout"), ll.stream("stderr")
	defer func() {
		// After the streams below are flushed: the last lines, the kept
		// tail, and the list of cuts.
		rt.Close()
		ll.finish()
		x.recordTruncation(seg.N, rt.cuts, ll.cuts)
	}()
	defer so.Close()
	defer se.Close()

	var gwEnv map[string]string
	if x.gw != nil {
		gwEnv = x.gw.Env(gwBase)
	}
	env := x.env(cmd, seg.Deadline, gwEnv)
	spec := sandbox.Spec{
		Argv:      cmd.Argv,
		Env:       env,
		Dir:       ws,
		Workspace: ws,
		Home:      home,
		Tmp:       x.dir.Path(rundir.Tmp),
		ReadOnly:  x.readOnly(cmd.Argv, env),
		Hidden:    x.hidden(),
		Network:   x.spec.Network,
		GPUs:      x.spec.GPUs,
		Limits:    x.spec.SandboxLimits(),
		Stdout:    io.MultiWriter(rt, so),
		Stderr:    se,
	}
	if x.link != nil {
		// One mechanism for every backend: the command starts behind
		// ptb sandbox-init, which relays 127.0.0.1 to the gateway's socket.
		if spec, err = x.link.Apply(spec, x.r.Sandbox.Capabilities()); err != nil {
			return fail(err)
		}
	}
	proc, err := x.r.Sandbox.Start(ctx, spec)
	if err != nil {
		return fail(fmt.Errorf("start agent: %w", err))
	}
	defer proc.Destroy()
	seg.Handle = proc.Handle()
	st.Limits = nil
	if lp, ok := proc.(sandbox.Limited); ok {
		for _, l := range lp.Limits() {
			st.Limits = append(st.Limits, result.Limit{Name: l.Name, Value: l.Value, Enforced: l.Enforced, How: l.How})
		}
	} else {
		// The record says what was asked for and not enforced.
		how := "not enforced: the " + x.r.Sandbox.Capabilities().Name + " backend enforces no limits"
		l := spec.Limits
		for _, a := range []struct {
			name string
			v    float64
		}{{sandbox.LimitMemory, float64(l.MemoryBytes)}, {sandbox.LimitPids, float64(l.Pids)}, {sandbox.LimitCPU, l.CPUs},
			{sandbox.LimitTmp, float64(l.TmpBytes)}, {sandbox.LimitDisk, float64(l.DiskBytes)}, {sandbox.LimitFiles, float64(l.DiskFiles)}} {
			if a.v > 0 {
				st.Limits = append(st.Limits, result.Limit{Name: a.name, Value: a.v, How: how})
			}
		}
	}
	if len(x.spec.GPUs) > 0 && !slices.Equal(gpuIndices(st.GPUs), x.spec.GPUs) {
		st.GPUs = gpuInfo(ctx, x.spec.GPUs) // the devices of the latest segment
	}
	st.Segments = append(st.Segments, seg)
	cur := &st.Segments[len(st.Segments)-1]
	x.save(st)
	x.log.Info("agent started", "segment", seg.N, "kind", kind, "remaining", remaining.Round(time.Second), "pid", seg.Handle.PID)

	// Heartbeat: keep the accounting on disk, and show progress.
	var mu sync.Mutex
	hbDone := make(chan struct{})
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		t := time.NewTicker(Heartbeat)
		defer t.Stop()
		lastProgress := x.r.now()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
				mu.Lock()
				cur.Heartbeat = x.r.now()
				x.save(st)
				mu.Unlock()
				if x.r.now().Sub(lastProgress) >= time.Minute {
					lastProgress = x.r.now()
					x.r.progressf("ptb: solve: agent running, %s left\n", time.Until(seg.Deadline).Round(time.Second))
				}
			}
		}
	}()

	type waited struct {
		ex  sandbox.Exit
		err error
	}
	exitc := make(chan waited, 1)
	go func() {
		ex, err := proc.Wait(context.Background())
		exitc <- waited{ex, err}
	}()
	timer := time.NewTimer(time.Until(seg.Deadline))
	defer timer.Stop()
	var w waited
	reason := ""
	select {
	case w = <-exitc:
	case <-timer.C:
		reason = result.EndDeadline
		x.log.Info("deadline reached, stopping agent", "grace", x.spec.Grace)
		proc.Stop(x.spec.Grace)
		w = <-exitc
	case <-ctx.Done():
		reason = "interrupted"
		proc.Stop(x.spec.Grace)
		w = <-exitc
	}
	close(hbDone)
	hb.Wait() // no heartbeat may save while the segment is closed
	mu.Lock()
	defer mu.Unlock()
	end := x.r.now()
	cur.End, cur.Heartbeat = &end, end
	switch {
	case reason != "":
		cur.EndReason = reason
	case w.err == nil && w.ex.Limit != "":
		// The sandbox ended the agent for a resource limit.
		cur.EndReason, cur.Limit = result.EndLimit, w.ex.Limit
		x.log.Info("agent stopped at a resource limit", "limit", w.ex.Limit)
		x.r.progressf("ptb: solve: the agent hit its %s limit and was stopped\n", w.ex.Limit)
	case w.err != nil:
		cur.EndReason, cur.Error = result.EndHarnessError, w.err.Error()
	case w.ex.Signal != "":
		cur.EndReason = result.EndSignal
	default:
		cur.EndReason = result.EndExited
	}
	cur.Signal = w.ex.Signal
	if w.ex.Signal == "" && w.err == nil {
		code := w.ex.Code
		cur.ExitCode = &code
	}
	if err := x.save(st); err != nil {
		return nil, err
	}
	if reason == "interrupted" {
		return nil, errors.New("interrupted; the agent was stopped and the solve will resume with the time left")
	}
	if cur.EndReason == result.EndHarnessError {
		return nil, fmt.Errorf("supervise agent: %s", cur.Error)
	}
	return cur, nil
}

func describe(g *Segment) string {
	switch g.EndReason {
	case result.EndExited:
		return "agent exited with code " + strconv.Itoa(*g.ExitCode)
	case result.EndSignal:
		return "agent died of " + g.Signal
	case result.EndDeadline:
		return "agent stopped at the deadline"
	case result.EndLimit:
		return "agent stopped at its " + g.Limit + " limit"
	}
	return g.EndReason
}

func (x *run) save(st *SolveState) error {
	return x.dir.WriteJSON(rundir.SolveState, st)
}

// WriteFiles writes files (relative paths) under root, which the agent
// owns. The harness may run as root, so nothing the agent planted is
// followed: every path is resolved inside root (os.Root refuses a symlink
// that leads out), and an existing file or link at the path is replaced,
// not written through.
func WriteFiles(root string, files map[string][]byte, perm os.FileMode) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for rel, b := range files {
		rel = filepath.Clean(strings.TrimPrefix(rel, "~/"))
		if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("agent file %q escapes %s", rel, root)
		}
		if dir := filepath.Dir(rel); dir != "." {
			if err := r.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("write %s in %s: %w", rel, root, err)
			}
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace %s in %s: %w", rel, root, err)
		}
		f, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("write %s in %s: %w", rel, root, err)
		}
		_, werr := f.Write(b)
		if err := f.Close(); werr == nil {
			werr = err
		}
		if werr != nil {
			return fmt.Errorf("write %s in %s: %w", rel, root, werr)
		}
	}
	return nil
}

// DefaultPassEnv are host variables passed into the sandbox unless the job
// says otherwise: enough to find programs and print text, nothing secret.
var DefaultPassEnv = []string{"PATH", "LANG", "LC_ALL", "TZ"}

// env is the sandbox's complete environment: an allowlist, never the
// host's environment as a whole. gw is the gateway's part (nil: none);
// the agent command's own variables come after it, and what the job
// passes with --env last.
func (x *run) env(cmd agent.Command, deadline time.Time, gw map[string]string) []string {
	home := x.dir.Path(rundir.Home)
	vars := map[string]string{}
	order := []string{}
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, k := range DefaultPassEnv {
		if v, ok := x.r.lookupEnv(k); ok {
			set(k, v)
		}
	}
	if _, ok := vars["PATH"]; !ok {
		set("PATH", "/usr/local/bin:/usr/bin:/bin")
	}
	if _, ok := vars["LANG"]; !ok {
		set("LANG", "C.UTF-8")
	}
	set("HOME", home)
	set("USER", "agent")
	set("SHELL", "/bin/bash")
	set("TERM", "dumb")
	set("TMPDIR", "/tmp")
	set("HF_HOME", filepath.Join(home, ".cache", "huggingface"))
	set("PTB_DEADLINE", strconv.FormatInt(deadline.Unix(), 10))
	set("PTB_DEADLINE_RFC3339", deadline.UTC().Format(time.RFC3339))
	set("PTB_RUN_ID", x.man.RunID)
	set("PTB_TASK", x.spec.Benchmark)
	set("PTB_BASE_MODEL", x.spec.BaseModel)
	set("PTB_BIN", x.self())
	if len(x.spec.GPUs) > 0 && !x.r.Sandbox.Capabilities().Isolated {
		ids := make([]string, len(x.spec.GPUs))
		for i, g := range x.spec.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		set("CUDA_VISIBLE_DEVICES", strings.Join(ids, ","))
	} else if len(x.spec.GPUs) == 0 {
		set("CUDA_VISIBLE_DEVICES", "")
	}
	for _, k := range slices.Sorted(maps.Keys(gw)) {
		set(k, gw[k])
	}
	for _, kv := range cmd.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, p := range x.spec.PassEnv {
		k, v, hasValue := strings.Cut(p, "=")
		if !hasValue {
			var ok bool
			if v, ok = x.r.lookupEnv(k); !ok {
				continue
			}
		}
		set(k, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

func (x *run) self() string {
	if x.r.Self != "" {
		return x.r.Self
	}
	exe, _ := os.Executable()
	return exe
}

// readOnly are host paths the sandbox needs that may sit under a hidden
// or private directory: the ptb executable, the agent CLI's installation
// (found on the sandbox's PATH; for an npm package, the prefix holding
// node_modules), and the job's own read-only paths.
func (x *run) readOnly(argv, env []string) []string {
	var ro []string
	if s := x.self(); s != "" {
		ro = append(ro, s)
	}
	if len(argv) > 0 && argv[0] != x.self() {
		path := ""
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				path = v
			}
		}
		if bin, err := cliutil.LookPath(argv[0], path); err == nil {
			inst := cliutil.InstallPaths(bin)
			ro = append(ro, inst...)
			// An npm CLI runs on node, which need not live in a
			// system directory the sandbox shows.
			if slices.ContainsFunc(inst, func(p string) bool { return strings.HasSuffix(p, "/node_modules") }) {
				if node, err := cliutil.LookPath("node", path); err == nil {
					ro = append(ro, cliutil.InstallPaths(node)...)
				}
			}
		}
	}
	return append(ro, x.spec.ReadOnly...)
}

// hidden are the host paths the agent must not see: every run under the
// output root (this run's workspace and home are bound back in), and the
// harness's own state.
func (x *run) hidden() []string {
	h := append([]string{}, x.r.Hidden...)
	if x.spec.OutRoot != "" {
		h = append(h, x.spec.OutRoot)
	}
	// The run directory itself too, in case it is not under OutRoot.
	h = append(h, string(x.dir))
	return h
}

func gpuIndices(gs []result.GPU) []int {
	out := make([]int, len(gs))
	for i, g := range gs {
		out[i] = g.Index
	}
	return out
}
