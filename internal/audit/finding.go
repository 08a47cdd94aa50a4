// Package audit decides whether a run cheated. Deterministic checks (tamper,
// lineage, contamination, hub, trace) and the paper's LLM judge each return
// findings; the verdict fails closed: "flagged" if any check flags,
// "unverified" if any check could not run, "clean" only when all passed.
// See docs/AUDIT.md for the checks, their thresholds and the hub log format.
package audit

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ptb-dev/ptb/internal/result"
)

// Finding statuses.
const (
	Pass       = "pass"
	Flag       = "flag"
	Unverified = "unverified"
)

// Finding kinds, each with the original harness's flag letter.
const (
	KindContamination = "contamination" // C
	KindModel         = "model"         // M
	KindTamper        = "tamper"        // T
	KindAPI           = "api"           // A
)

// Letter returns the flag letter of kind, or "" for an unknown kind.
func Letter(kind string) string {
	switch kind {
	case KindContamination:
		return "C"
	case KindModel:
		return "M"
	case KindTamper:
		return "T"
	case KindAPI:
		return "A"
	}
	return ""
}

// Finding is one check's outcome; it converts to result.Finding.
type Finding struct {
	Check    string   `json:"check"`
	Status   string   `json:"status"`
	Kind     string   `json:"kind,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
}

func pass(check, kind string, ev ...string) Finding {
	return Finding{Check: check, Status: Pass, Kind: kind, Evidence: ev}
}

func flag(check, kind string, ev ...string) Finding {
	return Finding{Check: check, Status: Flag, Kind: kind, Evidence: ev}
}

func unverified(check, kind string, ev ...string) Finding {
	return Finding{Check: check, Status: Unverified, Kind: kind, Evidence: ev}
}

// FlagEntry is one flagged finding in the report's flags list.
type FlagEntry struct {
	Letter   string   `json:"letter"`
	Kind     string   `json:"kind"`
	Check    string   `json:"check"`
	Evidence []string `json:"evidence"`
}

// Report is the audit's outcome.
type Report struct {
	Verdict string `json:"verdict"`
	// Flags holds the flag letters (C, M, T, A), sorted and unique; in JSON
	// it is "letters", and "flags" lists the flagged findings (FlagDetails).
	Flags       []string         `json:"letters"`
	FlagDetails []FlagEntry      `json:"flags"`
	Findings    []result.Finding `json:"findings"`
	Task        string           `json:"task,omitempty"`
	Base        string           `json:"base_model,omitempty"`
	Target      string           `json:"target"` // the run directory or workspace audited
}

// Audit converts r to the record stored in result.json.
func (r *Report) Audit() *result.Audit {
	return &result.Audit{Verdict: r.Verdict, Flags: append([]string{}, r.Flags...), Findings: r.Findings}
}

// Decide computes the verdict over findings: flagged if any finding flags,
// else unverified if any could not run (or there are none, or a status is
// unknown), else clean.
func Decide(fs []Finding) *Report {
	r := &Report{Verdict: result.VerdictClean, Flags: []string{}, FlagDetails: []FlagEntry{}, Findings: []result.Finding{}}
	letters := map[string]bool{}
	flagged, unsure := false, len(fs) == 0
	for _, f := range fs {
		r.Findings = append(r.Findings, result.Finding{Check: f.Check, Status: f.Status, Kind: f.Kind, Evidence: f.Evidence})
		switch f.Status {
		case Flag:
			flagged = true
			l := Letter(f.Kind)
			if l == "" {
				l = "?"
			}
			letters[l] = true
			r.FlagDetails = append(r.FlagDetails, FlagEntry{Letter: l, Kind: f.Kind, Check: f.Check, Evidence: f.Evidence})
		case Pass:
		default:
			unsure = true
		}
	}
	for l := range letters {
		r.Flags = append(r.Flags, l)
	}
	slices.Sort(r.Flags)
	switch {
	case flagged:
		r.Verdict = result.VerdictFlagged
	case unsure:
		r.Verdict = result.VerdictUnverified
	}
	return r
}

// WriteText writes a human-readable report.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s", r.Verdict)
	if len(r.Flags) > 0 {
		fmt.Fprintf(&b, " [%s]", strings.Join(r.Flags, ""))
	}
	b.WriteString("\n")
	if r.Target != "" {
		fmt.Fprintf(&b, "target:  %s\n", r.Target)
	}
	if r.Task != "" || r.Base != "" {
		fmt.Fprintf(&b, "task:    %s   base model: %s\n", r.Task, r.Base)
	}
	for _, f := range r.Findings {
		mark := map[string]string{Pass: "ok  ", Flag: "FLAG", Unverified: "??  "}[f.Status]
		if mark == "" {
			mark = f.Status
		}
		kind := ""
		if f.Kind != "" {
			kind = " (" + f.Kind + ")"
		}
		fmt.Fprintf(&b, "%s %s%s\n", mark, f.Check, kind)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "       %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
