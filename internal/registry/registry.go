// Package registry holds the base models, benchmarks and agents ptb knows,
// embedded in the binary (registry.yaml) and overridable from a user file.
package registry

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed registry.yaml
var builtin []byte

// Model is a base model the agent must post-train.
type Model struct {
	ID           string `yaml:"id" json:"id"`
	Short        string `yaml:"short" json:"short"`
	Instruct     string `yaml:"instruct" json:"instruct"`
	Template     string `yaml:"template" json:"template"`
	ToolTemplate string `yaml:"tool_template,omitempty" json:"tool_template,omitempty"`
	// WeightsSHA256 and InstructWeightsSHA256 pin the reference checkpoints
	// the audit compares final_model with: the sha256 of each file of the
	// model's (and its instruct counterpart's) hub snapshot that the audit
	// reads (*.safetensors, model.safetensors.index.json, config.json), by
	// file name. Empty: the audit records the digests on first use in its
	// pin file and holds later runs to them.
	WeightsSHA256         map[string]string `yaml:"weights_sha256,omitempty" json:"weights_sha256,omitempty"`
	InstructWeightsSHA256 map[string]string `yaml:"instruct_weights_sha256,omitempty" json:"instruct_weights_sha256,omitempty"`
}

// WeightPins returns the pinned sha256 digests of repo's reference files,
// found as a model or as the instruct counterpart of one, and false when
// the registry pins none.
func (r *Registry) WeightPins(repo string) (map[string]string, bool) {
	for _, m := range r.Models {
		if strings.EqualFold(m.ID, repo) && len(m.WeightsSHA256) > 0 {
			return m.WeightsSHA256, true
		}
		if strings.EqualFold(m.Instruct, repo) && len(m.InstructWeightsSHA256) > 0 {
			return m.InstructWeightsSHA256, true
		}
	}
	return nil, false
}

// Benchmark is a target benchmark.
type Benchmark struct {
	Name    string `yaml:"name" json:"name"`
	Display string `yaml:"display" json:"display"`
	Inspect bool   `yaml:"inspect" json:"inspect"`
	// Column is the leaderboard's column title (the paper's Table 1);
	// "" means Name.
	Column string `yaml:"column,omitempty" json:"column,omitempty"`
}

// Agent is an agent scaffold.
type Agent struct {
	Name         string `yaml:"name" json:"name"`
	CLI          string `yaml:"cli" json:"cli"`
	NPM          string `yaml:"npm,omitempty" json:"npm,omitempty"`
	PromptSuffix string `yaml:"prompt_suffix,omitempty" json:"prompt_suffix,omitempty"`
	Builtin      bool   `yaml:"builtin,omitempty" json:"builtin,omitempty"`
}

// HubDeny is a hub repository (or some of its files) the agent must not
// fetch: the gateway's hub route refuses it and the audit flags it.
type HubDeny struct {
	Repo string `yaml:"repo" json:"repo"`                     // ORG/NAME, or a glob over it (path.Match, case-insensitive)
	Type string `yaml:"type,omitempty" json:"type,omitempty"` // model | dataset | space; "" any
	// PathContains limits the rule to files whose path contains it.
	PathContains string `yaml:"path_contains,omitempty" json:"path_contains,omitempty"`
	Benchmark    string `yaml:"benchmark,omitempty" json:"benchmark,omitempty"` // whose test set it is
	Reason       string `yaml:"reason" json:"reason"`
}

// Registry is the set of known models, benchmarks and agents.
type Registry struct {
	Version    int         `yaml:"version"`
	Models     []Model     `yaml:"models"`
	Benchmarks []Benchmark `yaml:"benchmarks"`
	Agents     []Agent     `yaml:"agents"`
	HubDeny    []HubDeny   `yaml:"hub_deny"`
}

// HubDenyList returns the hub deny list: the instruct counterpart of every
// model, then the hub_deny entries (benchmark test sets).
func (r *Registry) HubDenyList() []HubDeny {
	var out []HubDeny
	for _, m := range r.Models {
		if m.Instruct != "" {
			out = append(out, HubDeny{Repo: m.Instruct, Type: "model", Reason: "instruct counterpart of " + m.ID})
		}
	}
	return append(out, r.HubDeny...)
}

