package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxfake"
)

// stuckAuditor never returns and ignores its context, as an auditor stuck
// in a read of a FIFO would.
type stuckAuditor struct{ release chan struct{} }

func (s stuckAuditor) Audit(ctx context.Context, req pipeline.AuditRequest) (*result.Audit, error) {
	<-s.release
	return &result.Audit{Verdict: result.VerdictClean, Flags: []string{}, Findings: []result.Finding{}}, nil
}

// A stalled audit ends at the stage deadline: the verdict is unverified
// with the reason, the job is recorded, and the run lock is released.
func TestAuditDeadline(t *testing.T) {
	spec, d := newJob(t, 30, "steps:\n  - model: final_model\nfinal: done\n")
	spec.Bounds.AuditTimeout = 500 * time.Millisecond
	if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	r := newRunner(none.New())
	r.Scaffold = scriptedScaffold
	r.Auditor = stuckAuditor{release}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	st := res.Stages[result.StageAudit]
	if st.Status != result.StatusDone || !strings.Contains(st.Reason, "deadline") {
		t.Errorf("audit stage = %+v, want done with the deadline as reason", st)
	}
	if res.Verdict != result.VerdictUnverified {
		t.Errorf("verdict %s, want unverified", res.Verdict)
	}
	if res.Audit == nil || len(res.Audit.Findings) != 1 || res.Audit.Findings[0].Check != pipeline.AuditDeadlineCheck {
		t.Errorf("audit record = %+v, want one %s finding", res.Audit, pipeline.AuditDeadlineCheck)
	}
	validate(t, d)
	f, err := os.OpenFile(d.Path(rundir.LockFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("run lock still held after Run returned: %v", err)
	}
}

// allocated sums the bytes the tree under root occupies on disk, each
// inode once.
func allocated(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	seen := map[uint64]bool{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !seen[st.Ino] {
			seen[st.Ino] = true
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// The workspace of issue 10: a 50 MB file hard-linked 40 times and a 3 GB
// sparse file, in final_model and beside it. Collect writes at most a few
// times the workspace's real size.
func TestCollectBoundedByRealSize(t *testing.T) {
	onBackends(t, []sandboxfake.Step{{Func: func(ctx context.Context, p sandboxfake.Proc) int {
		if code := writeModel(ctx, p); code != 0 {
			return code
		}
		if err := hardLinkedAndSparse(filepath.Join(p.Dir, "final_model"), "weights.bin", "copy", ".bin", 50000000, "sparse.safetensors"); err != nil {
			fmt.Fprintln(p.Stderr, err)
			return 1
		}
		if err := hardLinkedAndSparse(filepath.Join(p.Dir, "data"), "a.jsonl", "b", ".jsonl", 10000000, "sparse.jsonl"); err != nil {
			fmt.Fprintln(p.Stderr, err)
			return 1
		}
		return 0
	}}}, func(t *testing.T, b sandbox.Backend) {
		script := `steps:
  - model: final_model
  - run: "head -c 50000000 /dev/urandom > final_model/weights.bin && for i in $(seq 1 39); do ln final_model/weights.bin final_model/copy$i.bin; done && truncate -s 3G final_model/sparse.safetensors"
  - run: "mkdir -p data && head -c 10000000 /dev/urandom > data/a.jsonl && for i in $(seq 1 39); do ln data/a.jsonl data/b$i.jsonl; done && truncate -s 3G data/sparse.jsonl"
final: "done"
`
		_, d := newJob(t, 60, script)
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		res, err := r.Run(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		real := allocated(t, d.Path(rundir.Workspace))
		wrote := allocated(t, d.Path(rundir.CollectDir))
		t.Logf("workspace occupies %d bytes; collect wrote %d bytes", real, wrote)
		if wrote > 3*real {
			t.Errorf("collect wrote %d bytes for a workspace of %d real bytes (limit 3x)", wrote, real)
		}
		st := res.Stages[result.StageCollect]
		if st.Status != result.StatusDone || !strings.Contains(st.Reason, "sparse") {
			t.Errorf("collect stage = %+v, want done with the refused sparse file named", st)
		}
		// Hard links were kept as one file, every name present.
		a, err1 := os.Stat(d.Path(rundir.FinalModel, "weights.bin"))
		c, err2 := os.Stat(d.Path(rundir.FinalModel, "copy39.bin"))
		if err1 != nil || err2 != nil || !os.SameFile(a, c) {
			t.Errorf("hard links in final_model not collected as one file: %v %v", err1, err2)
		}
	})
}

// hardLinkedAndSparse is the fake's play of the scripted steps of
// TestCollectBoundedByRealSize: in dir, a file of n random-looking bytes
// with 39 more names (prefix1..39 + ext) and a 3 GB sparse file.
func hardLinkedAndSparse(dir, name, prefix, ext string, n int, sparse string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return err
	}
	for i := 1; i <= 39; i++ {
		if err := os.Link(filepath.Join(dir, name), filepath.Join(dir, fmt.Sprintf("%s%d%s", prefix, i, ext))); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(dir, sparse))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(3 << 30)
}

// Going over the byte or file cap fails collect with the reason, and
// leaves no partial final_model for evaluation.
func TestCollectCaps(t *testing.T) {
	cases := []struct {
		name   string
		bounds job.Bounds
		where  string // the directory that gets 200 small files
		failed bool
		want   string
	}{
		{"bytes", job.Bounds{CollectMaxBytes: 4 << 20}, "many", true, "collect_max_bytes"},
		{"files in final_model", job.Bounds{CollectMaxFiles: 50}, "final_model/many", true, "collect_max_files"},
		// The snapshot is only a convenience copy: it stops, collect goes on.
		{"files in the workspace", job.Bounds{CollectMaxFiles: 50}, "many", false, "snapshot incomplete"},
	}
	for _, c := range cases {
		fake := sandboxfake.Step{Func: func(ctx context.Context, p sandboxfake.Proc) int {
			if code := writeModel(ctx, p); code != 0 {
				return code
			}
			big := make([]byte, 3000000)
			for i := range big {
				big[i] = byte(i * 13)
			}
			os.WriteFile(filepath.Join(p.Dir, "final_model", "a.bin"), big, 0o644)
			os.WriteFile(filepath.Join(p.Dir, "final_model", "b.bin"), big[1:], 0o644)
			os.MkdirAll(filepath.Join(p.Dir, c.where), 0o755)
			for i := 1; i <= 200; i++ {
				os.WriteFile(filepath.Join(p.Dir, c.where, fmt.Sprintf("f%d", i)), fmt.Appendf(nil, "%d\n", i), 0o644)
			}
			return 0
		}}
		t.Run(c.name, func(t *testing.T) {
			onBackends(t, []sandboxfake.Step{fake}, func(t *testing.T, b sandbox.Backend) {
				script := `steps:
  - model: final_model
  - run: "head -c 3000000 /dev/urandom > final_model/a.bin && head -c 3000000 /dev/urandom > final_model/b.bin && mkdir -p ` + c.where + ` && for i in $(seq 1 200); do echo $i > ` + c.where + `/f$i; done"
final: "done"
`
				spec, d := newJob(t, 60, script)
				spec.Bounds = c.bounds
				if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
					t.Fatal(err)
				}
				r := newRunner(b)
				r.Scaffold = scriptedScaffold
				res, err := r.Run(context.Background(), d)
				if err != nil {
					t.Fatal(err)
				}
				st := res.Stages[result.StageCollect]
				if c.failed && (st.Status != result.StatusFailed || !strings.Contains(st.Error, c.want)) {
					t.Errorf("collect stage = %+v, want failed naming %s", st, c.want)
				}
				if !c.failed && (st.Status != result.StatusDone || !strings.Contains(st.Reason, c.want)) {
					t.Errorf("collect stage = %+v, want done with %q", st, c.want)
				}
				if _, err := os.Stat(d.Path(rundir.FinalModel)); c.failed && err == nil {
					t.Errorf("a partial final_model was left for evaluation")
				}
			})
		})
	}
}

// The agent's 20 MiB line and a 64 MiB flood under small trace bounds: the
// trace is cut, the cuts are recorded, and result.json says so.
func TestTraceBounded(t *testing.T) {
	cases := []struct {
		mode   string
		bounds job.Bounds
		kind   string
	}{
		{"bigline", job.Bounds{TraceMaxLine: 1 << 20}, "line"},
		{"flood:64", job.Bounds{TraceMaxBytes: 8 << 20}, "trace"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			onBackends(t, helperSteps(c.mode), func(t *testing.T, b sandbox.Backend) {
				d, res, _ := runHelperOn(t, b, c.mode, 120, time.Second, func(s *job.Spec) { s.Bounds = c.bounds })
				if !res.Solve.TraceTruncated {
					t.Errorf("result.json solve.trace_truncated is false")
				}
				var cuts []pipeline.Truncation
				if err := d.ReadJSON(rundir.TruncationFile, &cuts); err != nil || len(cuts) == 0 || cuts[0].Kind != c.kind || cuts[0].SHA256 == "" {
					t.Errorf("%s: %+v (%v), want a %s cut with a sha256", rundir.TruncationFile, cuts, err, c.kind)
				}
				for _, f := range []string{rundir.TraceRaw, rundir.TraceLog} {
					fi, err := os.Stat(d.Path(f))
					if err != nil {
						t.Fatal(err)
					}
					limit := int64(9 << 20)
					if c.bounds.TraceMaxLine > 0 {
						limit = 2 * c.bounds.TraceMaxLine
					}
					if fi.Size() > limit {
						t.Errorf("%s is %d bytes, over %d", f, fi.Size(), limit)
					}
				}
			})
		})
	}
}
