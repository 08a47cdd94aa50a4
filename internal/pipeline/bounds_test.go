package pipeline_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// stuckAuditor never returns and ignores its context, as an auditor stuck
// in a read of a FIFO would.
type stuckAuditor struct{ release chan struct{} }

func (s stuckAuditor) Audit(ctx context.Context, dir rundir.Dir, spec job.Spec) (*result.Audit, error) {
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
	f, err := os.OpenFile(d.Path(pipeline.LockFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("run lock still held after Run returned: %v", err)
	}
}
