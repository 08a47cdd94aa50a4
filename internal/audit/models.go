package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// BaseModel is what the audit knows about one of the benchmark's base models.
type BaseModel struct {
	ID            string   // hub id, e.g. Qwen/Qwen3-1.7B-Base
	Instruct      string   // the official instruct counterpart
	Architectures []string // config.json "architectures"
	ModelType     string   // config.json "model_type"
}

// BaseModels returns the benchmark's four base models. The architectures
// and model types are those of the published config.json files (SmolLM3's
// checked against a public mirror of its config; Qwen3's and Gemma 3's from
// the transformers model classes); a config in the HF cache always wins.
func BaseModels() []BaseModel {
	return []BaseModel{
		{ID: "Qwen/Qwen3-1.7B-Base", Instruct: "Qwen/Qwen3-1.7B", Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3"},
		{ID: "Qwen/Qwen3-4B-Base", Instruct: "Qwen/Qwen3-4B", Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3"},
		{ID: "HuggingFaceTB/SmolLM3-3B-Base", Instruct: "HuggingFaceTB/SmolLM3-3B", Architectures: []string{"SmolLM3ForCausalLM"}, ModelType: "smollm3"},
		{ID: "google/gemma-3-4b-pt", Instruct: "google/gemma-3-4b-it", Architectures: []string{"Gemma3ForConditionalGeneration"}, ModelType: "gemma3"},
	}
}

// LookupBase returns the table entry for id (case-insensitive).
func LookupBase(id string) (BaseModel, bool) {
	for _, b := range BaseModels() {
		if strings.EqualFold(b.ID, id) {
			return b, true
		}
	}
	return BaseModel{}, false
}

// ModelConfig is the part of config.json the audit reads.
type ModelConfig struct {
	Architectures []string `json:"architectures"`
	ModelType     string   `json:"model_type"`
}

// maxConfig bounds config.json and tokenizer_config.json.
const maxConfig = 16 << 20

func readConfig(dir string) (*ModelConfig, error) {
	b, err := safeio.ReadFile(filepath.Join(dir, "config.json"), maxConfig)
	if err != nil {
		return nil, err
	}
	var c ModelConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, jsonpos.Error(filepath.Join(dir, "config.json"), b, 0, err)
	}
	return &c, nil
}

// HFCacheDirs returns the hub cache directories to search: explicit (the
// --hf-cache flag) if set, else $HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub; then extra (e.g. the run's own cache layer).
// Missing directories are left out.
func HFCacheDirs(explicit string, getenv func(string) string, extra ...string) []string {
	var c []string
	switch {
	case explicit != "":
		c = append(c, explicit)
	case getenv("HF_HUB_CACHE") != "":
		c = append(c, getenv("HF_HUB_CACHE"))
	case getenv("HF_HOME") != "":
		c = append(c, filepath.Join(getenv("HF_HOME"), "hub"))
	case getenv("HOME") != "":
		c = append(c, filepath.Join(getenv("HOME"), ".cache", "huggingface", "hub"))
	}
	c = append(c, extra...)
	return existingDirs(c...)
}

// existingDirs returns the directories of ds that exist, once each.
func existingDirs(ds ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		if st, err := os.Stat(d); err == nil && st.IsDir() && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// errNotCached is returned when a repo has no snapshot in any cache.
var errNotCached = errors.New("not in the hugging face cache")

// Snapshot returns the snapshot directory of a model repo in the standard
// cache layout models--ORG--NAME/snapshots/REV: the revision refs/main
// names, else the most recently modified snapshot. It returns an error
// wrapping errNotCached when none is found.
func Snapshot(caches []string, repo string) (string, error) {
	name := "models--" + strings.ReplaceAll(repo, "/", "--")
	for _, c := range caches {
		root := filepath.Join(c, name)
		if b, err := safeio.ReadFile(filepath.Join(root, "refs", "main"), 4096); err == nil {
			d := filepath.Join(root, "snapshots", strings.TrimSpace(string(b)))
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d, nil
			}
		}
		ents, err := os.ReadDir(filepath.Join(root, "snapshots"))
		if err != nil {
			continue
		}
		type snap struct {
			dir string
			mod int64
		}
		var ss []snap
		for _, e := range ents {
			if st, err := os.Stat(filepath.Join(root, "snapshots", e.Name())); err == nil && st.IsDir() {
				ss = append(ss, snap{filepath.Join(root, "snapshots", e.Name()), st.ModTime().UnixNano()})
			}
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].mod > ss[j].mod })
		if len(ss) > 0 {
			return ss[0].dir, nil
		}
	}
	if len(caches) == 0 {
		return "", fmt.Errorf("%s: %w (no Hugging Face cache directory exists here: give --hf-cache DIR or set HF_HUB_CACHE)", repo, errNotCached)
	}
	return "", fmt.Errorf("%s: %w (searched %s)", repo, errNotCached, strings.Join(caches, ", "))
}

// cachedSnap is a cached repo's snapshot and the cache it is in.
type cachedSnap struct{ snap, cache string }

// cachedRepos lists the model repos present in the caches ("ORG/NAME" ->
// snapshot), the first cache winning.
func cachedRepos(caches []string) map[string]cachedSnap {
	out := map[string]cachedSnap{}
	for _, c := range caches {
		ents, _ := os.ReadDir(c)
		for _, e := range ents {
			n, ok := strings.CutPrefix(e.Name(), "models--")
			if !ok {
				continue
			}
			repo := strings.Replace(n, "--", "/", 1)
			if _, dup := out[repo]; dup {
				continue
			}
			if d, err := Snapshot([]string{c}, repo); err == nil {
				out[repo] = cachedSnap{d, c}
			}
		}
	}
	return out
}
