package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files of the campaign directory shared by `up` and `exec`.
const (
	// ExecFile holds the ExecSettings `up` writes for `ptb campaign exec`.
	ExecFile = "exec.json"
	// RequeuesDir holds one Requeues record per run id (RUN_ID.json),
	// written by `ptb campaign exec`, read by status for triage.
	RequeuesDir = "requeues"
)

// ExecSettings are what `ptb campaign exec` needs beyond the index entry.
type ExecSettings struct {
	Executor string `json:"executor"` // the campaign's executor name
	// MaxPreemptions and MaxTimeouts cap the requeues of one run, counted
	// apart as submitit does: past either, exec stops requeueing and exits
	// 1, and status says which cap was hit.
	MaxPreemptions int `json:"max_preemptions"`
	MaxTimeouts    int `json:"max_timeouts"`
}

// Requeues counts how often one run was stopped and requeued.
type Requeues struct {
	Preemptions int    `json:"preemptions"` // TERM or HUP: the scheduler took the allocation back
	Timeouts    int    `json:"timeouts"`    // USR1: the allocation's time limit is near
	LastSignal  string `json:"last_signal,omitempty"`
	LastAt      string `json:"last_at,omitempty"` // RFC 3339
	GaveUp      string `json:"gave_up,omitempty"` // the cap that stopped the requeues, e.g. "max_timeouts 2"
}

// ReadExecSettings reads DIR/exec.json.
func ReadExecSettings(dir string) (ExecSettings, error) {
	var s ExecSettings
	b, err := os.ReadFile(filepath.Join(dir, ExecFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read %s: %w", filepath.Join(dir, ExecFile), err)
	}
	return s, nil
}

// ReadRequeues reads the requeue record of runID (zero when there is none).
func ReadRequeues(dir, runID string) (Requeues, error) {
	var r Requeues
	b, err := os.ReadFile(filepath.Join(dir, RequeuesDir, runID+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("read requeues of %s: %w", runID, err)
	}
	return r, nil
}
