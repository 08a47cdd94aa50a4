// Package job defines a job spec (what to run) and derives its run id.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Spec is one job: an agent post-trains a base model for a benchmark.
type Spec struct {
	Agent      string  `json:"agent"`
	AgentModel string  `json:"agent_model"`
	BaseModel  string  `json:"base_model"` // hub id (resolved from a short name)
	Benchmark  string  `json:"benchmark"`
	Hours      float64 `json:"hours"`
	GPUs       []int   `json:"gpus"`
	Seed       int     `json:"seed"`
	OutRoot    string  `json:"out_root"`
	Label      string  `json:"label,omitempty"`
	// Registry is the registry override file the job was made with (an
	// absolute path), reused on resume.
	Registry string `json:"registry,omitempty"`

	Sandbox string          `json:"sandbox"` // bwrap | none
	Network sandbox.Network `json:"network"` // none | gateway | host
	Grace   time.Duration   `json:"grace_ns"`
	// PassEnv are host environment variables passed into the sandbox
	// (NAME or NAME=VALUE); nothing else from the host leaks in.
	PassEnv []string `json:"pass_env,omitempty"`
	// ReadOnly are extra host paths visible read-only in the sandbox
	// (e.g. a model cache).
	ReadOnly []string `json:"read_only,omitempty"`
	// Endpoint is the model endpoint: under the gateway network, the
	// upstream of the gateway's LLM route for the agent's provider;
	// otherwise injected into the agent CLI.
	Endpoint string `json:"endpoint,omitempty"`
	// Gateway configures the run's gateway (network gateway only).
	Gateway GatewaySpec `json:"gateway,omitzero"`
	// Credentials is a subscription credentials file for the agent CLI
	// (Claude OAuth, Codex auth.json, ...). It is copied into the sandbox's
	// HOME, and the run record warns that a secret entered the sandbox.
	Credentials string `json:"credentials,omitempty"`
	// Reprompt, when positive, relaunches an agent that exits with at least
	// this much time left, with the original's continuation prompt (the
	// paper's reprompt variants used 30 minutes). 0 turns it off.
	Reprompt time.Duration `json:"reprompt_ns,omitempty"`
	// Limits bound the agent's memory, processes, CPU, /tmp and disk.
	// Zero fields take the defaults (DefaultMemoryBytes, ...); a negative
	// one switches that limit off.
	Limits sandbox.Limits `json:"limits"`
	// Script is the scripted agent's script (scripted agent only).
	Script string `json:"script,omitempty"`

	Eval  EvalSpec  `json:"eval"`
	Judge JudgeSpec `json:"judge"`
	// Bounds caps collect, the raw trace and the audit stage (bounds.go).
	Bounds Bounds `json:"bounds"`
}

// JudgeSpec configures the paper's LLM judge in the audit stage. It runs
// only with an endpoint (or credentials); otherwise its finding is
// unverified, and so is the run.
type JudgeSpec struct {
	Agent    string        `json:"agent"` // default codex, as in the original
	Model    string        `json:"model"` // default gpt-5.1-codex
	Endpoint string        `json:"endpoint,omitempty"`
	Runs     int           `json:"runs"` // k runs, majority vote; default 1 as in the paper
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
}

// GatewaySpec configures the run's gateway beyond its defaults.
type GatewaySpec struct {
	// SpendCapUSD, when positive, is the most the agent's LLM traffic may
	// cost over the whole solve; past it the LLM route refuses requests.
	SpendCapUSD float64 `json:"spend_cap_usd,omitempty"`
	// AllowModels, when set, are the only models (names or globs) the
	// LLM route lets through.
	AllowModels []string `json:"allow_models,omitempty"`
	// HubEndpoint is the hub route's upstream ("": the public hub).
	HubEndpoint string `json:"hub_endpoint,omitempty"`
}

