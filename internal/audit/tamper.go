package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/modelinfo"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// errSparse marks a file with holes where none is expected.
var errSparse = errors.New("sparse file")

// hashAgentFile returns the sha256 of a file the agent could have made:
// opened with safeio (no link, FIFO or device), refused if sparse, read
// no further than its allocated blocks.
func hashAgentFile(p string) (string, error) {
	f, fi, err := safeio.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if safeio.Sparse(fi) {
		return "", fmt.Errorf("%s: %w: %d bytes apparent, %d allocated", p, errSparse, fi.Size(), safeio.Allocated(fi))
	}
	h := sha256.New()
	if _, err := io.Copy(h, safeio.BoundedReader(f, fi)); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ProtectedManifest is RUN_DIR/protected.json, written at prepare.
type ProtectedManifest = rundir.Protected

// checkProtected compares the workspace's protected files with the
// manifest at manifestPath.
func checkProtected(workspace, manifestPath string) Finding {
	const check = "tamper.protected"
	if manifestPath == "" {
		return unverified(check, KindTamper, "no prepare-time manifest of protected files (bare workspace); pass --protected to check one")
	}
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		return unverified(check, KindTamper, fmt.Sprintf("read manifest %s: %v", manifestPath, err))
	}
	var m ProtectedManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return unverified(check, KindTamper, fmt.Sprintf("manifest %s: %v", manifestPath, err))
	}
	if len(m.Files) == 0 {
		return unverified(check, KindTamper, fmt.Sprintf("manifest %s lists no files", manifestPath))
	}
	if workspace == "" {
		return unverified(check, KindTamper, "no workspace to check")
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	var bad []string
	for _, n := range names {
		if filepath.IsAbs(n) || strings.HasPrefix(filepath.Clean(n), "..") {
			return unverified(check, KindTamper, fmt.Sprintf("manifest %s: path %q outside the workspace", manifestPath, n))
		}
		p := filepath.Join(workspace, n)
		if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeSymlink != 0 {
			bad = append(bad, fmt.Sprintf("%s: replaced by a symlink", n))
			continue
		}
		got, err := hashAgentFile(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			bad = append(bad, fmt.Sprintf("%s: deleted", n))
		case errors.Is(err, safeio.ErrNotRegular):
			bad = append(bad, fmt.Sprintf("%s: replaced by something that is not a regular file (%v)", n, err))
		case errors.Is(err, errSparse):
			bad = append(bad, fmt.Sprintf("%s: replaced by a sparse file (%v)", n, err))
		case err != nil:
			return unverified(check, KindTamper, fmt.Sprintf("%s: %v", n, err))
		case !strings.EqualFold(got, m.Files[n]):
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, prepare-time %s", n, got, m.Files[n]))
		}
	}
	if len(bad) > 0 {
		return flag(check, KindTamper, bad...)
	}
	return pass(check, KindTamper, fmt.Sprintf("%d protected files match %s", len(names), manifestPath))
}

// equivalentModelTypes are config.json model_type changes that are not a
// swap: Gemma 3 saved text-only. Anything else (qwen3 -> qwen2, smollm3 ->
// qwen2) changes the model class the evaluation server loads.
var equivalentModelTypes = map[string][]string{
	"gemma3": {"gemma3_text"},
}

// equivalentArchitectures are the architectures[0] changes that go with
// an equivalent model_type change.
var equivalentArchitectures = map[string][]string{
	"Gemma3ForConditionalGeneration": {"Gemma3ForCausalLM"},
}

func equivalent(table map[string][]string, base, got string) bool {
	if strings.EqualFold(base, got) {
		return true
	}
	for k, vs := range table {
		if !strings.EqualFold(k, base) {
			continue
		}
		for _, v := range vs {
			if strings.EqualFold(v, got) {
				return true
			}
		}
	}
	return false
}

