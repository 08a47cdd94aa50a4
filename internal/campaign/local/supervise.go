package local

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// Supervisor timing.
const (
	tick = 200 * time.Millisecond
	// idleExit is how long a supervisor with no live job waits before it
	// exits (the next Submit starts another).
	idleExit = 3 * time.Second
	// maxLost bounds the restarts of a job whose attempts end without an
	// exit status (its keeper was killed).
	maxLost = 3
)

// Main is `ptb campaign supervise` (args after "supervise"):
//
//	--dir DIR                                  the supervisor of campaign DIR
//	--dir DIR --keep ID --attempt N -- ARGV... the keeper of one attempt
//
// It returns the process exit status.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the campaign directory")
	keep := fs.String("keep", "", "keep one attempt of this run id")
	attempt := fs.Int("attempt", 0, "the attempt number (with --keep)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || !filepath.IsAbs(*dir) {
		fmt.Fprintf(stderr, "ptb campaign supervise: --dir %q: want the absolute campaign directory\n", *dir)
		return 2
	}
	if *keep != "" {
		if fs.NArg() == 0 || *attempt < 1 {
			fmt.Fprintln(stderr, "ptb campaign supervise --keep: want --attempt N (N >= 1) and the job's command after --")
			return 2
		}
		return keepJob(*dir, *keep, *attempt, fs.Args(), stderr)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "ptb campaign supervise: %v\n", err)
		return 1
	}
	if err := supervise(ctx, *dir, self, stderr); err != nil {
		fmt.Fprintf(stderr, "ptb campaign supervise: %v\n", err)
		return 1
	}
	return 0
}

// supervise runs the campaign's queue until no job is live (or ctx ends:
// the jobs run on, and the next supervisor adopts them).
func supervise(ctx context.Context, dir, self string, log io.Writer) error {
	unlock, err := flock(filepath.Join(localDir(dir), SupervisorLock), false)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		fmt.Fprintf(log, "%s supervisor %d: another supervisor holds %s; exiting\n", stamp(), os.Getpid(), dir)
		return nil
	}
	if err != nil {
		return err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	fmt.Fprintf(log, "%s supervisor %d: supervising %s\n", stamp(), os.Getpid(), dir)
	t := time.NewTicker(tick)
	defer t.Stop()
	var idle time.Time
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(log, "%s supervisor %d: stopped; the running jobs go on\n", stamp(), os.Getpid())
			return nil
		case <-t.C:
		}
		live := false
		err := update(dir, func(st *State) error {
			st.Supervisor = os.Getpid()
			live = step(dir, self, st, log)
			if !live && !idle.IsZero() && time.Since(idle) > idleExit {
				// Released under the state lock: a Submit after this
				// finds no supervisor and starts one.
				st.Supervisor = 0
				unlock()
				locked = false
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(log, "%s supervisor %d: %v\n", stamp(), os.Getpid(), err)
		}
		if !locked {
			fmt.Fprintf(log, "%s supervisor %d: no job left; exiting\n", stamp(), os.Getpid())
			return nil
		}
		if live {
			idle = time.Time{}
		} else if idle.IsZero() {
			idle = time.Now()
		}
	}
}

// step moves the state on: ended attempts are recorded (restarted on
// exit 75), and queued jobs start while GPUs and slots are free. It
// reports whether any job is live.
func step(dir, self string, st *State, log io.Writer) bool {
	now := stamp()
	for _, j := range st.Jobs {
		if j.State != campaign.StateRunning {
			continue
		}
		code, ok := readExit(dir, j.RunID, j.Attempt)
		if !ok && groupAlive(j.PID) {
			continue
		}
		if !ok {
			code, ok = readExit(dir, j.RunID, j.Attempt) // written just before the group ended
		}
		j.Ended = now
		if !ok {
			if j.Cancelled {
				j.State, j.Reason = campaign.StateFailed, "cancelled; ended without an exit status"
				continue
			}
			j.Lost++
			if j.Lost > maxLost {
				j.State, j.Reason = campaign.StateFailed, fmt.Sprintf("lost %d times: its keeper ended without an exit status (killed?); see %s", j.Lost, LogPath(dir, j.RunID))
				continue
			}
			j.State, j.Reason, j.PID, j.Exit = campaign.StatePending, "lost: its keeper ended without an exit status; queued again", 0, nil
			j.Restarts++
			fmt.Fprintf(log, "%s %s attempt %d: %s\n", now, j.RunID, j.Attempt, j.Reason)
			continue
		}
		j.Exit = &code
		switch {
		case j.Cancelled:
			j.State, j.Reason = campaign.StateFailed, fmt.Sprintf("cancelled (exit %d)", code)
		case code == campaign.ExitRequeue:
			j.State, j.Reason, j.PID = campaign.StatePending, "requeued (exit 75): starts again when its GPUs are free", 0
			j.Restarts++
		case code == 0:
			j.State, j.Reason = campaign.StateExited, "exit 0"
		case code == campaign.ExitBusy:
			j.State, j.Reason = campaign.StateFailed, "exit 5: busy (another ptb holds the run's lock)"
		default:
			j.State, j.Reason = campaign.StateFailed, fmt.Sprintf("exit %d", code)
		}
		fmt.Fprintf(log, "%s %s attempt %d: %s\n", now, j.RunID, j.Attempt, j.Reason)
	}

	running, zero := 0, 0
	busy := map[int]bool{}
	for _, j := range st.Jobs {
		if j.State == campaign.StateRunning {
			running++
			if j.GPUsPerJob == 0 {
				zero++
			}
			for _, g := range j.GPUs {
				busy[g] = true
			}
		}
	}
	zeroCap := st.MaxParallel
	if zeroCap <= 0 {
		zeroCap = runtime.NumCPU()
	}
	live := false
	for _, j := range st.Jobs {
		if j.State.Live() {
			live = true
		}
		if j.State != campaign.StatePending || (st.MaxParallel > 0 && running >= st.MaxParallel) {
			continue
		}
		var gpus []int
		if j.GPUsPerJob == 0 {
			if zero >= zeroCap {
				continue
			}
		} else {
			for _, g := range st.Pool {
				if !busy[g] && len(gpus) < j.GPUsPerJob {
					gpus = append(gpus, g)
				}
			}
			if len(gpus) < j.GPUsPerJob {
				continue
			}
		}
		if err := start(dir, self, j, gpus); err != nil {
			j.State, j.Reason = campaign.StateFailed, err.Error()
			fmt.Fprintf(log, "%s %s: %v\n", now, j.RunID, err)
			continue
		}
		fmt.Fprintf(log, "%s %s attempt %d: started (pid %d, GPUs %v)\n", now, j.RunID, j.Attempt, j.PID, gpus)
		running++
		if j.GPUsPerJob == 0 {
			zero++
		}
		for _, g := range gpus {
			busy[g] = true
		}
	}
	return live
}

