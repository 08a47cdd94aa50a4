package campaign

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
)

// MaxFileBytes bounds a campaign file.
const MaxFileBytes = 1 << 20

// Defaults of the campaign file (docs/CAMPAIGN.md). The requeue caps are
// those `ptb campaign exec` uses without an exec.json.
const (
	fileMaxPreemptions = 10
	fileMaxTimeouts    = 3
	DefaultMaxSubmits  = 3
	// DefaultEvalAllowance is added to the solve budget in an allocation's
	// time limit: collect, audit and evaluate run in the same allocation.
	DefaultEvalAllowance = time.Hour
)

// Baseline kinds: eval-only jobs of the paper's reference scores.
const (
	BaselineZeroShot = "zero-shot" // the base model itself, zero-shot
	BaselineFewShot  = "few-shot"  // the base model with the benchmark's few-shot prompt
	BaselineInstruct = "instruct"  // the base model's official instruct counterpart
)

// File is a parsed and checked campaign file.
type File struct {
	Path string // absolute path of the file
	Data []byte // its bytes, copied to the campaign directory by up

	Name       string
	Out        string // absolute output root
	Registry   string // absolute registry override file, "" for the built-in one
	Agents     []Agent
	BaseModels []string
	Benchmarks []string
	Seeds      []int
	Include    []Pattern // cells added to the matrix (every field given)
	Exclude    []Pattern // cells removed from the matrix (fields left out match all)
	Baselines  *Baselines
	Run        RunSettings
	Resources  Resources // GPUs and TimeLimit filled from Run
	Limits     Limits
	Retry      Retry
	Secrets    []string // environment variable names forwarded to allocations

	ExecutorName     string
	ExecutorSettings *yaml.Node

	lines map[string]int // field path -> line, for errors found after parsing
}

// Agent is one method of the study: a scaffold with its model, and the
// extra `ptb run` flags of a variant.
type Agent struct {
	Name        string   // short name used by include/exclude and per-agent caps
	Scaffold    string   // claude, codex, gemini, opencode, scripted
	Model       string   // the agent model string
	Label       string   // method label for reports
	Args        []string // variant flags appended to the cell's `ptb run` arguments
	MaxParallel int      // per-agent cap on running jobs (0: none)
	line        int
}

// Pattern selects cells for include and exclude.
type Pattern struct {
	Agent, BaseModel, Benchmark string
	Seed                        *int
	line                        int
}

// Baselines are eval-only jobs: `ptb eval` of the base model (zero-shot)
// or its instruct counterpart on each benchmark, once per base model.
type Baselines struct {
	Kinds     []string
	ModelsDir string // absolute: the model of hub id ORG/NAME is ModelsDir/ORG/NAME
	Backend   string // ptb eval --backend (vllm, hf)
	Args      []string
}

// RunSettings become `ptb run` flags of every cell.
type RunSettings struct {
	Hours   float64
	GPUs    int
	Network string
	Sandbox string
	Eval    EvalSettings
	DataDir string // absolute
	Script  string // absolute (scripted agent)
	Args    []string
}

// EvalSettings are the evaluation backend and its flags.
type EvalSettings struct {
	Backend   string
	Version   string
	Responses string // absolute (replay)
	BaseURL   string
	Limit     int
}

// Limits cap what runs at once and what one run may spend.
type Limits struct {
	MaxParallel int
	SpendCapUSD float64
}

// Retry caps requeues (counted by ptb campaign exec) and submissions
// (counted by up) of one run.
type Retry struct {
	MaxPreemptions int
	MaxTimeouts    int
	MaxSubmits     int
}

