package slurm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// squeueOut is the part of `squeue --json` that List reads. Slurm 22.05
// (data_parser 0.0.38) gives job_state as a string and exit_code as the raw
// wait status; later releases give arrays and objects, which number and
// stateNames also read.
type squeueOut struct {
	Errors []struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	} `json:"errors"`
	Jobs []squeueJob `json:"jobs"`
}

type squeueJob struct {
	JobID       json.RawMessage `json:"job_id"`
	ArrayJobID  json.RawMessage `json:"array_job_id"`
	ArrayTaskID json.RawMessage `json:"array_task_id"` // null for the pending rest of an array
	ArrayTasks  string          `json:"array_task_string"`
	Name        string          `json:"name"`
	Comment     string          `json:"comment"`
	JobState    json.RawMessage `json:"job_state"`
	StateReason string          `json:"state_reason"`
	ExitCode    json.RawMessage `json:"exit_code"`
	RestartCnt  int             `json:"restart_cnt"`
}

// task is one array task of one campaign job as squeue reports it.
type task struct {
	ArrayJobID int
	TaskID     int
	Index      int
	State      campaign.State
	Reason     string
	Restarts   int
}

func (t task) backendID() string { return fmt.Sprintf("%d_%d", t.ArrayJobID, t.TaskID) }

// parseSqueue returns the array tasks of campaign name in squeue's JSON.
// Slurm 22.05 ignores --name under --json, so jobs are matched by name here;
// a job without ptb's comment is not ptb's and is skipped.
func parseSqueue(b []byte, name string) ([]task, error) {
	var out squeueOut
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("parse squeue --json: %w", err)
	}
	if len(out.Errors) > 0 {
		return nil, fmt.Errorf("squeue --json: %s (%s)", out.Errors[0].Description, out.Errors[0].Error)
	}
	var tasks []task
	for _, j := range out.Jobs {
		if j.Name != jobName(name) || !strings.HasPrefix(j.Comment, commentPrefix) {
			continue
		}
		base, err := strconv.Atoi(strings.TrimPrefix(j.Comment, commentPrefix))
		if err != nil || base < 0 {
			continue
		}
		arrayID, ok := number(j.ArrayJobID)
		if !ok || arrayID == 0 {
			continue // not an array: ptb submits only arrays
		}
		state, reason := jobState(j)
		var ids []int
		if id, ok := number(j.ArrayTaskID); ok {
			ids = []int{id}
		} else if ids, err = parseArray(j.ArrayTasks); err != nil {
			return nil, fmt.Errorf("squeue --json: job %d: %w", arrayID, err)
		}
		for _, id := range ids {
			tasks = append(tasks, task{ArrayJobID: arrayID, TaskID: id, Index: base + id, State: state, Reason: reason, Restarts: j.RestartCnt})
		}
	}
	return tasks, nil
}

// number reads an integer that Slurm writes bare (22.05) or as
// {"set": true, "number": N} (23.02 and later); null and unset are false.
func number(raw json.RawMessage) (int, bool) {
	var n *int
	if json.Unmarshal(raw, &n) == nil {
		if n == nil {
			return 0, false
		}
		return *n, true
	}
	var o struct {
		Set    bool `json:"set"`
		Number int  `json:"number"`
	}
	if json.Unmarshal(raw, &o) == nil && o.Set {
		return o.Number, true
	}
	return 0, false
}

// stateNames reads job_state: a string (22.05) or a list of the base state
// and its flags (23.02 and later).
func stateNames(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var l []string
	json.Unmarshal(raw, &l)
	return l
}

// exitStatus is the batch script's exit status: 22.05 gives the raw wait
// status; later releases an object with return_code and signal.
func exitStatus(raw json.RawMessage) (code, signal int) {
	if n, ok := number(raw); ok {
		if n&0x7f != 0 {
			return 0, n & 0x7f
		}
		return n >> 8, 0
	}
	var o struct {
		ReturnCode json.RawMessage `json:"return_code"`
		Signal     struct {
			ID json.RawMessage `json:"id"`
		} `json:"signal"`
	}
	if json.Unmarshal(raw, &o) == nil {
		code, _ = number(o.ReturnCode)
		signal, _ = number(o.Signal.ID)
	}
	return code, signal
}

// jobState maps Slurm's job state to the campaign's, with the reason in
// Slurm's words.
func jobState(j squeueJob) (campaign.State, string) {
	names := stateNames(j.JobState)
	reason := j.StateReason
	if reason == "None" {
		reason = ""
	}
	for _, n := range names {
		switch n {
		case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT":
			if reason == "" && n != "PENDING" {
				reason = n // e.g. REQUEUE_HOLD
			}
			return campaign.StatePending, reason
		case "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT":
			return campaign.StateRunning, reason
		case "COMPLETED":
			return campaign.StateExited, ""
		case "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY":
			code, sig := exitStatus(j.ExitCode)
			why := fmt.Sprintf("%s, exit %d", n, code)
			if sig != 0 {
				why = fmt.Sprintf("%s, signal %d", n, sig)
			}
			if reason != "" && reason != "NonZeroExitCode" {
				why += " (" + reason + ")"
			}
			return campaign.StateFailed, why
		}
	}
	return campaign.StateUnknown, fmt.Sprintf("job state %s", strings.Join(names, "+"))
}
