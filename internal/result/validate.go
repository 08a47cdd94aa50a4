package result

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
)

// SchemaJSON is the JSON Schema of result.json v1 (also in docs/).
//
//go:embed schema.json
var SchemaJSON []byte

// compiled is SchemaJSON compiled for schema.go's validator, on first use.
var compiled = sync.OnceValues(func() (*schemaDoc, error) { return compileSchema(SchemaJSON) })

// ValidateJSON checks a result.json document against the v1 schema and
// the rules the schema cannot express.
func ValidateJSON(b []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("compile result schema: %w", err)
	}
	doc, err := decodeJSON(b)
	if err != nil {
		return fmt.Errorf("parse result: %w", err)
	}
	if err := s.validate(doc); err != nil {
		return err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	return r.checkRules()
}

// Validate checks r as it would be written.
func Validate(r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return ValidateJSON(b)
}

// checkRules enforces invariants across fields.
func (r *Result) checkRules() error {
	if r.Verdict == VerdictClean {
		if r.Audit == nil || r.Audit.Verdict != VerdictClean {
			return fmt.Errorf("verdict clean without a clean audit")
		}
		if r.Sandbox.Unsandboxed {
			return fmt.Errorf("verdict clean for an unsandboxed run")
		}
		if r.Sandbox.Network == "host" || r.Spec.Network == "host" {
			return fmt.Errorf("verdict clean for a run with the host network")
		}
	}
	if r.Verdict == VerdictFlagged && len(r.Flags) == 0 {
		return fmt.Errorf("verdict flagged without flags")
	}
	if r.Verdict != VerdictFlagged && len(r.Flags) > 0 {
		return fmt.Errorf("flags %v with verdict %s", r.Flags, r.Verdict)
	}
	for _, name := range Stages {
		if st := r.Stages[name]; st.Status == StatusSkipped && st.Reason == "" {
			return fmt.Errorf("stage %s skipped without a reason", name)
		}
	}
	if r.Stages[StageAudit].Status != StatusDone && r.Verdict != VerdictUnverified {
		return fmt.Errorf("verdict %s although the audit did not run", r.Verdict)
	}
	if s := r.Solve; s != nil && (s.EndReason == EndLimit) != (s.Limit != "") {
		return fmt.Errorf("solve: end_reason %s with limit %q (a limit is named exactly when the solve ended at one)", s.EndReason, s.Limit)
	}
	if r.Score != nil && r.Evaluation == nil {
		return fmt.Errorf("score without an evaluation")
	}
	return nil
}