// Default returns the built-in registry.
func Default() *Registry {
	r, err := parse(builtin, "built-in registry.yaml")
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return r
}

// Load returns the built-in registry with the entries of the file at path
// merged over it ("" means none).
func Load(path string) (*Registry, error) {
	r := Default()
	if path == "" {
		return r, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	o, err := parse(b, path)
	if err != nil {
		return nil, err
	}
	r.merge(o)
	return r, nil
}

func parse(b []byte, name string) (*Registry, error) {
	var r Registry
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w (see internal/registry/registry.yaml for the format)", name, err)
	}
	for i, m := range r.Models {
		if m.ID == "" || m.Template == "" {
			return nil, fmt.Errorf("%s: models[%d]: id and template are required", name, i)
		}
	}
	for i, b := range r.Benchmarks {
		if b.Name == "" || b.Display == "" {
			return nil, fmt.Errorf("%s: benchmarks[%d]: name and display are required", name, i)
		}
	}
	for i, a := range r.Agents {
		if a.Name == "" {
			return nil, fmt.Errorf("%s: agents[%d]: name is required", name, i)
		}
	}
	for i, d := range r.HubDeny {
		if d.Repo == "" || d.Reason == "" {
			return nil, fmt.Errorf("%s: hub_deny[%d]: repo and reason are required", name, i)
		}
		switch d.Type {
		case "", "model", "dataset", "space":
		default:
			return nil, fmt.Errorf("%s: hub_deny[%d]: type %q: want model, dataset, space or empty", name, i, d.Type)
		}
	}
	return &r, nil
}

func (r *Registry) merge(o *Registry) {
	for _, m := range o.Models {
		if i := slices.IndexFunc(r.Models, func(x Model) bool { return x.ID == m.ID }); i >= 0 {
			r.Models[i] = m
		} else {
			r.Models = append(r.Models, m)
		}
	}
	for _, b := range o.Benchmarks {
		if i := slices.IndexFunc(r.Benchmarks, func(x Benchmark) bool { return x.Name == b.Name }); i >= 0 {
			r.Benchmarks[i] = b
		} else {
			r.Benchmarks = append(r.Benchmarks, b)
		}
	}
	for _, a := range o.Agents {
		if i := slices.IndexFunc(r.Agents, func(x Agent) bool { return x.Name == a.Name }); i >= 0 {
			r.Agents[i] = a
		} else {
			r.Agents = append(r.Agents, a)
		}
	}
	for _, d := range o.HubDeny {
		same := func(x HubDeny) bool {
			return strings.EqualFold(x.Repo, d.Repo) && x.Type == d.Type && x.PathContains == d.PathContains
		}
		if i := slices.IndexFunc(r.HubDeny, same); i >= 0 {
			r.HubDeny[i] = d
		} else {
			r.HubDeny = append(r.HubDeny, d)
		}
	}
}

func indexOf[T any](xs []T, f func(T) bool) int {
	for i, x := range xs {
		if f(x) {
			return i
		}
	}
	return -1
}

// Model finds a base model by hub id or short name (case-insensitive).
func (r *Registry) Model(name string) (Model, error) {
	return find(r.Models, "base model", name, func(m Model) string { return m.ID },
		func(m Model) bool { return strings.EqualFold(m.ID, name) || strings.EqualFold(m.Short, name) })
}

// Benchmark finds a benchmark by name.
func (r *Registry) Benchmark(name string) (Benchmark, error) {
	return find(r.Benchmarks, "benchmark", name, func(b Benchmark) string { return b.Name },
		func(b Benchmark) bool { return b.Name == name })
}

// Agent finds an agent by name.
func (r *Registry) Agent(name string) (Agent, error) {
	return find(r.Agents, "agent", name, func(a Agent) string { return a.Name },
		func(a Agent) bool { return a.Name == name })
}

// find returns the entry of xs that match accepts, or an error naming what
// is known (sorted).
func find[T any](xs []T, kind, name string, key func(T) string, match func(T) bool) (T, error) {
	if i := slices.IndexFunc(xs, match); i >= 0 {
		return xs[i], nil
	}
	var names []string
	for _, x := range xs {
		names = append(names, key(x))
	}
	slices.Sort(names)
	var zero T
	return zero, fmt.Errorf("unknown %s %q; known: %s", kind, name, strings.Join(names, ", "))
}