// raw* mirror the file; yaml tags are the allowed fields.
type rawFile struct {
	Name       string               `yaml:"name"`
	Out        string               `yaml:"out"`
	Registry   string               `yaml:"registry"`
	Agents     []rawAgent           `yaml:"agents"`
	BaseModels []string             `yaml:"base_models"`
	Benchmarks []string             `yaml:"benchmarks"`
	Seeds      []int                `yaml:"seeds"`
	Include    []rawCell            `yaml:"include"`
	Exclude    []rawCell            `yaml:"exclude"`
	Baselines  *rawBaselines        `yaml:"baselines"`
	Run        rawRun               `yaml:"run"`
	Resources  rawResources         `yaml:"resources"`
	Limits     rawLimits            `yaml:"limits"`
	Retry      rawRetry             `yaml:"retry"`
	Secrets    []string             `yaml:"secrets"`
	Executor   map[string]yaml.Node `yaml:"executor"`
}

type rawAgent struct {
	Name        string   `yaml:"name"`
	Scaffold    string   `yaml:"scaffold"`
	Model       string   `yaml:"model"`
	Label       string   `yaml:"label"`
	Args        []string `yaml:"args"`
	MaxParallel int      `yaml:"max_parallel"`
}

type rawCell struct {
	Agent     string `yaml:"agent"`
	BaseModel string `yaml:"base_model"`
	Benchmark string `yaml:"benchmark"`
	Seed      *int   `yaml:"seed"`
}

type rawBaselines struct {
	Kinds     []string `yaml:"kinds"`
	ModelsDir string   `yaml:"models_dir"`
	Backend   string   `yaml:"backend"`
	Args      []string `yaml:"args"`
}

type rawRun struct {
	Hours   float64  `yaml:"hours"`
	GPUs    *int     `yaml:"gpus"`
	Network string   `yaml:"network"`
	Sandbox string   `yaml:"sandbox"`
	Eval    rawEval  `yaml:"eval"`
	DataDir string   `yaml:"data_dir"`
	Script  string   `yaml:"script"`
	Args    []string `yaml:"args"`
}

type rawEval struct {
	Backend   string `yaml:"backend"`
	Version   string `yaml:"version"`
	Responses string `yaml:"responses"`
	BaseURL   string `yaml:"base_url"`
	Limit     int    `yaml:"limit"`
}

type rawResources struct {
	CPUs      int    `yaml:"cpus"`
	Memory    string `yaml:"memory"`
	Disk      string `yaml:"disk"`
	TimeLimit string `yaml:"time_limit"`
}

type rawLimits struct {
	MaxParallel int     `yaml:"max_parallel"`
	SpendCapUSD float64 `yaml:"spend_cap_usd"`
}

type rawRetry struct {
	MaxPreemptions *int `yaml:"max_preemptions"`
	MaxTimeouts    *int `yaml:"max_timeouts"`
	MaxSubmits     *int `yaml:"max_submits"`
}

// FileError is a problem in a campaign file, at a line and field.
type FileError struct {
	File  string
	Line  int // 0 when the field is absent
	Field string
	Msg   string
}

func (e *FileError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

var (
	nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`) })
	envRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	lineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+): `) })
)

// scaffolds are the agent names a job may use: the registry's (the
// built-in one, with the file's registry merged over it), sorted. A
// registry file that cannot be read is reported where it is used (Expand's
// caller); here the built-in registry stands in for it.
func (f *File) scaffolds() []string {
	reg, err := registry.Load(f.Registry)
	if err != nil {
		reg = registry.Default()
	}
	var names []string
	for _, a := range reg.Agents {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return names
}

// ParseFile reads and checks the campaign file at path.
func ParseFile(path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("read campaign file: %w", err)
	}
	defer fh.Close()
	data, err := readBounded(fh, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("read campaign file %s: %w", abs, err)
	}
	return Parse(data, abs)
}

func readBounded(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

// Parse checks a campaign file's bytes; path (absolute) names it in errors
// and anchors its relative paths.
func Parse(data []byte, path string) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlErr(path, err)
	}
	if len(doc.Content) == 0 {
		return nil, &FileError{File: path, Msg: "the file is empty; see docs/CAMPAIGN.md for its fields"}
	}
	root := doc.Content[0]
	f := &File{Path: path, Data: data, lines: map[string]int{}}
	if err := walkFields(root, reflect.TypeOf(rawFile{}), "", path, f.lines); err != nil {
		return nil, err
	}
	var raw rawFile
	if err := root.Decode(&raw); err != nil {
		return nil, yamlErr(path, err)
	}
	if err := f.fill(&raw, root); err != nil {
		return nil, err
	}
	return f, nil
}

