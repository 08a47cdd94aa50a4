package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Caps used when the campaign directory has no exec.json (an executor
// driven without `ptb campaign up`).
const (
	DefaultMaxPreemptions = 10
	DefaultMaxTimeouts    = 3
)

// ExecSettingsOrDefault reads DIR/exec.json, or returns the default caps
// when there is none.
func ExecSettingsOrDefault(dir string) (ExecSettings, error) {
	s, err := ReadExecSettings(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ExecSettings{MaxPreemptions: DefaultMaxPreemptions, MaxTimeouts: DefaultMaxTimeouts}, nil
	}
	return s, err
}

// Stop is why an allocation was asked to stop.
type Stop int

const (
	StopPreempt Stop = iota + 1 // TERM or HUP: the scheduler takes the allocation back
	StopTimeout                 // USR1: the allocation's time limit is near
)

// Count adds one stop to r (signal is its name, e.g. "SIGTERM") and
// reports whether the run may be requeued under s's caps; when not, it
// sets r.GaveUp to the cap that was passed.
func (r *Requeues) Count(s ExecSettings, stop Stop, signal string, now time.Time) bool {
	r.LastSignal, r.LastAt = signal, now.UTC().Format(time.RFC3339)
	switch stop {
	case StopTimeout:
		r.Timeouts++
		if r.Timeouts > s.MaxTimeouts {
			r.GaveUp = fmt.Sprintf("max_timeouts %d", s.MaxTimeouts)
			return false
		}
	default:
		r.Preemptions++
		if r.Preemptions > s.MaxPreemptions {
			r.GaveUp = fmt.Sprintf("max_preemptions %d", s.MaxPreemptions)
			return false
		}
	}
	return true
}

// WriteRequeues replaces the requeue record of runID (atomically: a
// reader sees the old record or the new one).
func WriteRequeues(dir, runID string, r Requeues) error {
	d := filepath.Join(dir, RequeuesDir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d, "."+runID+".*")
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	os.Chmod(f.Name(), 0o644)
	if err := os.Rename(f.Name(), filepath.Join(d, runID+".json")); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write requeues of %s: %w", runID, err)
	}
	return nil
}

// Root is the output root of campaign directory dir (ROOT/.campaign/NAME).
func Root(dir string) string { return filepath.Dir(filepath.Dir(dir)) }
