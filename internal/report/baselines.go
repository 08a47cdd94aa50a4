package report

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// BaselinesFormat is the value of the format field of a baselines file.
const BaselinesFormat = "ptb.baselines/v1"

//go:embed baselines_default.yaml
var defaultBaselinesYAML []byte

// Baselines are the reference scores of the base models and their instruct
// counterparts, fractions in [0,1], and the benchmark weights derived from
// (or given with) them. The base models and benchmarks listed here define the
// leaderboard's matrix: a run on anything else is left out of the table.
type Baselines struct {
	Source        string
	Benchmarks    []string
	BaseModels    []BaseModel
	Weights       map[string]float64 // benchmark -> weight, sums to 1
	WeightsSource string             // "computed" (from instruct and zero-shot means) or "given"
}

// BaseModel holds one base model's reference scores, benchmark -> fraction.
// FewShot and Instruct may be nil when the file does not give them.
type BaseModel struct {
	ID            string // hub id, e.g. Qwen/Qwen3-1.7B-Base
	InstructModel string // hub id of the official instruct counterpart
	ZeroShot      map[string]float64
	FewShot       map[string]float64
	Instruct      map[string]float64
}

// PublishedWeights returns the paper's Table 5 weights (scripts/factors.json
// of the original), for reference and tests.
func PublishedWeights() map[string]float64 {
	return map[string]float64{
		"aime2025":         0.226536549919078,
		"arenahardwriting": 0.0903518275042778,
		"bfcl":             0.0746078457817324,
		"gpqamain":         0.22462215653948,
		"gsm8k":            0.0935882347031865,
		"healthbench":      0.184144830733019,
		"humaneval":        0.106148554819225,
	}
}

// DefaultBaselines returns the paper's published baselines, embedded in the
// binary. It panics only if the embedded file is broken, which a test rules out.
func DefaultBaselines() *Baselines {
	b, err := ParseBaselines(defaultBaselinesYAML, "built-in baselines")
	if err != nil {
		panic(err)
	}
	return b
}

// LoadBaselines reads a baselines file (YAML or JSON). Two shapes are
// accepted: ptb's (format: ptb.baselines/v1, see baselines_default.yaml) and
// the original's scripts/baselines.json ({"zeroshot": {...}, "fewshot": {...}}).
func LoadBaselines(path string) (*Baselines, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baselines: %w", err)
	}
	return ParseBaselines(data, path)
}

type baselinesFile struct {
	Format     string             `yaml:"format"`
	Source     string             `yaml:"source"`
	Benchmarks []string           `yaml:"benchmarks"`
	BaseModels yaml.Node          `yaml:"base_models"`
	Weights    map[string]float64 `yaml:"weights"`
	// The original's shape.
	ZeroShot map[string]map[string]float64 `yaml:"zeroshot"`
	FewShot  map[string]map[string]float64 `yaml:"fewshot"`
}

type baseModelFile struct {
	InstructModel string             `yaml:"instruct_model"`
	ZeroShot      map[string]float64 `yaml:"zero_shot"`
	FewShot       map[string]float64 `yaml:"few_shot"`
	Instruct      map[string]float64 `yaml:"instruct"`
}

// originalModels maps the original's short names to hub ids and instruct
// counterparts (scripts/compute_factors.py BASE_TO_INSTRUCT), in table order.
func originalModels() [][3]string {
	return [][3]string{
		{"Qwen3-1.7B-Base", "Qwen/Qwen3-1.7B-Base", "Qwen3-1.7B"},
		{"Qwen3-4B-Base", "Qwen/Qwen3-4B-Base", "Qwen3-4B"},
		{"SmolLM3-3B-Base", "HuggingFaceTB/SmolLM3-3B-Base", "SmolLM3-3B"},
		{"gemma-3-4b-pt", "google/gemma-3-4b-pt", "gemma-3-4b-it"},
	}
}

// DefaultBenchmarks returns the seven PostTrainBench benchmarks in table order.
func DefaultBenchmarks() []string {
	return []string{"aime2025", "arenahardwriting", "bfcl", "gpqamain", "gsm8k", "healthbench", "humaneval"}
}

// ParseBaselines decodes a baselines file; name is used in error messages.
func ParseBaselines(data []byte, name string) (*Baselines, error) {
	var f baselinesFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("baselines %s: %w", name, err)
	}
	b := &Baselines{Source: f.Source, Benchmarks: f.Benchmarks}
	switch {
	case f.ZeroShot != nil:
		if err := b.fromOriginal(f); err != nil {
			return nil, fmt.Errorf("baselines %s: %w", name, err)
		}
	case f.Format != BaselinesFormat:
		return nil, fmt.Errorf("baselines %s: format %q, want %q (or the original's baselines.json with a \"zeroshot\" key)", name, f.Format, BaselinesFormat)
	default:
		if err := b.fromPTB(f); err != nil {
			return nil, fmt.Errorf("baselines %s: %w", name, err)
		}
	}
	if len(b.Benchmarks) == 0 {
		b.Benchmarks = DefaultBenchmarks()
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("baselines %s: %w", name, err)
	}
	if f.Weights != nil {
		w, err := normaliseWeights(f.Weights, b.Benchmarks)
		if err != nil {
			return nil, fmt.Errorf("baselines %s: weights: %w", name, err)
		}
		b.Weights, b.WeightsSource = w, "given"
		return b, nil
	}
	w, err := b.ComputeWeights()
	if err != nil {
		return nil, fmt.Errorf("baselines %s: %w; add a weights map (benchmark: weight) or instruct scores for every base model", name, err)
	}
	b.Weights, b.WeightsSource = w, "computed"
	return b, nil
}

