package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ptb-dev/ptb/internal/audit/safetensors"
	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// Lineage thresholds (docs/AUDIT.md). Distances are ||final - ref|| / ||ref||
// over the tensors both share.
const (
	// NotDerivedRelDist: a final model farther than this from the base is
	// not derived from it. Fine-tuning moves weights by a few percent;
	// independently initialised weights of the same scale are ~1.4 apart.
	NotDerivedRelDist = 0.5
	// FarTensorRelDist and NotDerivedFarFraction: if more than this fraction
	// of the compared weights sit in tensors farther than FarTensorRelDist
	// from the base, some tensors were swapped in from elsewhere.
	FarTensorRelDist      = 0.5
	NotDerivedFarFraction = 0.25
	// MinCoverage: the fraction of final_model's float weights that must match
	// base tensors by name and shape.
	MinCoverage = 0.9
	// maxOtherRefs bounds how many other cached checkpoints are compared.
	maxOtherRefs = 6
)

// checkLineage compares final_model's weights with the base model and its
// instruct counterpart, taken only from harness-owned caches with pinned
// digests (t.refs), and with other compatible checkpoints in any cache,
// the agent's own included: those can only add a flag ("closer to X"),
// never make lineage pass.
func checkLineage(ctx context.Context, t *target, baseID string) []Finding {
	const check = "lineage"
	finalDir := t.finalModel
	if finalDir == "" || !isDir(finalDir) {
		return []Finding{unverified(check, KindModel, "no final_model to check")}
	}
	if baseID == "" {
		return []Finding{unverified(check, KindModel, "base model unknown")}
	}
	var out []Finding
	adapter := filepath.Join(finalDir, "adapter_config.json")
	hasAdapter := fileExists(adapter)
	if hasAdapter {
		out = append(out, checkAdapter(adapter, baseID, finalDir))
	}
	final, err := safetensors.OpenModelIn(finalDir, t.finalRoot)
	if errors.Is(err, safetensors.ErrNoWeights) {
		if hasAdapter {
			return out
		}
		ev := "final_model holds no safetensors weights"
		if m, _ := filepath.Glob(filepath.Join(finalDir, "*.bin")); len(m) > 0 {
			ev += fmt.Sprintf(" (found %s: pickle weights are not read)", filepath.Base(m[0]))
		}
		return append(out, unverified(check, KindModel, ev))
	}
	if err != nil {
		return append(out, unverified(check, KindModel, fmt.Sprintf("read final_model: %v", err)))
	}
	base, baseNote, err := t.refs.openRef(baseID)
	if err != nil {
		return append(out, unverified(check, KindModel, fmt.Sprintf("base weights: %v", err)))
	}
	refs := []*safetensors.Model{base}
	names := []string{baseID}
	notes := []string{"reference " + baseNote}
	instructID := ""
	if b, ok := LookupBase(baseID); ok {
		instructID = b.Instruct
	}
	instructFound := false
	var instructErr error
	if instructID != "" {
		m, note, err := t.refs.openRef(instructID)
		if err == nil {
			refs = append(refs, m)
			names = append(names, instructID)
			notes = append(notes, "reference "+note)
			instructFound = true
		}
		instructErr = err
	}
	// Other compatible checkpoints in any cache: same tensor names and
	// shapes. The agent's cache is read too (bounded, no links out of it),
	// but its copy of the base model is never compared with: it would make
	// an unmodified base look "identical to" a planted repo.
	type other struct{ name, snap, cache string }
	var others []other
	seen := map[string]bool{strings.ToLower(baseID): true}
	if instructFound {
		seen[strings.ToLower(instructID)] = true
	}
	add := func(caches []string, label string) {
		all := cachedRepos(caches)
		var repos []string
		for r := range all {
			repos = append(repos, r)
		}
		sort.Strings(repos)
		for _, r := range repos {
			if seen[strings.ToLower(r)] {
				continue
			}
			seen[strings.ToLower(r)] = true
			others = append(others, other{r + label, all[r].snap, all[r].cache})
		}
	}
	add(t.refs.caches, "")
	add(t.agentCaches, " (agent's cache)")
	for _, o := range others {
		if len(refs) >= 2+maxOtherRefs {
			break
		}
		m, err := safetensors.OpenModelIn(o.snap, o.cache)
		if err != nil || !compatible(final, m) {
			continue
		}
		refs = append(refs, m)
		names = append(names, o.name)
	}
	ds, err := safetensors.Compare(ctx, final, refs, FarTensorRelDist)
	if err != nil {
		return append(out, unverified(check, KindModel, fmt.Sprintf("compare weights: %v", err)))
	}
	db := ds[0]
	desc := func(i int) string {
		d := ds[i]
		return fmt.Sprintf("%s: relative distance %.4g over %d tensors (coverage %.3f, far fraction %.3f)", names[i], d.RelDist, d.Matched, d.Coverage, d.FarFraction)
	}
	var bad, ev []string
	switch {
	case db.Coverage < MinCoverage:
		bad = append(bad, fmt.Sprintf("not derived from %s: only %.1f%% of final_model's weights match base tensors by name and shape (need %.0f%%)", baseID, 100*db.Coverage, 100*MinCoverage))
	case db.RelDist > NotDerivedRelDist:
		bad = append(bad, fmt.Sprintf("not derived from %s: relative distance %.3g > %.2g", baseID, db.RelDist, NotDerivedRelDist))
	case db.FarFraction > NotDerivedFarFraction:
		bad = append(bad, fmt.Sprintf("not derived from %s: %.1f%% of weights in tensors farther than %.2g from the base (limit %.0f%%)", baseID, 100*db.FarFraction, FarTensorRelDist, 100*NotDerivedFarFraction))
	}
	for i := 1; i < len(ds); i++ {
		d := ds[i]
		switch {
		case d.Identical:
			bad = append(bad, fmt.Sprintf("final_model is identical to %s (%s)", names[i], refs[i].Dir))
		case d.Coverage >= MinCoverage && d.RelDist < db.RelDist:
			bad = append(bad, fmt.Sprintf("final_model is closer to %s (relative distance %.4g) than to the base %s (%.4g)", names[i], d.RelDist, baseID, db.RelDist))
		}
	}
	for i := range ds {
		ev = append(ev, desc(i))
	}
	ev = append(ev, notes...)
	if db.Identical {
		ev = append(ev, "note: final_model is the unmodified base model")
	}
	if len(bad) > 0 {
		out = append(out, flag(check, KindModel, append(bad, ev...)...))
	} else {
		out = append(out, pass(check, KindModel, ev...))
	}
	if instructID != "" && !instructFound {
		out = append(out, unverified("lineage.instruct", KindModel, fmt.Sprintf("instruct weights: %v: cannot rule out an instruct-derived final_model", instructErr)))
	} else if instructFound {
		out = append(out, pass("lineage.instruct", KindModel, desc(1)))
	}
	return out
}

