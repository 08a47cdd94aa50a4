// Package htcondor is the campaign executor for HTCondor pools. It drives
// the command-line tools (condor_submit, condor_q, condor_history,
// condor_rm), never a daemon's wire protocol:
//
//   - Submit writes one submit description per batch, a vanilla-universe
//     cluster with one proc per run id (`queue run_id from FILE`), tagged
//     with the +PtbCampaign and +PtbRunId attributes, throttled by
//     max_materialize, stopped by SIGTERM with checkpoint_exit_code = 75 so
//     a preempted run (ptb campaign exec exits 75) runs again and resumes.
//   - List is three queries however many jobs there are: condor_q -json for
//     the queue, condor_q -factory -json for procs not yet materialized
//     (invisible to a plain condor_q) and condor_history -json, bounded by
//     -limit, for ended jobs.
//   - Cancel removes jobs by cluster.proc: the cluster ad of a late
//     materialized submission carries the first item's PtbRunId, so a
//     removal by attribute could hit a whole cluster.
//
// Files under the campaign directory: htcondor/submit-*.sub (the submit
// descriptions), htcondor/submit-*.runs (their queue files),
// htcondor/events.log (the user log) and htcondor/logs/RUN_ID.CLUSTER.out
// and .err (ptb campaign exec's stdout and stderr, one pair per submission).
package htcondor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
)

func init() {
	campaign.Register("htcondor", func(n *yaml.Node) (campaign.Executor, error) {
		s, err := ParseSettings(n)
		if err != nil {
			return nil, err
		}
		return New(s), nil
	})
}

// Executor runs a campaign's jobs on an HTCondor pool.
type Executor struct {
	s Settings
}

var _ campaign.Executor = (*Executor)(nil)

// New returns an executor with settings s.
func New(s Settings) *Executor {
	if s.VacateTime <= 0 {
		s.VacateTime = DefaultVacateTime
	}
	return &Executor{s: s}
}

// Name is "htcondor".
func (e *Executor) Name() string { return "htcondor" }

const (
	maxOutput    = 64 << 20 // one command's stdout
	maxStderr    = 16 << 10
	maxQueueFile = 16 << 20
)

