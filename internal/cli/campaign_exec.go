package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/local"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/rundir"
)

type campaignExecFlags struct {
	dir, runID, preempt, gpus string
	index                     int
}

// newCampaignExecCmd is `ptb campaign exec`, the command every allocation
// runs (campaign.Submission.ExecArgv).
func newCampaignExecCmd(e *env) *cobra.Command {
	var f campaignExecFlags
	c := &cobra.Command{
		Use:    "exec --dir DIR (--index=N | --run-id=ID) --preempt exit|slurm [--gpus LIST|env:VAR]",
		Hidden: true,
		Short:  "Run one campaign job inside its allocation",
		Long: `Run one campaign job inside the allocation a scheduler gave it: find the job
in DIR/index.jsonl (by --index or --run-id) and run
  ptb run --run-id ID --out ROOT <the cell's arguments> [--gpus ...]
(a baseline: ptb eval --out ROOT/ID <its arguments> --gpus ...) as a child. TERM or HUP (a preemption) and USR1 (the allocation's time limit
is near, as Slurm's --signal=B:USR1@300 sends) stop the run cleanly: the child
gets one TERM, saves its solve state and exits, and the run resumes with the
time that was left when it starts again. The stop is counted in
DIR/requeues/ID.json (preemptions and timeouts apart, each capped by
DIR/exec.json), then the job is requeued:
  --preempt exit    exit 75 (HTCondor's checkpoint_exit_code, a Kubernetes
                    podFailurePolicy, the local supervisor's restart)
  --preempt slurm   scontrol requeue $SLURM_ARRAY_JOB_ID_$SLURM_ARRAY_TASK_ID
                    (or $SLURM_JOB_ID), then exit 75
Past a cap the record says which (gave_up) and exec exits 1.

--gpus is a list (0,1) or env:VAR, the devices the scheduler assigned in VAR
(e.g. env:CUDA_VISIBLE_DEVICES); they are passed to ptb run for this start.

Exit codes: ptb run's (0-4; 5 busy: the run is running elsewhere), 75 requeue,
1 a requeue cap was passed or exec failed, 2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("index") == (f.runID != "") {
				return usagef("campaign exec: give exactly one of --index=N and --run-id=ID")
			}
			if !cmd.Flags().Changed("index") {
				f.index = -1
			}
			return runCampaignExec(e, f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.dir, "dir", "", "the campaign directory, ROOT/.campaign/NAME")
	fl.IntVar(&f.index, "index", 0, "the job's index in DIR/index.jsonl")
	fl.StringVar(&f.runID, "run-id", "", "the job's run id")
	fl.StringVar(&f.preempt, "preempt", "exit", "how a stopped job is requeued: exit (exit 75) or slurm (scontrol requeue, then exit 75)")
	fl.StringVar(&f.gpus, "gpus", "", "devices for this start: a list (0,1), env:VAR (indices, CUDAn or GPU UUIDs, as the scheduler set them), or auto (every GPU visible here)")
	return c
}

// execStopGrace is how long exec waits for a stopped ptb run to end
// before it kills its process group: ptb run stops its agent within the
// job's grace (30 s by default) and saves the solve state.
const execStopGrace = 2 * time.Minute

// stopGrace is execStopGrace plus the run's own grace (job.json), when
// longer than the default.
func stopGrace(root, runID string) time.Duration {
	spec, err := pipeline.LoadSpec(rundir.Dir(filepath.Join(root, runID)))
	if err != nil || spec.Grace <= job.DefaultGrace {
		return execStopGrace
	}
	return execStopGrace + spec.Grace - job.DefaultGrace
}

// reservedRunArgs are the ptb run flags that exec sets itself.
var reservedRunArgs = []string{"--run-id", "--out", "--gpus", "--resume", "--redo"}

func runCampaignExec(e *env, f campaignExecFlags) error {
	if f.dir == "" {
		return usagef("campaign exec: --dir is required (the campaign directory, ROOT/.campaign/NAME)")
	}
	if f.preempt != "exit" && f.preempt != "slurm" {
		return usagef("campaign exec: --preempt %q: want exit or slurm", f.preempt)
	}
	entries, err := campaign.ReadIndex(f.dir)
	if err != nil {
		return fmt.Errorf("campaign exec: %w", err)
	}
	entry, ok := campaign.Find(entries, f.index, f.runID)
	if !ok {
		return usagef("campaign exec: no job with index %d / run id %q in %s/%s (%d jobs); was the index moved?", f.index, f.runID, f.dir, campaign.IndexFile, len(entries))
	}
	for _, a := range entry.Args {
		name, _, _ := strings.Cut(a, "=")
		if slices.Contains(reservedRunArgs, name) {
			return usagef("campaign exec: job %s (index %d) has %s in its arguments; exec sets it (fix %s)", entry.RunID, entry.Index, name, campaign.IndexFile)
		}
	}
	settings, err := campaign.ExecSettingsOrDefault(f.dir)
	if err != nil {
		return fmt.Errorf("campaign exec: %w", err)
	}
	gpus, err := execGPUs(f.gpus)
	if err != nil {
		return err
	}
	// ptb run --run-id for a cell, ptb eval --out ROOT/ID for a baseline.
	argv := entry.ChildArgs(campaign.Root(f.dir), gpus)

	// Signals are taken before the child exists: a stop that comes while it
	// starts is still passed on.
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigc)

	child := exec.Command(selfPath(), argv...)
	child.Stdout, child.Stderr = e.stdout, e.stderr
	child.Env = append(os.Environ(), ExecChildEnv+"=1")
	// Its own process group: a terminal's or a group's signal reaches it
	// only through exec (once); and it stops cleanly if exec dies.
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(e.stderr, "ptb campaign exec: job %d %s: ptb %s\n", entry.Index, entry.RunID, strings.Join(argv, " "))
	if err := child.Start(); err != nil {
		return fmt.Errorf("campaign exec: start ptb run: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- child.Wait() }()

	var stop campaign.Stop
	var stopSig string
	var hard <-chan time.Time // after a stop: when a child that has not ended is killed
	for running := true; running; {
		select {
		case <-hard:
			fmt.Fprintf(e.stderr, "ptb campaign exec: %s did not stop within %s of the stop; killing it (its run resumes from the last saved state)\n", entry.RunID, stopGrace(campaign.Root(f.dir), entry.RunID))
			syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
			hard = nil
		case s := <-sigc:
			sig := s.(syscall.Signal)
			name := unix.SignalName(sig)
			if stop != 0 {
				fmt.Fprintf(e.stderr, "ptb campaign exec: %s: already stopping %s\n", name, entry.RunID)
				continue
			}
			stop, stopSig = campaign.StopPreempt, name
			if sig == syscall.SIGUSR1 {
				stop = campaign.StopTimeout
			}
			fmt.Fprintf(e.stderr, "ptb campaign exec: %s: stopping %s cleanly (%s)\n", name, entry.RunID, stopWord(stop))
			child.Process.Signal(syscall.SIGTERM)
			hard = time.After(stopGrace(campaign.Root(f.dir), entry.RunID))
		case <-waited:
			running = false
		}
	}
	code := child.ProcessState.ExitCode()
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if stop == 0 || finalRunCode(code) {
		// Not stopped, or the run ended (or was not ours) before the stop
		// took: ptb run's own outcome.
		return codeErr(code)
	}
	rq, err := campaign.ReadRequeues(f.dir, entry.RunID)
	if err != nil {
		fmt.Fprintf(e.stderr, "ptb campaign exec: %v; counting from zero\n", err)
		rq = campaign.Requeues{}
	}
	again := rq.Count(settings, stop, stopSig, time.Now())
	if err := campaign.WriteRequeues(f.dir, entry.RunID, rq); err != nil {
		fmt.Fprintf(e.stderr, "ptb campaign exec: %v\n", err)
	}
	if !again {
		fmt.Fprintf(e.stderr, "ptb campaign exec: %s was stopped %d time(s) by preemption and %d by its time limit; %s passed (%s), not requeueing; the run resumes where it stopped with: ptb run --run-id %s --out %s ...\n",
			entry.RunID, rq.Preemptions, rq.Timeouts, rq.GaveUp, campaign.ExecFile, entry.RunID, campaign.Root(f.dir))
		return exitCode(1)
	}
	if f.preempt == "slurm" {
		if err := slurmRequeue(e); err != nil {
			fmt.Fprintf(e.stderr, "ptb campaign exec: %v\n", err)
		}
	}
	fmt.Fprintf(e.stderr, "ptb campaign exec: %s stopped cleanly; requeue (exit %d)\n", entry.RunID, campaign.ExitRequeue)
	return exitCode(campaign.ExitRequeue)
}

func stopWord(s campaign.Stop) string {
	if s == campaign.StopTimeout {
		return "time limit"
	}
	return "preemption"
}

// finalRunCode: ptb run ended on its own (finished, usage, busy), so a
// stop that came meanwhile needs no requeue.
func finalRunCode(code int) bool {
	switch code {
	case 0, 2, exitStageFailed, exitNoFinalModel, campaign.ExitBusy:
		return true
	}
	return false
}

func codeErr(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// execGPUs resolves --gpus: a list as is, env:VAR from the environment.
func execGPUs(s string) (string, error) {
	v := s
	if name, ok := strings.CutPrefix(s, "env:"); ok {
		if name == "" {
			return "", usagef("campaign exec: --gpus env:VAR needs a variable name (e.g. env:CUDA_VISIBLE_DEVICES)")
		}
		v = os.Getenv(name)
		if v == "NoDevFiles" { // what some schedulers set for "no devices"
			v = ""
		}
	}
	if s == "auto" {
		// The device files, not nvidia-smi: in a container nvidia-smi
		// numbers the GPUs it was given from 0, while /dev/nvidiaN keep the
		// host's numbers, which the sandbox binds.
		gpus, err := local.DetectGPUs(context.Background(), "", "/dev")
		if err != nil {
			return "", fmt.Errorf("campaign exec: --gpus auto: %w", err)
		}
		return joinInts(gpus), nil
	}
	idx, err := gpuIndices(v, smiList)
	if err != nil {
		return "", usagef("campaign exec: --gpus %s: %v", s, err)
	}
	return idx, nil
}

// smiList is `nvidia-smi -L`'s output.
func smiList() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "nvidia-smi", "-L").Output()
	return string(b), err
}

var smiUUIDLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^GPU (\d+):.*\(UUID: ((?:GPU|MIG)-[0-9A-Za-z-]+)\)`) })

