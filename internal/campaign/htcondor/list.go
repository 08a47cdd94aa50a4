package htcondor

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// ad is the part of a job or factory ad the executor reads. condor_q -json
// and condor_history -json print ads as JSON objects, attribute names as
// keys; absent attributes stay zero.
type ad struct {
	ClusterID    int    `json:"ClusterId"`
	ProcID       int    `json:"ProcId"`
	RunID        string `json:"PtbRunId"`
	Campaign     string `json:"PtbCampaign"`
	QueueFile    string `json:"PtbQueueFile"`
	JobStatus    int    `json:"JobStatus"`
	HoldReason   string `json:"HoldReason"`
	RemoveReason string `json:"RemoveReason"`
	ExitCode     *int   `json:"ExitCode"`
	ExitBySignal bool   `json:"ExitBySignal"`
	ExitSignal   int    `json:"ExitSignal"`
	NumJobStarts int    `json:"NumJobStarts"`
	// Factory ads (condor_q -factory): the next proc to materialize.
	NextProc *int `json:"JobMaterializeNextProcId"`
}

// jobAttrs and factoryAttrs are the -attributes the executor asks for.
var (
	jobAttrs     = []string{"ClusterId", "ProcId", AttrRunID, AttrCampaign, "JobStatus", "HoldReason", "RemoveReason", "ExitCode", "ExitBySignal", "ExitSignal", "NumJobStarts"}
	factoryAttrs = []string{"ClusterId", AttrCampaign, AttrQueueFile, "JobMaterializeNextProcId", "TotalSubmitProcs"}
)

// notMaterialized is the Reason of a proc still in its cluster's job factory.
const notMaterialized = "not yet materialized (max_materialize)"

// JobStatus values of a job ad.
const (
	statusIdle        = 1
	statusRunning     = 2
	statusRemoved     = 3
	statusCompleted   = 4
	statusHeld        = 5
	statusTransfering = 6
	statusSuspended   = 7
)

// parseAds reads the output of condor_q -json or condor_history -json: a
// JSON array of ads, or nothing at all when no ad matched.
func parseAds(b []byte, what string) ([]ad, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var ads []ad
	if err := json.Unmarshal(b, &ads); err != nil {
		return nil, fmt.Errorf("read %s -json output: %w", what, err)
	}
	return ads, nil
}

func (a ad) backendID() string { return fmt.Sprintf("%d.%d", a.ClusterID, a.ProcID) }

// state maps one job ad to the executor's view.
func (a ad) state() campaign.Status {
	st := campaign.Status{RunID: a.RunID, BackendID: a.backendID()}
	if a.NumJobStarts > 1 {
		st.Restarts = a.NumJobStarts - 1
	}
	switch a.JobStatus {
	case statusIdle:
		st.State = campaign.StatePending
		if a.NumJobStarts > 0 {
			st.Reason = "idle: waiting to run again"
		}
	case statusHeld:
		// Held jobs stay in the queue: not submitted again until someone
		// releases (condor_release) or cancels them.
		st.State, st.Reason = campaign.StatePending, "held: "+a.HoldReason
	case statusRunning, statusTransfering:
		st.State = campaign.StateRunning
	case statusSuspended:
		st.State, st.Reason = campaign.StateRunning, "suspended"
	case statusRemoved:
		st.State, st.Reason = campaign.StateFailed, "removed"
		if a.RemoveReason != "" {
			st.Reason += ": " + a.RemoveReason
		}
	case statusCompleted:
		switch {
		case a.ExitBySignal:
			st.State, st.Reason = campaign.StateFailed, fmt.Sprintf("killed by signal %d", a.ExitSignal)
		case a.ExitCode == nil:
			st.State, st.Reason = campaign.StateUnknown, "completed without an exit code"
		case *a.ExitCode == 0:
			st.State = campaign.StateExited
		default:
			st.State, st.Reason = campaign.StateFailed, fmt.Sprintf("exit code %d", *a.ExitCode)
		}
	default:
		st.State, st.Reason = campaign.StateUnknown, fmt.Sprintf("JobStatus %d", a.JobStatus)
	}
	return st
}

// inQueue is the state of a job ad still in the queue: a removed or
// completed job that condor_q still shows is leaving (its allocation may
// still be stopping), so it stays live until history has it.
func (a ad) inQueue() campaign.Status {
	st := a.state()
	if a.JobStatus == statusRemoved || a.JobStatus == statusCompleted {
		st.State, st.Reason = campaign.StateRunning, strings.TrimSuffix("leaving the queue: "+st.Reason, ": ")
	}
	return st
}

// merge builds one Status per run id from the queue's job ads, its factory
// ads (procs not yet materialized: run id i of the factory's queue file is
// proc i) and the history's ads. A live job wins over an ended one, then
// the newest (highest cluster.proc).
func merge(queue, factories, history []ad, readQueue func(path string) ([]string, error)) []campaign.Status {
	type cand struct {
		st            campaign.Status
		cluster, proc int
		live          bool
		order         int
	}
	best := map[string]cand{}
	var order []string
	put := func(c cand) {
		if c.st.RunID == "" {
			return
		}
		c.live = c.st.State.Live()
		old, ok := best[c.st.RunID]
		if !ok {
			order = append(order, c.st.RunID)
		} else if old.live != c.live {
			if old.live {
				return
			}
		} else if old.cluster > c.cluster || (old.cluster == c.cluster && old.proc >= c.proc) {
			return
		}
		best[c.st.RunID] = c
	}
	for _, a := range history {
		put(cand{st: a.state(), cluster: a.ClusterID, proc: a.ProcID})
	}
	for _, f := range factories {
		ids, err := readQueue(f.QueueFile)
		next := 0
		if f.NextProc != nil {
			next = *f.NextProc
		}
		if err != nil {
			continue // the procs that materialized are in the queue or history anyway
		}
		for p := next; p < len(ids); p++ {
			put(cand{st: campaign.Status{RunID: ids[p], BackendID: fmt.Sprintf("%d.%d", f.ClusterID, p),
				State: campaign.StatePending, Reason: notMaterialized}, cluster: f.ClusterID, proc: p})
		}
	}
	for _, a := range queue {
		put(cand{st: a.inQueue(), cluster: a.ClusterID, proc: a.ProcID})
	}
	out := make([]campaign.Status, 0, len(order))
	for _, id := range order {
		out = append(out, best[id].st)
	}
	return out
}