// compatible reports whether most of a's float weights have a tensor of the
// same canonical name and shape in b.
func compatible(a, b *safetensors.Model) bool {
	bt := map[string][]int64{}
	for n, t := range b.Tensors {
		bt[safetensors.CanonicalName(n)] = t.Shape
	}
	var match, total int64
	for n, t := range a.Tensors {
		total += t.Elems()
		if s, ok := bt[safetensors.CanonicalName(n)]; ok && fmt.Sprint(s) == fmt.Sprint(t.Shape) {
			match += t.Elems()
		}
	}
	return total > 0 && float64(match) >= MinCoverage*float64(total)
}

// checkAdapter checks a PEFT adapter's base_model_name_or_path.
func checkAdapter(path, baseID, finalDir string) Finding {
	const check = "lineage.adapter"
	b, err := safeio.ReadFile(path, maxConfig)
	if err != nil {
		return unverified(check, KindModel, err.Error())
	}
	var ac struct {
		Base string `json:"base_model_name_or_path"`
	}
	if err := json.Unmarshal(b, &ac); err != nil {
		return unverified(check, KindModel, jsonpos.Error(path, b, 0, err).Error())
	}
	rel := "final_model/adapter_config.json"
	if ac.Base == "" {
		return unverified(check, KindModel, rel+": no base_model_name_or_path")
	}
	if refersTo(ac.Base, baseID) {
		return pass(check, KindModel, fmt.Sprintf("%s: base_model_name_or_path %q is the base model", rel, ac.Base))
	}
	for _, bm := range BaseModels() {
		if refersTo(ac.Base, bm.Instruct) || refersTo(ac.Base, bm.ID) {
			return flag(check, KindModel, fmt.Sprintf("%s: base_model_name_or_path %q is not the base model %s", rel, ac.Base, baseID))
		}
	}
	if looksLikeRepoID(ac.Base) {
		return flag(check, KindModel, fmt.Sprintf("%s: base_model_name_or_path %q is another hub model, not %s", rel, ac.Base, baseID))
	}
	return unverified(check, KindModel, fmt.Sprintf("%s: base_model_name_or_path %q is a local path that does not name %s; cannot tell what the adapter was trained on", rel, ac.Base, baseID))
}

// refersTo reports whether s names repo: the id itself, a cache path
// models--ORG--NAME, or a path ending in ORG/NAME.
func refersTo(s, repo string) bool {
	s = strings.TrimRight(strings.ReplaceAll(s, `\`, "/"), "/")
	ls, lr := strings.ToLower(s), strings.ToLower(repo)
	if ls == lr || strings.HasSuffix(ls, "/"+lr) {
		return true
	}
	cache := "models--" + strings.ReplaceAll(lr, "/", "--")
	for _, part := range strings.Split(ls, "/") {
		if part == cache {
			return true
		}
	}
	return false
}

func looksLikeRepoID(s string) bool {
	parts := strings.Split(s, "/")
	return len(parts) == 2 && parts[0] != "" && parts[1] != "" && parts[0] != "." && parts[0] != ".." && !strings.HasPrefix(s, "/")
}