func (b *Baselines) fromPTB(f baselinesFile) error {
	n := &f.BaseModels
	if n.Kind == 0 {
		return fmt.Errorf("no base_models")
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("base_models: want a map of hub id to scores")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		id := n.Content[i].Value
		var m baseModelFile
		if err := n.Content[i+1].Decode(&m); err != nil {
			return fmt.Errorf("base_models.%s: %w", id, err)
		}
		b.BaseModels = append(b.BaseModels, BaseModel{ID: id, InstructModel: m.InstructModel,
			ZeroShot: m.ZeroShot, FewShot: m.FewShot, Instruct: m.Instruct})
	}
	return nil
}

func (b *Baselines) fromOriginal(f baselinesFile) error {
	b.Source = "the original's baselines.json"
	for _, om := range originalModels() {
		z, ok := f.ZeroShot[om[0]]
		if !ok {
			continue
		}
		b.BaseModels = append(b.BaseModels, BaseModel{ID: om[1],
			InstructModel: strings.Split(om[1], "/")[0] + "/" + om[2],
			ZeroShot:      z, FewShot: f.FewShot[om[0]], Instruct: f.ZeroShot[om[2]]})
	}
	if len(b.BaseModels) == 0 {
		return fmt.Errorf("zeroshot has none of the base models %s", shortNames())
	}
	return nil
}

func shortNames() string {
	var s []string
	for _, om := range originalModels() {
		s = append(s, om[0])
	}
	return strings.Join(s, ", ")
}

func (b *Baselines) check() error {
	if len(b.BaseModels) == 0 {
		return fmt.Errorf("no base models")
	}
	seen := map[string]bool{}
	for _, m := range b.BaseModels {
		if seen[m.ID] {
			return fmt.Errorf("base model %s listed twice", m.ID)
		}
		seen[m.ID] = true
		for _, bench := range b.Benchmarks {
			v, ok := m.ZeroShot[bench]
			if !ok {
				return fmt.Errorf("base model %s: zero_shot has no value for %s; every base model needs a zero-shot score per benchmark (it is the fallback)", m.ID, bench)
			}
			if err := checkFraction(v); err != nil {
				return fmt.Errorf("base model %s: zero_shot.%s: %w", m.ID, bench, err)
			}
		}
		for kind, scores := range map[string]map[string]float64{"few_shot": m.FewShot, "instruct": m.Instruct} {
			for bench, v := range scores {
				if err := checkFraction(v); err != nil {
					return fmt.Errorf("base model %s: %s.%s: %w", m.ID, kind, bench, err)
				}
			}
		}
	}
	return nil
}

func checkFraction(v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("%v is not a fraction in [0,1] (scores are fractions, not percent)", v)
	}
	return nil
}

func normaliseWeights(in map[string]float64, benchmarks []string) (map[string]float64, error) {
	sum := 0.0
	for _, bench := range benchmarks {
		v, ok := in[bench]
		if !ok {
			return nil, fmt.Errorf("no weight for %s", bench)
		}
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: weight %v must be positive", bench, v)
		}
		sum += v
	}
	for k := range in {
		if !slices.Contains(benchmarks, k) {
			return nil, fmt.Errorf("weight for %s, which is not among the benchmarks %v", k, benchmarks)
		}
	}
	out := make(map[string]float64, len(benchmarks))
	for _, bench := range benchmarks {
		out[bench] = in[bench] / sum
	}
	return out, nil
}

// ComputeWeights derives w_b proportional to 1/(instruct_b - base_b), where
// instruct_b and base_b are the means over the base models of the instruct
// and base zero-shot scores, normalised to sum to 1 (the original's
// scripts/compute_factors.py).
func (b *Baselines) ComputeWeights() (map[string]float64, error) {
	inv := map[string]float64{}
	for _, bench := range b.Benchmarks {
		var base, inst float64
		for _, m := range b.BaseModels {
			v, ok := m.Instruct[bench]
			if !ok {
				return nil, fmt.Errorf("base model %s: no instruct score for %s", m.ID, bench)
			}
			inst += v
			base += m.ZeroShot[bench]
		}
		n := float64(len(b.BaseModels))
		gap := inst/n - base/n
		if gap <= 0 {
			return nil, fmt.Errorf("%s: instruct mean %.4f does not exceed base mean %.4f, so its weight is undefined", bench, inst/n, base/n)
		}
		inv[bench] = 1 / gap
	}
	return normaliseWeights(inv, b.Benchmarks)
}

// ModelIndex finds a base model by hub id or by the name after the last "/",
// case-insensitively.
func (b *Baselines) ModelIndex(id string) (int, bool) {
	for i, m := range b.BaseModels {
		if m.ID == id {
			return i, true
		}
	}
	short := strings.ToLower(id[strings.LastIndex(id, "/")+1:])
	for i, m := range b.BaseModels {
		if strings.ToLower(m.ID[strings.LastIndex(m.ID, "/")+1:]) == short {
			return i, true
		}
	}
	return 0, false
}

// row returns the mean over base models of kind (zero_shot, few_shot,
// instruct) per benchmark, or false if some value is absent.
func (b *Baselines) row(kind string) (map[string]float64, bool) {
	out := map[string]float64{}
	for _, bench := range b.Benchmarks {
		sum := 0.0
		for _, m := range b.BaseModels {
			var scores map[string]float64
			switch kind {
			case "zero_shot":
				scores = m.ZeroShot
			case "few_shot":
				scores = m.FewShot
			default:
				scores = m.Instruct
			}
			v, ok := scores[bench]
			if !ok {
				return nil, false
			}
			sum += v
		}
		out[bench] = sum / float64(len(b.BaseModels))
	}
	return out, true
}