// campaignRe is what a campaign name is (campaign.Submission); it goes
// into ClassAd constraints verbatim, so nothing else is accepted.
var campaignRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9-]{1,40}$`) })

func (e *Executor) path(name string) string {
	if e.s.Bin != "" {
		return filepath.Join(e.s.Bin, name)
	}
	return name
}

// run runs one HTCondor command in dir ("" for the current one) and
// returns its stdout, bounded.
func (e *Executor) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, e.path(name), args...)
	c.Dir = dir
	out := &capped{max: maxOutput}
	errb := &capped{max: maxStderr}
	c.Stdout, c.Stderr = out, errb
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 10 * time.Second
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("run %s: %w (install HTCondor's tools, or set executor.htcondor.bin to their folder)", name, err)
		}
		return nil, fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	if out.over {
		return nil, fmt.Errorf("run %s: output over %d bytes", name, maxOutput)
	}
	return out.Bytes(), nil
}

// capped keeps the first max bytes written to it and notes the rest.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); len(p) > room {
		c.over = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// Check asks the schedd for its queue totals.
func (e *Executor) Check(ctx context.Context) error {
	if _, err := e.run(ctx, "", "condor_q", "-totals"); err != nil {
		return fmt.Errorf("check htcondor: %w (is the pool up and this machine a submit node? For tests: scripts/ci/condor-up.sh)", err)
	}
	return nil
}

// Submit submits sub's jobs as one cluster and returns their cluster.proc
// ids, proc i being sub.Jobs[i].
func (e *Executor) Submit(ctx context.Context, sub campaign.Submission) ([]campaign.Status, error) {
	if len(sub.Jobs) == 0 {
		return nil, nil
	}
	if !campaignRe().MatchString(sub.Campaign) {
		return nil, fmt.Errorf("submit to htcondor: campaign name %q: want [a-z0-9-], at most 40 characters", sub.Campaign)
	}
	dir := filepath.Join(sub.Dir, "htcondor")
	if err := mkdirLike(filepath.Join(dir, "logs"), sub.Dir); err != nil {
		return nil, err
	}
	queue, err := QueueFile(sub.Jobs)
	if err != nil {
		return nil, fmt.Errorf("submit to htcondor: %w", err)
	}
	runs, err := os.CreateTemp(dir, "submit-"+time.Now().UTC().Format("20060102T150405")+"-*.runs")
	if err != nil {
		return nil, fmt.Errorf("write queue file: %w", err)
	}
	runs.Close()
	base := strings.TrimSuffix(runs.Name(), ".runs")
	desc, err := Description(e.s, sub, runs.Name())
	if err != nil {
		return nil, fmt.Errorf("submit to htcondor: %w", err)
	}
	// The submit files are read by condor_submit, which may run as
	// another user than this process (a pool's wrapper).
	if err := os.WriteFile(runs.Name(), []byte(queue), 0o644); err != nil {
		return nil, fmt.Errorf("write queue file: %w", err)
	}
	if err := os.Chmod(runs.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+".sub", []byte(desc), 0o644); err != nil {
		return nil, fmt.Errorf("write submit description: %w", err)
	}
	out, err := e.run(ctx, dir, "condor_submit", "-terse", base+".sub")
	if err != nil {
		return nil, fmt.Errorf("submit %s: %w", base+".sub", err)
	}
	cluster, first, last, err := parseTerse(out)
	if err != nil {
		return nil, fmt.Errorf("submit %s: %w", base+".sub", err)
	}
	if n := last - first + 1; n != len(sub.Jobs) {
		return nil, fmt.Errorf("submit %s: condor_submit made %d jobs (%d.%d - %d.%d), want %d: check the cluster with condor_q %d", base+".sub", n, cluster, first, cluster, last, len(sub.Jobs), cluster)
	}
	st := make([]campaign.Status, len(sub.Jobs))
	for i, j := range sub.Jobs {
		st[i] = campaign.Status{RunID: j.RunID, BackendID: fmt.Sprintf("%d.%d", cluster, first+i), State: campaign.StatePending}
	}
	return st, nil
}

// mkdirLike makes dir and its missing parents with the permission bits of
// like (the campaign directory): a pool whose jobs run as another user
// writes its logs where that user may.
func mkdirLike(dir, like string) error {
	fi, err := os.Stat(like)
	if err != nil {
		return fmt.Errorf("stat campaign directory: %w", err)
	}
	perm := fi.Mode().Perm()
	var todo []string
	for d := dir; d != like && d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		if err := os.Mkdir(todo[i], perm); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("make %s: %w", todo[i], err)
		}
		if err := os.Chmod(todo[i], perm); err != nil {
			return err
		}
	}
	return nil
}

// parseTerse reads condor_submit -terse's "CLUSTER.FIRST - CLUSTER.LAST".
func parseTerse(b []byte) (cluster, first, last int, err error) {
	line := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	a, z, ok := strings.Cut(line, " - ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("read condor_submit -terse output %q: want CLUSTER.FIRST - CLUSTER.LAST", line)
	}
	c1, p1, err1 := jobID(a)
	c2, p2, err2 := jobID(z)
	if err := errors.Join(err1, err2); err != nil || c1 != c2 || p2 < p1 {
		return 0, 0, 0, fmt.Errorf("read condor_submit -terse output %q: want CLUSTER.FIRST - CLUSTER.LAST", line)
	}
	return c1, p1, p2, nil
}

func jobID(s string) (cluster, proc int, err error) {
	c, p, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		return 0, 0, fmt.Errorf("job id %q: want CLUSTER.PROC", s)
	}
	if cluster, err = strconv.Atoi(c); err != nil {
		return 0, 0, err
	}
	proc, err = strconv.Atoi(p)
	return cluster, proc, err
}

// List returns the campaign's jobs: queued (materialized or not), running,
// and ended as far as the history goes.
func (e *Executor) List(ctx context.Context, c campaign.Ref) ([]campaign.Status, error) {
	if !campaignRe().MatchString(c.Campaign) {
		return nil, fmt.Errorf("list htcondor jobs: campaign name %q: want [a-z0-9-], at most 40 characters", c.Campaign)
	}
	constraint := fmt.Sprintf("%s == %q", AttrCampaign, c.Campaign)
	out, err := e.run(ctx, "", "condor_q", "-json", "-constraint", constraint, "-attributes", strings.Join(jobAttrs, ","))
	if err != nil {
		return nil, err
	}
	queue, err := parseAds(out, "condor_q")
	if err != nil {
		return nil, err
	}
	out, err = e.run(ctx, "", "condor_q", "-factory", "-json", "-constraint", constraint, "-attributes", strings.Join(factoryAttrs, ","))
	if err != nil {
		return nil, err
	}
	factories, err := parseAds(out, "condor_q -factory")
	if err != nil {
		return nil, err
	}
	// The history is bounded: a few ended jobs per index entry.
	entries, err := campaign.ReadIndex(c.Dir)
	if err != nil {
		return nil, err
	}
	limit := 4*len(entries) + 64
	out, err = e.run(ctx, "", "condor_history", "-json", "-constraint", constraint, "-limit", strconv.Itoa(limit), "-attributes", strings.Join(jobAttrs, ","))
	if err != nil {
		return nil, err
	}
	history, err := parseAds(out, "condor_history")
	if err != nil {
		return nil, err
	}
	own := filepath.Join(c.Dir, "htcondor") + string(filepath.Separator)
	return merge(queue, factories, history, func(path string) ([]string, error) {
		// Only this campaign's own queue files are read.
		if !strings.HasPrefix(filepath.Clean(path), own) {
			return nil, fmt.Errorf("queue file %s is not under %s", path, own)
		}
		return readQueueFile(path)
	}), nil
}

func readQueueFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(io.LimitReader(f, maxQueueFile))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			ids = append(ids, l)
		}
	}
	return ids, sc.Err()
}

// Cancel removes the runs' jobs by cluster.proc: HTCondor sends kill_sig
// (SIGTERM) and, after job_max_vacate_time, SIGKILL. A proc that a job
// factory has not materialized yet cannot be removed alone: when every
// live run of its cluster is cancelled the whole cluster goes (factory
// included); otherwise Cancel removes what it can and says which runs are
// left.
func (e *Executor) Cancel(ctx context.Context, c campaign.Ref, runIDs []string) error {
	st, err := e.List(ctx, c)
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	args, left := removals(st, runIDs)
	var rmErr error
	if len(args) > 0 {
		if _, err := e.run(ctx, "", "condor_rm", append([]string{"-reason", "ptb campaign cancel"}, args...)...); err != nil {
			// A job may have ended between List and condor_rm: only the
			// ones still live (and not already leaving) count.
			if st, lerr := e.List(ctx, c); lerr != nil {
				rmErr = err
			} else {
				for _, s := range st {
					if s.State.Live() && !strings.HasPrefix(s.Reason, "leaving the queue") && slices.Contains(runIDs, s.RunID) &&
						(slices.Contains(args, s.BackendID) || slices.Contains(args, clusterOf(s.BackendID))) {
						rmErr = err
					}
				}
			}
		}
	}
	if len(left) > 0 {
		rmErr = errors.Join(rmErr, fmt.Errorf("cancel: %s not yet materialized by their cluster's job factory (max_materialize), and HTCondor removes such a proc only with its whole cluster: cancel every live run of the cluster, or cancel again once they run", strings.Join(left, ", ")))
	}
	return rmErr
}

// removals returns condor_rm's job ids for cancelling runIDs: cluster.proc
// for materialized jobs, CLUSTER for a factory whose live runs are all
// cancelled; and the runs it cannot remove.
func removals(st []campaign.Status, runIDs []string) (args, left []string) {
	liveIn := map[string][]string{} // cluster -> its live run ids
	for _, s := range st {
		if s.State.Live() {
			liveIn[clusterOf(s.BackendID)] = append(liveIn[clusterOf(s.BackendID)], s.RunID)
		}
	}
	whole := map[string]bool{}
	for _, s := range st {
		if !s.State.Live() || !slices.Contains(runIDs, s.RunID) || s.Reason != notMaterialized {
			continue
		}
		cl := clusterOf(s.BackendID)
		all := true
		for _, id := range liveIn[cl] {
			all = all && slices.Contains(runIDs, id)
		}
		if all {
			whole[cl] = true
		} else {
			left = append(left, s.RunID)
		}
	}
	for cl := range whole {
		args = append(args, cl)
	}
	slices.Sort(args)
	for _, s := range st {
		if s.State.Live() && slices.Contains(runIDs, s.RunID) && s.Reason != notMaterialized && !whole[clusterOf(s.BackendID)] {
			args = append(args, s.BackendID)
		}
	}
	return args, left
}

func clusterOf(backendID string) string {
	c, _, _ := strings.Cut(backendID, ".")
	return c
}

// Logs returns the run's stdout and stderr files, one pair per
// submission, oldest cluster first.
func (e *Executor) Logs(ctx context.Context, c campaign.Ref, runID string) ([]string, error) {
	if !runIDRe().MatchString(runID) {
		return nil, fmt.Errorf("logs: %q is not a run id", runID)
	}
	dir := filepath.Join(c.Dir, "htcondor", "logs")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	type logf struct {
		cluster int
		ext     string
		path    string
	}
	var fs []logf
	for _, de := range ents {
		rest, ok := strings.CutPrefix(de.Name(), runID+".")
		if !ok {
			continue
		}
		cl, ext, ok := strings.Cut(rest, ".")
		n, err := strconv.Atoi(cl)
		if !ok || err != nil || (ext != "out" && ext != "err") {
			continue
		}
		fs = append(fs, logf{n, ext, filepath.Join(dir, de.Name())})
	}
	slices.SortFunc(fs, func(a, b logf) int {
		if a.cluster != b.cluster {
			return a.cluster - b.cluster
		}
		return strings.Compare(b.ext, a.ext) // out before err
	})
	paths := make([]string, len(fs))
	for i, f := range fs {
		paths[i] = f.path
	}
	return paths, nil
}