// SecretEnv reports whether a variable name looks like a credential
// (an API key, a token, a password), which must not be passed into the
// sandbox: the gateway holds real keys.
func SecretEnv(name string) bool {
	n := strings.ToUpper(name)
	for _, suf := range []string{"API_KEY", "_TOKEN", "SECRET", "PASSWORD", "_CREDENTIALS"} {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return n == "HF_TOKEN" || n == "HUGGING_FACE_HUB_TOKEN" || n == "GOOGLE_APPLICATION_CREDENTIALS"
}

// DefaultJudgeTimeout bounds one judge run.
const DefaultJudgeTimeout = 30 * time.Minute

// EvalSpec says how the evaluate stage runs.
type EvalSpec struct {
	Backend   string `json:"backend"`             // vllm | hf | url | replay | none
	Version   string `json:"version,omitempty"`   // task version, "" = default
	Responses string `json:"responses,omitempty"` // replay backend
	BaseURL   string `json:"base_url,omitempty"`  // url backend
	Limit     int    `json:"limit,omitempty"`     // 0 = full benchmark
	DataDir   string `json:"data_dir,omitempty"`
}

// Defaults used when a field is left empty.
const (
	DefaultHours = 10
	DefaultGrace = 30 * time.Second
)

// Normalize fills defaults and resolves names against reg, returning an
// error naming the bad field and what is allowed.
func (s *Spec) Normalize(reg *registry.Registry) error {
	if s.Agent == "" {
		var names []string
		for _, a := range reg.Agents {
			names = append(names, a.Name)
		}
		slices.Sort(names)
		return fmt.Errorf("job: agent is required (one of %s)", strings.Join(names, ", "))
	}
	if _, err := reg.Agent(s.Agent); err != nil {
		return fmt.Errorf("job: agent: %w", err)
	}
	if s.BaseModel == "" {
		return fmt.Errorf("job: base model is required (--base-model, a hub id or short name, e.g. qwen3-1.7b)")
	}
	if s.Benchmark == "" {
		return fmt.Errorf("job: benchmark is required (--benchmark, e.g. gsm8k)")
	}
	m, err := reg.Model(s.BaseModel)
	if err != nil {
		return fmt.Errorf("job: base model: %w", err)
	}
	s.BaseModel = m.ID
	if _, err := reg.Benchmark(s.Benchmark); err != nil {
		return fmt.Errorf("job: benchmark: %w", err)
	}
	if s.Hours == 0 {
		s.Hours = DefaultHours
	}
	if !(s.Hours > 0 && s.Hours <= 1000) { // NaN fails too
		return fmt.Errorf("job: hours must be in (0, 1000], got %g", s.Hours)
	}
	if s.Grace == 0 {
		s.Grace = DefaultGrace
	}
	if s.Sandbox == "" {
		s.Sandbox = "bwrap"
	}
	normalizeLimits(&s.Limits)
	if s.Network == "" {
		// Every real agent reaches its model through the run's gateway;
		// the scripted agent needs no network unless its script does.
		s.Network = sandbox.NetworkGateway
		if s.Agent == "scripted" {
			s.Network = sandbox.NetworkNone
		}
	}
	if _, err := sandbox.ParseNetwork(string(s.Network)); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	if s.Network != sandbox.NetworkHost {
		// A real key in the sandbox would make the gateway pointless: the
		// agent could call the provider with it (or hand it on).
		for _, kv := range s.PassEnv {
			if k, _, _ := strings.Cut(kv, "="); SecretEnv(k) {
				return fmt.Errorf("job: --env %s: a credential must not enter the sandbox; set it in ptb's own environment, where only the run's gateway reads it (to debug with the key inside anyway, use --network host, which is never a clean run)", k)
			}
		}
	}
	if s.Gateway.SpendCapUSD < 0 {
		return fmt.Errorf("job: spend cap must be positive (USD), got %g", s.Gateway.SpendCapUSD)
	}
	if s.Eval.Backend == "" {
		s.Eval.Backend = "vllm"
	}
	switch s.Eval.Backend {
	case "vllm", "hf", "url", "replay", "none":
	default:
		return fmt.Errorf("job: eval backend must be vllm, hf, url, replay or none, got %q", s.Eval.Backend)
	}
	if s.Eval.Backend == "replay" && s.Eval.Responses == "" {
		return fmt.Errorf("job: eval backend replay needs a responses file")
	}
	if s.Eval.Backend == "url" && s.Eval.BaseURL == "" {
		return fmt.Errorf("job: eval backend url needs a base URL")
	}
	if s.Agent != "scripted" && s.AgentModel == "" {
		return fmt.Errorf("job: agent %s needs a model: pass --agent-model (e.g. %s)", s.Agent, exampleModels())
	}
	if s.Agent != "scripted" && s.Network == sandbox.NetworkNone && s.Sandbox != "none" {
		return fmt.Errorf("job: agent %s must reach its model API, which --network none forbids: use --network gateway (the default)", s.Agent)
	}
	if s.Agent == "scripted" && s.Script == "" {
		return fmt.Errorf("job: the scripted agent needs a script (--script FILE)")
	}
	if s.Judge.Agent == "" {
		s.Judge.Agent = "codex"
	}
	if s.Judge.Model == "" {
		s.Judge.Model = "gpt-5.1-codex"
	}
	if s.Judge.Runs == 0 {
		s.Judge.Runs = 1
	}
	if s.Judge.Runs < 0 || s.Judge.Runs%2 == 0 {
		return fmt.Errorf("job: judge runs must be odd and positive (a majority must exist), got %d", s.Judge.Runs)
	}
	if s.OutRoot == "" {
		s.OutRoot = "runs"
	}
	if err := s.Bounds.validate(); err != nil {
		return err
	}
	s.Bounds = s.Bounds.WithDefaults()
	// Paths are stored absolute, so that a resume from another directory
	// finds the same files.
	for _, p := range []*string{&s.OutRoot, &s.Script, &s.Credentials, &s.Registry, &s.Eval.Responses, &s.Eval.DataDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return fmt.Errorf("job: %s: %w", *p, err)
			}
			*p = abs
		}
	}
	for i, p := range s.ReadOnly {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("job: %s: %w", p, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("job: read-only path %s: %w", p, err)
		}
		s.ReadOnly[i] = abs
	}
	return nil
}