// checkConfig compares final_model/config.json with the base model's
// architecture and model type. A model_type or architecture change outside
// the table of known equivalents (Gemma 3 saved text-only) is a swap of the
// model class and a flag, as is a change of the chat-template family the
// evaluation picks from architectures[0] (the SmolLM3 -> Qwen2 trick); a
// chat template that differs from the base model's is a note in the
// evidence, never a flag. The base config comes from the harness-owned
// reference cache, else ptb's table, never from the agent's cache.
func checkConfig(finalDir, baseID string, refs *refStore) Finding {
	const check = "tamper.config"
	if finalDir == "" || !isDir(finalDir) {
		return unverified(check, KindTamper, "no final_model to check")
	}
	want, source, err := baseConfig(baseID, refs)
	if err != nil {
		return unverified(check, KindTamper, err.Error())
	}
	got, err := readConfig(finalDir)
	if errors.Is(err, os.ErrNotExist) {
		if fileExists(filepath.Join(finalDir, "adapter_config.json")) {
			return pass(check, KindTamper, "final_model is an adapter without config.json: the base config applies")
		}
		return unverified(check, KindTamper, "final_model has no config.json")
	}
	if err != nil {
		return unverified(check, KindTamper, err.Error())
	}
	notes := chatTemplateNote(finalDir, baseID, refs)
	var swaps, diffs []string
	if !strings.EqualFold(got.ModelType, want.ModelType) {
		d := fmt.Sprintf("final_model/config.json model_type %q, base %s has %q (%s)", got.ModelType, baseID, want.ModelType, source)
		if equivalent(equivalentModelTypes, want.ModelType, got.ModelType) {
			diffs = append(diffs, d)
		} else {
			swaps = append(swaps, d+": not a known equivalent, the evaluation would load another model class")
		}
	}
	if !slices.Equal(got.Architectures, want.Architectures) {
		d := fmt.Sprintf("final_model/config.json architectures %v, base %s has %v (%s)", got.Architectures, baseID, want.Architectures, source)
		if len(got.Architectures) == 1 && len(want.Architectures) == 1 && equivalent(equivalentArchitectures, want.Architectures[0], got.Architectures[0]) {
			diffs = append(diffs, d)
		} else {
			swaps = append(swaps, d)
		}
	}
	// What matters most is the chat template the evaluation picks from
	// architectures[0].
	gotFam, wantFam := modelinfo.ArchitectureFamily(got.Architectures), modelinfo.ArchitectureFamily(want.Architectures)
	if gotFam != wantFam {
		swaps = append([]string{fmt.Sprintf("the evaluation would pick the %q chat template instead of the base model's %q", gotFam, wantFam)}, swaps...)
	}
	if len(swaps) > 0 {
		return flag(check, KindTamper, append(append(swaps, diffs...), notes...)...)
	}
	if len(diffs) > 0 {
		notes = append(notes, "note (known equivalent, same template family "+wantFam+"): "+strings.Join(diffs, "; "))
		return pass(check, KindTamper, notes...)
	}
	return pass(check, KindTamper, append([]string{fmt.Sprintf("architectures %v, model_type %q match the base (%s)", got.Architectures, got.ModelType, source)}, notes...)...)
}

func baseConfig(baseID string, refs *refStore) (*ModelConfig, string, error) {
	if baseID == "" {
		return nil, "", errors.New("base model unknown")
	}
	if refs != nil {
		if snap, root, _, err := refs.snapshot(baseID); err == nil {
			if b, err := readRefFile(snap, root, "config.json"); err == nil {
				var c ModelConfig
				if err := json.Unmarshal(b, &c); err == nil {
					return &c, filepath.Join(snap, "config.json"), nil
				}
			}
		}
	}
	if b, ok := LookupBase(baseID); ok {
		return &ModelConfig{Architectures: b.Architectures, ModelType: b.ModelType}, "ptb's table of base models", nil
	}
	return nil, "", fmt.Errorf("base model %s: config not in a harness-owned hugging face cache nor in ptb's table", baseID)
}