// yamlErr turns a yaml error into "FILE:LINE: message".
func yamlErr(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if m := lineRE().FindStringSubmatchIndex(msg); m != nil && m[0] == 0 {
		line, _ := strconv.Atoi(msg[m[2]:m[3]])
		return &FileError{File: path, Line: line, Msg: strings.ReplaceAll(msg[m[1]:], "\n  ", "; ")}
	}
	return &FileError{File: path, Msg: msg}
}

// walkFields checks that every mapping key of n is a field of t (by yaml
// tag), recursively, and records the line of every field path.
func walkFields(n *yaml.Node, t reflect.Type, path, file string, lines map[string]int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t == reflect.TypeOf(yaml.Node{}) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &FileError{File: file, Line: n.Line, Field: path, Msg: "want a mapping of fields (" + strings.Join(tags(t), ", ") + ")"}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fieldByTag(t, k.Value)
			p := join(path, k.Value)
			if !ok {
				return &FileError{File: file, Line: k.Line, Field: p, Msg: "unknown field (allowed here: " + strings.Join(tags(t), ", ") + ")"}
			}
			if _, dup := lines[p]; dup {
				return &FileError{File: file, Line: k.Line, Field: p, Msg: fmt.Sprintf("given twice (first on line %d)", lines[p])}
			}
			lines[p] = k.Line
			if err := walkFields(v, ft, p, file, lines); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &FileError{File: file, Line: n.Line, Field: path, Msg: "want a list"}
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			if err := walkFields(c, t.Elem(), p, file, lines); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return &FileError{File: file, Line: n.Line, Field: path, Msg: "want a mapping"}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := join(path, k.Value)
			lines[p] = k.Line
			if err := walkFields(n.Content[i+1], t.Elem(), p, file, lines); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return &FileError{File: file, Line: n.Line, Field: path, Msg: "want a single value, not a list or mapping"}
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func tags(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

func fieldByTag(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

// errAt is a FileError at the line of field path.
func (f *File) errAt(field, format string, args ...any) error {
	return &FileError{File: f.Path, Line: f.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// line is the line of field path, or of the nearest enclosing field given.
func (f *File) line(field string) int {
	for p := field; p != ""; {
		if l, ok := f.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// abs resolves a path given in the file against the file's directory.
func (f *File) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(f.Path), p)
}

func (f *File) fill(r *rawFile, root *yaml.Node) error {
	f.Name = r.Name
	switch {
	case r.Name == "":
		return f.errAt("name", "required: the campaign's name ([a-z0-9-], at most 40 characters), e.g. name: paper-3seed")
	case !nameRE().MatchString(r.Name):
		return f.errAt("name", "%q: want lower-case letters, digits and '-', at most 40 characters, not starting or ending with '-'", r.Name)
	}
	if r.Out == "" {
		return f.errAt("out", "required: the output root shared by the harness and every allocation (run directories go to OUT/RUN_ID)")
	}
	f.Out = f.abs(r.Out)
	f.Registry = f.abs(r.Registry)

	if len(r.Agents) == 0 {
		return f.errAt("agents", "required: at least one agent (scaffold, model, label)")
	}
	scaffold := f.scaffolds()
	names := map[string]int{}
	for i, a := range r.Agents {
		p := fmt.Sprintf("agents[%d]", i)
		if !slices.Contains(scaffold, a.Scaffold) {
			return f.errAt(p+".scaffold", "%q: want one of %s", a.Scaffold, strings.Join(scaffold, ", "))
		}
		if a.Scaffold != "scripted" && a.Model == "" {
			return f.errAt(p+".model", "required for scaffold %s (e.g. claude-opus-4-6, gpt-5.1-codex:high)", a.Scaffold)
		}
		if a.MaxParallel < 0 {
			return f.errAt(p+".max_parallel", "%d: want 0 (no cap of its own) or a positive count", a.MaxParallel)
		}
		name := a.Name
		if name == "" {
			name = slugName(a.Scaffold + "-" + a.Model)
			if len(a.Args) > 0 {
				return f.errAt(p+".name", "required for an agent with args (a variant): its run ids carry the name, e.g. name: opus-reprompt")
			}
		} else if !nameRE().MatchString(name) {
			return f.errAt(p+".name", "%q: want lower-case letters, digits and '-', at most 40 characters", name)
		}
		if j, dup := names[name]; dup {
			return f.errAt(p, "agent %q is declared twice (also agents[%d]); give variants distinct names", name, j)
		}
		names[name] = i
		for j, arg := range a.Args {
			if err := checkRunArg(arg); err != nil {
				return f.errAt(fmt.Sprintf("%s.args[%d]", p, j), "%v", err)
			}
		}
		f.Agents = append(f.Agents, Agent{Name: name, Scaffold: a.Scaffold, Model: a.Model, Label: a.Label, Args: f.absArgs(a.Args), MaxParallel: a.MaxParallel, line: f.line(p)})
	}
	if len(r.BaseModels) == 0 {
		return f.errAt("base_models", "required: at least one base model (hub id or short name, e.g. qwen3-1.7b)")
	}
	if len(r.Benchmarks) == 0 {
		return f.errAt("benchmarks", "required: at least one benchmark (e.g. gsm8k)")
	}
	for _, l := range []struct {
		name string
		vs   []string
	}{{"base_models", r.BaseModels}, {"benchmarks", r.Benchmarks}} {
		seen := map[string]bool{}
		for i, v := range l.vs {
			if v == "" || seen[v] {
				return f.errAt(fmt.Sprintf("%s[%d]", l.name, i), "%q is empty or listed twice", v)
			}
			seen[v] = true
		}
	}
	f.BaseModels, f.Benchmarks = r.BaseModels, r.Benchmarks
	f.Seeds = r.Seeds
	if len(f.Seeds) == 0 {
		if _, given := f.lines["seeds"]; given {
			return f.errAt("seeds", "an empty list gives no cells; leave it out for seed 0 or list seeds, e.g. [0, 1, 2]")
		}
		f.Seeds = []int{0}
	}
	seen := map[int]bool{}
	for i, s := range f.Seeds {
		if s < 0 || seen[s] {
			return f.errAt(fmt.Sprintf("seeds[%d]", i), "%d is negative or listed twice", s)
		}
		seen[s] = true
	}
	for _, x := range []struct {
		name string
		raw  []rawCell
		out  *[]Pattern
	}{{"include", r.Include, &f.Include}, {"exclude", r.Exclude, &f.Exclude}} {
		for i, c := range x.raw {
			p := fmt.Sprintf("%s[%d]", x.name, i)
			if c.Agent != "" {
				if _, ok := names[c.Agent]; !ok {
					return f.errAt(p+".agent", "%q is no agent of this file (agents: %s)", c.Agent, strings.Join(sortedKeys(names), ", "))
				}
			}
			if x.name == "include" && (c.Agent == "" || c.BaseModel == "" || c.Benchmark == "" || c.Seed == nil) {
				return f.errAt(p, "an included cell needs agent, base_model, benchmark and seed")
			}
			if c.Agent == "" && c.BaseModel == "" && c.Benchmark == "" && c.Seed == nil {
				return f.errAt(p, "an empty pattern would exclude every cell; give agent, base_model, benchmark or seed")
			}
			*x.out = append(*x.out, Pattern{Agent: c.Agent, BaseModel: c.BaseModel, Benchmark: c.Benchmark, Seed: c.Seed, line: f.line(p)})
		}
	}
	if err := f.fillRun(r); err != nil {
		return err
	}
	if err := f.fillBaselines(r.Baselines); err != nil {
		return err
	}
	if err := f.fillResources(&r.Resources); err != nil {
		return err
	}
	if r.Limits.MaxParallel < 0 {
		return f.errAt("limits.max_parallel", "%d: want 0 (no cap) or a positive count", r.Limits.MaxParallel)
	}
	if !(r.Limits.SpendCapUSD >= 0) || math.IsInf(r.Limits.SpendCapUSD, 0) {
		return f.errAt("limits.spend_cap_usd", "%g: want a positive amount in USD (0: no cap)", r.Limits.SpendCapUSD)
	}
	f.Limits = Limits{MaxParallel: r.Limits.MaxParallel, SpendCapUSD: r.Limits.SpendCapUSD}
	f.Retry = Retry{MaxPreemptions: fileMaxPreemptions, MaxTimeouts: fileMaxTimeouts, MaxSubmits: DefaultMaxSubmits}
	for _, x := range []struct {
		name string
		v    *int
		out  *int
		min  int
	}{{"max_preemptions", r.Retry.MaxPreemptions, &f.Retry.MaxPreemptions, 0}, {"max_timeouts", r.Retry.MaxTimeouts, &f.Retry.MaxTimeouts, 0}, {"max_submits", r.Retry.MaxSubmits, &f.Retry.MaxSubmits, 1}} {
		if x.v == nil {
			continue
		}
		if *x.v < x.min {
			return f.errAt("retry."+x.name, "%d: want at least %d", *x.v, x.min)
		}
		*x.out = *x.v
	}
	for i, s := range r.Secrets {
		p := fmt.Sprintf("secrets[%d]", i)
		if strings.Contains(s, "=") {
			return f.errAt(p, "give the variable's name only, never its value: set it in the environment of `ptb campaign up` and of the allocations, where only ptb's gateway reads it")
		}
		if !envRE().MatchString(s) {
			return f.errAt(p, "%q is not an environment variable name (want e.g. ANTHROPIC_API_KEY); values never go in this file", s)
		}
		if slices.Contains(f.Secrets, s) {
			return f.errAt(p, "%s is listed twice", s)
		}
		f.Secrets = append(f.Secrets, s)
	}
	switch len(r.Executor) {
	case 0:
		return f.errAt("executor", "required: exactly one executor, e.g. executor: {local: {gpus: [0, 1]}} (registered: %s)", strings.Join(Executors(), ", "))
	case 1:
	default:
		return f.errAt("executor", "give exactly one executor, not %d (registered: %s)", len(r.Executor), strings.Join(Executors(), ", "))
	}
	for name := range r.Executor {
		if _, ok := Lookup(name); !ok {
			return f.errAt("executor."+name, "unknown executor (registered: %s)", strings.Join(Executors(), ", "))
		}
		f.ExecutorName = name
	}
	// The settings node, with its lines, for the executor's Factory.
	for _, ex := range mapValue(root, "executor") {
		f.ExecutorSettings = ex
	}
	if f.ExecutorSettings != nil && f.ExecutorSettings.Tag == "!!null" {
		f.ExecutorSettings = nil
	}
	return nil
}

// mapValue returns the values of mapping n's key (the one value, as a
// one-element map value list of the executor mapping).
func mapValue(n *yaml.Node, key string) []*yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			m := n.Content[i+1]
			var out []*yaml.Node
			for j := 1; j < len(m.Content); j += 2 {
				out = append(out, m.Content[j])
			}
			return out
		}
	}
	return nil
}

func (f *File) fillRun(r *rawFile) error {
	run := r.Run
	if !(run.Hours >= 0 && run.Hours <= 1000) {
		return f.errAt("run.hours", "%g: want hours in (0, 1000] (fractions allowed: 0.003 = 11 s)", run.Hours)
	}
	if _, given := f.lines["run.hours"]; given && run.Hours == 0 {
		return f.errAt("run.hours", "0: want a positive budget in hours (leave it out for the paper's %d)", job.DefaultHours)
	}
	f.Run.Hours = run.Hours
	if f.Run.Hours == 0 {
		f.Run.Hours = job.DefaultHours
	}
	f.Run.GPUs = 1
	if run.GPUs != nil {
		if *run.GPUs < 0 || *run.GPUs > 64 {
			return f.errAt("run.gpus", "%d: want the GPUs per job, 0 to 64", *run.GPUs)
		}
		f.Run.GPUs = *run.GPUs
	}
	switch run.Network {
	case "", "none", "gateway", "host":
	default:
		return f.errAt("run.network", "%q: want gateway, none or host", run.Network)
	}
	switch run.Sandbox {
	case "", "bwrap", "none":
	default:
		return f.errAt("run.sandbox", "%q: want bwrap or none", run.Sandbox)
	}
	f.Run.Network, f.Run.Sandbox = run.Network, run.Sandbox
	e := run.Eval
	switch e.Backend {
	case "", "vllm", "hf", "url", "replay", "none":
	default:
		return f.errAt("run.eval.backend", "%q: want vllm, hf, url, replay or none", e.Backend)
	}
	if e.Backend == "replay" && e.Responses == "" {
		return f.errAt("run.eval.responses", "required with backend replay: the recorded completions (JSONL)")
	}
	if e.Backend == "url" && e.BaseURL == "" {
		return f.errAt("run.eval.base_url", "required with backend url: an OpenAI-compatible endpoint")
	}
	if e.Limit < 0 {
		return f.errAt("run.eval.limit", "%d: want 0 (the full benchmark) or a positive count", e.Limit)
	}
	f.Run.Eval = EvalSettings{Backend: e.Backend, Version: e.Version, Responses: f.abs(e.Responses), BaseURL: e.BaseURL, Limit: e.Limit}
	f.Run.DataDir = f.abs(run.DataDir)
	f.Run.Script = f.abs(run.Script)
	for _, a := range f.Agents {
		if a.Scaffold == "scripted" && f.Run.Script == "" {
			return f.errAt("run.script", "required: agent %s uses the scripted scaffold, which needs a script", a.Name)
		}
	}
	for j, arg := range run.Args {
		if err := checkRunArg(arg); err != nil {
			return f.errAt(fmt.Sprintf("run.args[%d]", j), "%v", err)
		}
	}
	f.Run.Args = f.absArgs(run.Args)
	return nil
}

// pathFlags are the `ptb run` flags whose value is a path: in the file's
// args a relative one is relative to the file, as every path of the file.
var pathFlags = []string{"--script", "--credentials", "--ro", "--eval-responses", "--data-dir", "--agents-prefix"}

// absArgs makes the values of path flags absolute.
func (f *File) absArgs(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	out := slices.Clone(args)
	for i, a := range out {
		if name, v, ok := strings.Cut(a, "="); ok && slices.Contains(pathFlags, name) {
			out[i] = name + "=" + f.abs(v)
		} else if slices.Contains(pathFlags, a) && i+1 < len(out) {
			out[i+1] = f.abs(out[i+1])
		}
	}
	return out
}

// Flags the engine sets itself from the file; args may not give them.
var ownFlags = []string{"agent", "agent-model", "base-model", "benchmark", "seed", "out", "run-id", "gpus", "resume", "redo", "registry", "label", "json"}

func checkRunArg(arg string) error {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	if strings.HasPrefix(arg, "-") && slices.Contains(ownFlags, name) {
		return fmt.Errorf("%s is set by the campaign itself (from agents, base_models, benchmarks, seeds, out, registry or the executor); remove it here", arg)
	}
	return nil
}

func (f *File) fillBaselines(b *rawBaselines) error {
	if b == nil {
		return nil
	}
	if len(b.Kinds) == 0 {
		return f.errAt("baselines.kinds", "required: which baselines to evaluate (%s, %s)", BaselineZeroShot, BaselineInstruct)
	}
	for i, k := range b.Kinds {
		p := fmt.Sprintf("baselines.kinds[%d]", i)
		switch k {
		case BaselineZeroShot, BaselineInstruct:
		case BaselineFewShot:
			return f.errAt(p, "few-shot: ptb eval has no few-shot mode yet, so a few-shot baseline cannot be run; the report takes few-shot reference scores from its baselines file (--baselines)")
		default:
			return f.errAt(p, "%q: want %s or %s", k, BaselineZeroShot, BaselineInstruct)
		}
		if slices.Contains(b.Kinds[:i], k) {
			return f.errAt(p, "%s is listed twice", k)
		}
	}
	if b.ModelsDir == "" {
		return f.errAt("baselines.models_dir", "required: the directory holding the reference models, each at MODELS_DIR/ORG/NAME (its hub id)")
	}
	switch b.Backend {
	case "", "vllm", "hf":
	default:
		return f.errAt("baselines.backend", "%q: want vllm or hf (ptb eval serves the model itself)", b.Backend)
	}
	for j, arg := range b.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if strings.HasPrefix(arg, "-") && slices.Contains([]string{"task", "model", "base-model", "out", "backend", "registry"}, name) {
			return f.errAt(fmt.Sprintf("baselines.args[%d]", j), "%s is set by the campaign itself; remove it here", arg)
		}
	}
	backend := b.Backend
	if backend == "" {
		backend = "vllm"
	}
	f.Baselines = &Baselines{Kinds: b.Kinds, ModelsDir: f.abs(b.ModelsDir), Backend: backend, Args: b.Args}
	return nil
}

func (f *File) fillResources(r *rawResources) error {
	if r.CPUs < 0 {
		return f.errAt("resources.cpus", "%d: want a positive count (0: the scheduler's default)", r.CPUs)
	}
	f.Resources.CPUs = r.CPUs
	for _, x := range []struct {
		name string
		v    string
		out  *int64
	}{{"memory", r.Memory, &f.Resources.MemoryMB}, {"disk", r.Disk, &f.Resources.DiskMB}} {
		if x.v == "" {
			continue
		}
		n, err := job.ParseSize(x.v)
		if err != nil || n <= 0 {
			return f.errAt("resources."+x.name, "%q: want a size such as 64G or 500M", x.v)
		}
		*x.out = (n + 1<<20 - 1) >> 20
	}
	f.Resources.GPUs = f.Run.GPUs
	budget := time.Duration(f.Run.Hours * float64(time.Hour))
	f.Resources.TimeLimit = budget + DefaultEvalAllowance + job.DefaultGrace
	if r.TimeLimit != "" {
		d, err := time.ParseDuration(r.TimeLimit)
		if err != nil || d <= 0 {
			return f.errAt("resources.time_limit", "%q: want a duration such as 11h30m", r.TimeLimit)
		}
		if d <= budget {
			return f.errAt("resources.time_limit", "%s is not above the solve budget (%s): collect, audit and evaluate run in the same allocation", d, budget)
		}
		f.Resources.TimeLimit = d
	}
	return nil
}

// NewExecutor makes the file's executor from its settings.
func (f *File) NewExecutor() (Executor, error) {
	fac, ok := Lookup(f.ExecutorName)
	if !ok {
		return nil, f.errAt("executor."+f.ExecutorName, "unknown executor (registered: %s)", strings.Join(Executors(), ", "))
	}
	ex, err := fac(f.ExecutorSettings)
	if err != nil {
		return nil, fmt.Errorf("%s: executor %s: %w", f.Path, f.ExecutorName, err)
	}
	return ex, nil
}

// Dir is the campaign's directory, OUT/.campaign/NAME.
func (f *File) Dir() string { return Dir(f.Out, f.Name) }

// Ref names the campaign for the executor.
func (f *File) Ref() Ref { return Ref{Campaign: f.Name, Dir: f.Dir()} }

func slugName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	dash := false
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
