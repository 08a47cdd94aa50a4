package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/session"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

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
	st, err := x.dir.ReadSolveState()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return result.Stage{}, fmt.Errorf("read solve state: %w", err)
	}
	st.BudgetS = x.spec.Budget().Seconds()
	for i := range st.Segments {
		if g := &st.Segments[i]; g.End == nil {
			end := g.Heartbeat
			g.End, g.EndReason = &end, "harness_died"
			x.emit(runevents.Event{Type: runevents.SegmentEnded, Segment: g.N, EndReason: g.EndReason})
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
			if wait > left {
				wait = left
			}
			x.emit(runevents.Event{Type: runevents.Reprompt, Segment: seg.N, RemainingS: secondsOf(left), WaitS: secondsOf(wait)})
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
func (x *run) segment(ctx context.Context, st *rundir.SolveState, remaining time.Duration, kind, note string) (*rundir.Segment, error) {
	resumed := kind != "start"
	now := x.r.now()
	seg := rundir.Segment{N: len(st.Segments) + 1, Kind: kind, Start: now, Heartbeat: now, Deadline: now.Add(remaining), GPUs: slices.Clone(x.spec.GPUs)}
	fail := func(err error) (*rundir.Segment, error) {
		end := x.r.now()
		seg.End, seg.EndReason, seg.Error = &end, result.EndHarnessError, err.Error()
		st.Segments = append(st.Segments, seg)
		x.save(st)
		x.emit(runevents.Event{Type: runevents.SegmentEnded, Segment: seg.N, EndReason: seg.EndReason, Error: seg.Error})
		return nil, err
	}

	scaffold, err := x.r.Scaffold(x.scaffoldRequest())
	if err != nil {
		return fail(fmt.Errorf("agent %s: %w", x.spec.Agent, err))
	}
	promptText, err := os.ReadFile(x.dir.Path(rundir.PromptFile))
	if err != nil {
		return fail(fmt.Errorf("read prompt: %w", err))
	}
	ws, home := x.dir.Path(rundir.Workspace), x.dir.Path(rundir.Home)
	launch := agent.Launch{Prompt: string(promptText), Model: x.spec.AgentModel, Endpoint: x.spec.Endpoint}
	if resumed {
		launch.Continue, launch.Note = true, note
	}
	cfg := session.Config{
		Backend:   x.r.Sandbox,
		Scaffold:  scaffold,
		Launch:    launch,
		Workspace: ws,
		Home:      home,
		Tmp:       x.dir.Path(rundir.Tmp),
		Files:     []session.File{{Dir: ws, Name: "timer.sh", Data: []byte(TimerScript(seg.Deadline)), Perm: 0o755}},
		Install:   &session.Install{}, // found on the sandbox's PATH
		Env:       x.env(seg.Deadline),
		PassEnv:   x.spec.PassEnv,
		LookupEnv: x.r.lookupEnv,
		ReadOnly:  x.readOnly(),
		Hidden:    x.hidden(),
		Network:   x.spec.Network,
		GPUs:      x.spec.GPUs,
		Limits:    x.spec.SandboxLimits(),
		Deadline:  seg.Deadline,
		Grace:     x.spec.Grace,
		Log:       x.log,
	}
	if x.link != nil {
		// The agent CLI talks to the gateway's LLM route; the job's
		// endpoint is the gateway's upstream.
		cfg.Gateway = &session.Gateway{Link: x.link, Server: x.gw}
	}
	plan, err := session.Prepare(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	st.Secrets = plan.Command.Secrets

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

	sess, err := plan.Start(ctx, io.MultiWriter(rt, so), se)
	if err != nil {
		return fail(err)
	}
	defer sess.Destroy()
	seg.Handle = sess.Handle()
	st.Limits = nil
	for _, l := range sess.Limits() {
		st.Limits = append(st.Limits, result.Limit{Name: l.Name, Value: l.Value, Enforced: l.Enforced, How: l.How})
	}
	if len(x.spec.GPUs) > 0 && !slices.Equal(gpuIndices(st.GPUs), x.spec.GPUs) {
		st.GPUs = gpuInfo(ctx, x.spec.GPUs) // the devices of the latest segment
	}
	st.Segments = append(st.Segments, seg)
	cur := &st.Segments[len(st.Segments)-1]
	x.save(st)
	x.emit(runevents.Event{Type: runevents.SegmentStarted, Time: now, Segment: seg.N, Kind: kind, GPUs: seg.GPUs,
		BudgetS: st.BudgetS, RemainingS: secondsOf(remaining), Deadline: &seg.Deadline})
	x.log.Info("agent started", "segment", seg.N, "kind", kind, "remaining", remaining.Round(time.Second), "handle", seg.Handle.String())

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
				if x.r.now().Sub(lastProgress) >= HeartbeatEvent {
					lastProgress = x.r.now()
					x.emit(runevents.Event{Type: runevents.Heartbeat, Segment: seg.N, RemainingS: secondsOf(time.Until(seg.Deadline))})
				}
			}
		}
	}()

	ex, werr := sess.Wait(ctx)
	close(hbDone)
	hb.Wait() // no heartbeat may save while the segment is closed
	mu.Lock()
	defer mu.Unlock()
	end := x.r.now()
	cur.End, cur.Heartbeat = &end, end
	cur.EndReason = ex.Reason
	switch {
	case ex.Reason == session.ReasonLimit:
		// The sandbox ended the agent for a resource limit.
		cur.Limit = ex.Limit
		x.log.Info("agent stopped at a resource limit", "limit", ex.Limit)
		x.emit(runevents.Event{Type: runevents.LimitHit, Time: end, Segment: seg.N, Limit: ex.Limit})
	case ex.Reason == "":
		cur.EndReason, cur.Error = result.EndHarnessError, werr.Error()
	}
	cur.Signal = ex.Signal
	if ex.Signal == "" && werr == nil {
		code := ex.Code
		cur.ExitCode = &code
	}
	if err := x.save(st); err != nil {
		return nil, err
	}
	x.emit(runevents.Event{Type: runevents.SegmentEnded, Time: end, Segment: cur.N, EndReason: cur.EndReason, Limit: cur.Limit,
		ExitCode: cur.ExitCode, Signal: cur.Signal, Error: cur.Error})
	if ex.Reason == session.ReasonInterrupted {
		return nil, errors.New("interrupted; the agent was stopped and the solve will resume with the time left")
	}
	if cur.EndReason == result.EndHarnessError {
		return nil, fmt.Errorf("supervise agent: %s", cur.Error)
	}
	return cur, nil
}

