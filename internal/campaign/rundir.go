package campaign

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
)

// Files of a run directory the engine reads (besides rundir's). They are
// written by ptb (the harness), never by the agent; each read is bounded.
const (
	evalMetrics   = "metrics.json" // ptb eval's summary (a baseline's run directory)
	maxStateBytes = 16 << 20
	// eventsTail is how much of the end of events.jsonl a status reads:
	// at a heartbeat event a minute, more than a day of a solve.
	eventsTail = 1 << 20
	// FreshHeartbeat: a solve heartbeat (saved every 2 s while the agent
	// runs) younger than this means a ptb is working on the run, even
	// where its lock cannot be seen (another node of a shared filesystem).
	FreshHeartbeat = 2 * time.Minute
)

// RunView is what a run directory says about its run.
type RunView struct {
	Exists bool
	Done   bool           // result.json (a baseline: metrics.json) is there
	Result *result.Result // nil until done, or unreadable
	// Stage is the first stage that is not done or skipped (the one
	// running, failed or next), "" when every stage is.
	Stage       string
	StageStatus string
	Locked      bool      // a ptb holds the run's lock (seen in /proc/locks)
	Heartbeat   time.Time // the last solve heartbeat (zero: none)
	SolveOpen   bool      // the last solve segment has no end (the solve is under way or was cut)
	Spent       time.Duration
	Budget      time.Duration
	Err         string // why the directory could not be read
	// From events.jsonl, when the run has one (zero otherwise):
	LastEvent time.Time // the time of the run's latest event
	Limit     string    // the resource limit that stopped the latest solve segment
	LimitSeg  int       // that segment
}

// Fresh reports whether the solve heartbeat is recent at now.
func (v RunView) Fresh(now time.Time) bool {
	return v.SolveOpen && !v.Heartbeat.IsZero() && now.Sub(v.Heartbeat) < FreshHeartbeat
}

// ReadRun reads the run directory of entry e under root.
func ReadRun(root string, e Entry) RunView {
	var v RunView
	dir := rundir.Dir(filepath.Join(root, e.RunID))
	if _, err := os.Lstat(string(dir)); err != nil {
		return v
	}
	v.Exists = true
	v.Locked = lockHeld(dir.Path(rundir.LockFile))
	if e.Kind == KindEval {
		if _, err := os.Stat(dir.Path(evalMetrics)); err == nil {
			v.Done = true
		}
		return v
	}
	if _, err := os.Stat(dir.Path(rundir.ResultFile)); err == nil {
		v.Done = true
		if res, err := readJSON[result.Result](dir.Path(rundir.ResultFile)); err == nil {
			v.Result = res
		} else {
			v.Err = err.Error()
		}
	}
	if m, err := readJSON[rundir.Manifest](dir.Path(rundir.ManifestFile)); err == nil {
		for _, s := range result.Stages {
			if st := m.Stages[s].Status; st != result.StatusDone && st != result.StatusSkipped {
				v.Stage, v.StageStatus = s, st
				break
			}
		}
	} else if !os.IsNotExist(err) && v.Err == "" {
		v.Err = err.Error()
	}
	evHeartbeat, evOpen := readEvents(dir, &v)
	if s, err := readJSON[rundir.SolveState](dir.Path(rundir.SolveStateFile)); err != nil {
		// Without solve.json, the events say when the solve last ran.
		v.Heartbeat, v.SolveOpen = evHeartbeat, evOpen
	} else {
		v.Budget = time.Duration(s.BudgetS * float64(time.Second))
		v.Spent = s.Spent()
		if n := len(s.Segments); n > 0 {
			v.Heartbeat, v.SolveOpen = s.Segments[n-1].Heartbeat, s.Segments[n-1].End == nil
		}
	}
	return v
}

// readEvents reads the tail of the run's events.jsonl into v (LastEvent,
// Limit) and returns the solve's last sign of life there and whether its
// latest segment is open. A run without events (made by an older ptb)
// leaves v as it is.
func readEvents(dir rundir.Dir, v *RunView) (heartbeat time.Time, open bool) {
	runevents.ReadTail(dir.Path(rundir.EventsFile), eventsTail, func(ev runevents.Event, _ int, lineErr error) error {
		if lineErr != nil {
			return nil // a line cut short by a crash
		}
		if ev.Time.After(v.LastEvent) {
			v.LastEvent = ev.Time
		}
		switch ev.Type {
		case runevents.SegmentStarted:
			heartbeat, open = ev.Time, true
			v.Limit, v.LimitSeg = "", 0
		case runevents.Heartbeat:
			heartbeat = ev.Time
		case runevents.SegmentEnded:
			heartbeat, open = ev.Time, false
		case runevents.LimitHit:
			v.Limit, v.LimitSeg = ev.Limit, ev.Segment
		}
		return nil
	})
	return heartbeat, open
}

// readJSON decodes a harness-written JSON file of at most maxStateBytes.
func readJSON[T any](path string) (*T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxStateBytes)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &v, nil
}

// lockHeld reports whether some process holds a lock on path, from
// /proc/locks: testing it with flock would, for an instant, make a ptb
// starting on the run fail as busy.
func lockHeld(path string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
		// 1: -> FLOCK ... (a waiter, not a holder)
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[1] == "->" {
			continue
		}
		if fs[5] == want {
			return true
		}
	}
	return false
}

// Submit records: DIR/submits.jsonl, one line per job submitted by up.
const SubmitsFile = "submits.jsonl"

// SubmitRecord is one submission of a run by `ptb campaign up`.
type SubmitRecord struct {
	RunID     string `json:"run_id"`
	Index     int    `json:"index"`
	BackendID string `json:"backend_id,omitempty"`
	At        string `json:"at"` // RFC 3339
}

// ReadSubmits counts the submissions of each run id.
func ReadSubmits(dir string) (map[string]int, error) {
	out := map[string]int{}
	f, err := os.Open(filepath.Join(dir, SubmitsFile))
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r SubmitRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line cut short by a crash
		}
		out[r.RunID]++
	}
	return out, sc.Err()
}

func appendSubmits(dir string, recs []SubmitRecord) error {
	f, err := os.OpenFile(filepath.Join(dir, SubmitsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, r := range recs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tailFile returns up to n bytes from the end of path.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