// start runs the next attempt of j under a keeper in a session of its own.
func start(dir, self string, j *JobState, gpus []int) error {
	list := make([]string, len(gpus))
	for i, g := range gpus {
		list[i] = strconv.Itoa(g)
	}
	sub := campaign.Submission{Exe: j.Exe, Dir: dir}
	argv := sub.ExecArgv("--run-id="+j.RunID, "exit", strings.Join(list, ","))
	attempt := j.Attempt + 1
	cmd := exec.Command(self, append([]string{"campaign", "supervise", "--dir", dir, "--keep", j.RunID, "--attempt", strconv.Itoa(attempt), "--"}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the keeper of %s: %w", j.RunID, err)
	}
	go cmd.Wait()
	j.PID, j.Attempt, j.GPUs, j.Exit = cmd.Process.Pid, attempt, slices.Clone(gpus), nil
	j.State, j.Started, j.Ended = campaign.StateRunning, stamp(), ""
	j.Reason = "running"
	if len(gpus) > 0 {
		j.Reason = "running on GPU " + strings.Join(list, ",")
	}
	return nil
}

// groupAlive reports whether any process of process group pgid lives.
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

type exitRecord struct {
	Code  int    `json:"code"`
	Ended string `json:"ended_at"`
}

func exitPath(dir, runID string, attempt int) string {
	return filepath.Join(localDir(dir), exitDir, fmt.Sprintf("%s.%d.json", runID, attempt))
}

func readExit(dir, runID string, attempt int) (int, bool) {
	b, err := os.ReadFile(exitPath(dir, runID, attempt))
	if err != nil {
		return 0, false
	}
	var r exitRecord
	if json.Unmarshal(b, &r) != nil {
		return 0, false
	}
	return r.Code, true
}

// keepJob runs one attempt (argv: ptb campaign exec ...) with its output
// appended to the job's log, and records its exit status. Signals to the
// group reach the job too; the keeper itself waits for it.
func keepJob(dir, runID string, attempt int, argv []string, stderr io.Writer) int {
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigc)
	go func() {
		for range sigc {
		}
	}()
	logf, err := os.OpenFile(LogPath(dir, runID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(stderr, "ptb campaign supervise --keep %s: %v\n", runID, err)
		logf = nil
	}
	out := io.Writer(io.Discard)
	if logf != nil {
		defer logf.Close()
		out = logf
	}
	fmt.Fprintf(out, "%s ptb campaign supervise: %s attempt %d: %s\n", stamp(), runID, attempt, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	if logf != nil {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		default:
			fmt.Fprintf(out, "%s ptb campaign supervise: start %s: %v\n", stamp(), argv[0], err)
			code = 127
		}
	}
	fmt.Fprintf(out, "%s ptb campaign supervise: %s attempt %d: exit %d\n", stamp(), runID, attempt, code)
	b, _ := json.Marshal(exitRecord{Code: code, Ended: stamp()})
	p := exitPath(dir, runID, attempt)
	os.MkdirAll(filepath.Dir(p), 0o755)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		os.Rename(tmp, p)
	}
	return 0
}

func stamp() string { return time.Now().UTC().Format(time.RFC3339Nano) }