// gpuIndices turns the devices a scheduler names into GPU indices: plain
// indices as they are, CUDAn (HTCondor's -by-index names) as n, and UUIDs
// or their prefixes (HTCondor's default GPU-xxxxxxxx names, the device
// plugin's NVIDIA_VISIBLE_DEVICES) through `nvidia-smi -L`.
func gpuIndices(v string, smi func() (string, error)) (string, error) {
	var out []string
	var listing string
	for _, tok := range strings.Split(v, ",") {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "":
			continue
		case strings.Trim(tok, "0123456789") == "":
			out = append(out, tok)
			continue
		case strings.HasPrefix(tok, "CUDA") && len(tok) > 4 && strings.Trim(tok[4:], "0123456789") == "":
			out = append(out, tok[4:])
			continue
		case !strings.HasPrefix(tok, "GPU-") && !strings.HasPrefix(tok, "MIG-"):
			return "", fmt.Errorf("%q is not a GPU index, CUDAn name or GPU UUID (want e.g. 0,1)", tok)
		}
		if listing == "" {
			l, err := smi()
			if err != nil {
				return "", fmt.Errorf("%s is a GPU UUID, and nvidia-smi -L, which maps it to an index, failed: %v", tok, err)
			}
			listing = l
		}
		found := ""
		for _, line := range strings.Split(listing, "\n") {
			if m := smiUUIDLine().FindStringSubmatch(strings.TrimSpace(line)); m != nil && strings.HasPrefix(m[2], tok) {
				found = m[1]
				break
			}
		}
		if found == "" {
			return "", fmt.Errorf("no GPU that nvidia-smi -L lists has the UUID %s", tok)
		}
		out = append(out, found)
	}
	return strings.Join(out, ","), nil
}

// slurmRequeue puts the job (or array task) back in the queue.
func slurmRequeue(e *env) error {
	id := os.Getenv("SLURM_JOB_ID")
	if a, t := os.Getenv("SLURM_ARRAY_JOB_ID"), os.Getenv("SLURM_ARRAY_TASK_ID"); a != "" && t != "" {
		id = a + "_" + t
	}
	if id == "" {
		return errors.New("--preempt slurm: SLURM_JOB_ID is not set (is this a Slurm allocation?); not requeued")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "scontrol", "requeue", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("scontrol requeue %s: %v: %s", id, err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(e.stderr, "ptb campaign exec: scontrol requeue %s\n", id)
	return nil
}