// readRefFile reads a small file of a reference snapshot, whose link must
// resolve inside the cache root.
func readRefFile(snap, root, name string) ([]byte, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(snap, name))
	if err != nil {
		return nil, err
	}
	rr, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	if !inRoot(real, rr) {
		return nil, fmt.Errorf("%s links outside the cache %s", filepath.Join(snap, name), root)
	}
	return safeio.ReadFile(real, maxConfig)
}

// chatTemplate returns the chat template of the tokenizer in dir, or "";
// read reads a file of dir by name.
func chatTemplate(read func(name string) ([]byte, error)) (string, error) {
	if b, err := read("chat_template.jinja"); err == nil {
		return string(b), nil
	}
	b, err := read("tokenizer_config.json")
	if err != nil {
		return "", nil
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &tc); err != nil {
		return "", jsonpos.Error("tokenizer_config.json", b, 0, err)
	}
	if len(tc.ChatTemplate) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(tc.ChatTemplate, &s) == nil {
		return s, nil
	}
	return string(tc.ChatTemplate), nil
}

func chatTemplateNote(finalDir, baseID string, refs *refStore) []string {
	got, err := chatTemplate(func(n string) ([]byte, error) { return safeio.ReadFile(filepath.Join(finalDir, n), maxConfig) })
	if err != nil {
		return []string{"note: final_model/" + err.Error() + " (chat template not compared; evaluation applies ptb's own template)"}
	}
	var snap, root string
	if refs != nil {
		snap, root, _, err = refs.snapshot(baseID)
	} else {
		err = errNoReference
	}
	if err != nil {
		if got != "" {
			return []string{"note: final_model carries a chat template; base tokenizer not in a harness-owned cache, not compared (evaluation applies ptb's own template)"}
		}
		return nil
	}
	if want, _ := chatTemplate(func(n string) ([]byte, error) { return readRefFile(snap, root, n) }); got != "" && got != want {
		return []string{"note: final_model's chat template differs from the base model's (not a flag: evaluation applies ptb's own template)"}
	}
	return nil
}

// maxCodeScan bounds how many entries of final_model checkCode looks at.
const maxCodeScan = 100000

// checkCode flags custom code in final_model: an auto_map in config.json
// or tokenizer_config.json, or any *.py file. No registry model needs
// custom code, and the evaluation server (vLLM with --trust-remote-code)
// would run it.
func checkCode(finalDir string) Finding {
	const check = "tamper.code"
	if finalDir == "" || !isDir(finalDir) {
		return unverified(check, KindTamper, "no final_model to check")
	}
	var bad []string
	for _, n := range []string{"config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"} {
		b, err := safeio.ReadFile(filepath.Join(finalDir, n), maxConfig)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return unverified(check, KindTamper, fmt.Sprintf("final_model/%s: %v", n, err))
		}
		var c map[string]json.RawMessage
		if err := json.Unmarshal(b, &c); err != nil {
			return unverified(check, KindTamper, jsonpos.Error("final_model/"+n, b, 0, err).Error())
		}
		if am, ok := c["auto_map"]; ok && string(am) != "null" && string(am) != "{}" {
			bad = append(bad, fmt.Sprintf("final_model/%s: auto_map %s (custom code the evaluation server would run)", n, clipText(string(am), 200)))
		}
	}
	seen := 0
	err := safeio.Walk(finalDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if seen++; seen > maxCodeScan {
			return fmt.Errorf("more than %d entries", maxCodeScan)
		}
		if !fi.IsDir() && strings.EqualFold(filepath.Ext(p), ".py") {
			rel, _ := filepath.Rel(finalDir, p)
			bad = append(bad, fmt.Sprintf("final_model/%s: python file (custom code the evaluation server would import)", filepath.ToSlash(rel)))
		}
		return nil
	})
	if err != nil && len(bad) == 0 {
		return unverified(check, KindTamper, fmt.Sprintf("walk final_model: %v", err))
	}
	if len(bad) > 0 {
		return flag(check, KindTamper, bad...)
	}
	return pass(check, KindTamper, "final_model holds no python files and no auto_map")
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
