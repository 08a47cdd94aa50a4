package htcondor

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// Attributes the executor puts on every job ad. The cluster (factory) ad of
// a late-materialized submission carries the first item's PtbRunId: never
// select or remove a cluster by it.
const (
	AttrCampaign  = "PtbCampaign"
	AttrRunID     = "PtbRunId"
	AttrQueueFile = "PtbQueueFile" // the queue file of the submission: run id i is proc i
)

// runIDRe is what a run id may be to stand as one item of `queue run_id
// from FILE` and inside a quoted ClassAd string.
var runIDRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+@=-]*$`) })

// checkPath refuses a path the submit language cannot carry verbatim: a
// "$" starts a macro, a newline ends the command, and a quote ends the
// ClassAd string or the arguments.
func checkPath(what, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%s %q is not an absolute path", what, p)
	}
	if strings.ContainsAny(p, "$\n\r\"'#") {
		return fmt.Errorf("%s %q holds a character a submit description cannot carry ($, quote, # or newline): move it", what, p)
	}
	return nil
}

// quoteArgs writes argv in the new syntax of the submit command
// `arguments`: the whole in double quotes, each argument in single quotes
// (a single quote doubled), so spaces survive. Macros ($(run_id)) expand.
func quoteArgs(argv []string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		a = strings.ReplaceAll(a, `"`, `""`)
		b.WriteString(strings.ReplaceAll(a, `'`, `''`))
		b.WriteByte('\'')
	}
	b.WriteByte('"')
	return b.String()
}

// Description renders the submit description of sub: one cluster whose
// procs are the lines of queueFile (one run id a line, proc i = line i).
func Description(s Settings, sub campaign.Submission, queueFile string) (string, error) {
	for _, c := range [][2]string{{"ptb binary", sub.Exe}, {"campaign directory", sub.Dir}, {"queue file", queueFile}} {
		if err := checkPath(c[0], c[1]); err != nil {
			return "", err
		}
	}
	gpus := ""
	if sub.GPUs > 0 {
		gpus = "env:CUDA_VISIBLE_DEVICES"
	}
	argv := sub.ExecArgv("--run-id=$(run_id)", "exit", gpus)
	logs := filepath.Join(sub.Dir, "htcondor", "logs")
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	fmt.Fprintf(&b, "# ptb campaign %s: written by the htcondor executor; one proc per line of the queue file.\n", sub.Campaign)
	w("universe", "vanilla")
	w("batch_name", "ptb-"+sub.Campaign)
	w("executable", argv[0])
	w("arguments", quoteArgs(argv[1:]))
	w("initialdir", sub.Dir)
	w("should_transfer_files", "NO")
	w("output", filepath.Join(logs, "$(run_id).$(Cluster).out"))
	w("error", filepath.Join(logs, "$(run_id).$(Cluster).err"))
	w("log", filepath.Join(sub.Dir, "htcondor", "events.log"))
	w("+"+AttrCampaign, `"`+sub.Campaign+`"`)
	w("+"+AttrRunID, `"$(run_id)"`)
	w("+"+AttrQueueFile, `"`+queueFile+`"`)
	// A preempted or removed job gets SIGTERM: ptb campaign exec stops the
	// run cleanly and exits 75; 75 is a checkpoint, so HTCondor runs the
	// job again and ptb resumes the run with the time it had left.
	w("kill_sig", "SIGTERM")
	w("want_graceful_removal", "True")
	w("job_max_vacate_time", fmt.Sprint(int64(s.VacateTime/time.Second)))
	w("checkpoint_exit_code", fmt.Sprint(campaign.ExitRequeue))
	if sub.GPUs > 0 {
		w("request_gpus", fmt.Sprint(sub.GPUs))
	}
	if sub.CPUs > 0 {
		w("request_cpus", fmt.Sprint(sub.CPUs))
	}
	if sub.MemoryMB > 0 {
		w("request_memory", fmt.Sprint(sub.MemoryMB))
	}
	if sub.DiskMB > 0 {
		w("request_disk", fmt.Sprint(sub.DiskMB*1024)) // KiB
	}
	if sub.TimeLimit > 0 {
		// One execution past the allocation's time limit is held (not
		// removed): status shows the hold reason; condor_release resumes.
		w("allowed_job_duration", fmt.Sprint(int64((sub.TimeLimit+time.Second-1)/time.Second)))
	}
	if s.Requirements != "" {
		w("requirements", s.Requirements)
	}
	if s.AccountingGroup != "" {
		w("accounting_group", s.AccountingGroup)
	}
	if len(sub.PassEnv) > 0 {
		for _, n := range sub.PassEnv {
			if !envName().MatchString(n) {
				return "", fmt.Errorf("pass_env: %q is not an environment variable name", n)
			}
		}
		// Names only: condor_submit copies the values from its own
		// environment into the job's.
		w("getenv", strings.Join(sub.PassEnv, ", "))
	}
	if sub.MaxParallel > 0 {
		w("max_materialize", fmt.Sprint(sub.MaxParallel))
	}
	for _, kv := range s.Submit {
		w(kv[0], kv[1])
	}
	fmt.Fprintf(&b, "queue run_id from %s\n", queueFile)
	return b.String(), nil
}

var envName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// QueueFile renders the queue file: one run id a line, in job order.
func QueueFile(jobs []campaign.Job) (string, error) {
	var b strings.Builder
	for _, j := range jobs {
		if !runIDRe().MatchString(j.RunID) {
			return "", fmt.Errorf("run id %q cannot be an HTCondor queue item (want letters, digits and ._+@=-)", j.RunID)
		}
		b.WriteString(j.RunID)
		b.WriteByte('\n')
	}
	return b.String(), nil
}