// exampleModels are --agent-model values to suggest: every registered
// agent's example, by agent name.
func exampleModels() string {
	var ex []string
	for _, i := range agentinfo.All() {
		if i.ExampleModel != "" {
			ex = append(ex, i.ExampleModel)
		}
	}
	if len(ex) == 0 {
		return "the model id the agent CLI takes"
	}
	return strings.Join(ex, ", ")
}

// Budget is the solve time budget.
func (s *Spec) Budget() time.Duration {
	return time.Duration(s.Hours * float64(time.Hour))
}

var unsafe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^A-Za-z0-9.-]+`) })

func slug(s string) string {
	s = unsafe().ReplaceAllString(strings.ToLower(s), "-")
	return strings.Trim(s, "-")
}

// RunID is the run's identity: the job's coordinates, then the UTC creation
// time, e.g. gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0_20261127T080102Z. It never
// changes once the run directory exists (resume keeps it).
func RunID(s Spec, reg *registry.Registry, created time.Time) string {
	return StableRunID(s, reg) + "_" + created.UTC().Format("20060102T150405Z")
}

// StableRunID is the run id without its creation time: the id of a
// campaign's cell, the same however often the cell is started
// (`ptb run --run-id`).
func StableRunID(s Spec, reg *registry.Registry) string {
	model := s.BaseModel
	if m, err := reg.Model(s.BaseModel); err == nil && m.Short != "" {
		model = m.Short
	}
	agent := s.Agent
	if s.AgentModel != "" {
		agent += "-" + slug(s.AgentModel)
	}
	return strings.Join([]string{
		slug(s.Benchmark), slug(model), agent, "s" + strconv.Itoa(s.Seed),
	}, "_")
}

// Hash is the sha256 (hex) of the normalized spec's JSON without what may
// change between starts of the same run: the GPUs (assigned when a run
// starts) and the output root. A campaign stores it per run id, so that an
// edited cell that would reuse an id is caught, and `ptb run --run-id`
// refuses to resume a run whose job differs.
func (s Spec) Hash() string {
	s.GPUs = nil
	s.OutRoot = ""
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("job: marshal spec: %v", err)) // a Spec is plain data
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