func describe(g *rundir.Segment) string {
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

func (x *run) save(st *rundir.SolveState) error {
	return x.dir.WriteSolveState(st)
}

// DefaultPassEnv are host variables passed into the sandbox unless the job
// says otherwise: enough to find programs and print text, nothing secret.
var DefaultPassEnv = []string{"PATH", "LANG", "LC_ALL", "TZ"}

// env is the start of the sandbox's environment: an allowlist, never the
// host's environment as a whole. The session adds the gateway's part (if
// any), then the agent command's own variables, then what the job passes
// with --env.
func (x *run) env(deadline time.Time) []string {
	home := x.dir.Path(rundir.Home)
	e := session.Env{Lookup: x.r.lookupEnv}
	e.Pass(DefaultPassEnv...)
	if _, ok := e.Get("PATH"); !ok {
		e.Set("PATH", "/usr/local/bin:/usr/bin:/bin")
	}
	if _, ok := e.Get("LANG"); !ok {
		e.Set("LANG", "C.UTF-8")
	}
	e.Set("HOME", home)
	e.Set("USER", "agent")
	e.Set("SHELL", "/bin/bash")
	e.Set("TERM", "dumb")
	e.Set("TMPDIR", "/tmp")
	e.Set("HF_HOME", filepath.Join(home, ".cache", "huggingface"))
	e.Set("PTB_DEADLINE", strconv.FormatInt(deadline.Unix(), 10))
	e.Set("PTB_DEADLINE_RFC3339", deadline.UTC().Format(time.RFC3339))
	e.Set("PTB_RUN_ID", x.man.RunID)
	e.Set("PTB_TASK", x.spec.Benchmark)
	e.Set("PTB_BASE_MODEL", x.spec.BaseModel)
	e.Set("PTB_BIN", x.self())
	if len(x.spec.GPUs) > 0 && !x.r.Sandbox.Capabilities().Isolated {
		ids := make([]string, len(x.spec.GPUs))
		for i, g := range x.spec.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		e.Set("CUDA_VISIBLE_DEVICES", strings.Join(ids, ","))
	} else if len(x.spec.GPUs) == 0 {
		e.Set("CUDA_VISIBLE_DEVICES", "")
	}
	return e.List()
}

func (x *run) self() string {
	if x.r.Self != "" {
		return x.r.Self
	}
	exe, _ := os.Executable()
	return exe
}

// readOnly are host paths the sandbox needs that may sit under a hidden
// or private directory: the ptb executable and the job's own read-only
// paths. The session adds the agent CLI's installation.
func (x *run) readOnly() []string {
	var ro []string
	if s := x.self(); s != "" {
		ro = append(ro, s)
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
