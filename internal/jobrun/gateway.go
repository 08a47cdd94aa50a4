package jobrun

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
	"github.com/ptb-dev/ptb/internal/trace"
)

// keyVars are the harness variables holding each provider's API key, in
// the order they are looked up.
var keyVars = map[string][]string{
	gateway.Anthropic: {"ANTHROPIC_API_KEY"},
	gateway.OpenAI:    {"OPENAI_API_KEY"},
	gateway.Gemini:    {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
}

// agentProvider is the LLM provider an agent CLI talks to, as the
// gateway's LLM route names it: what its adapter registered
// (agentinfo.Info.Provider), "" for an agent that calls no model.
func agentProvider(agent, model string) (string, error) {
	i, ok := agentinfo.Lookup(agent)
	if !ok || i.Provider == nil {
		return "", nil
	}
	return i.Provider(model)
}

// GatewayProviders returns the LLM route's providers for spec: the
// agent's provider with the harness's key (or subscription login), and
// the job's endpoint as its upstream. It fails, naming what to set, when
// there is no credential.
//
// The scripted agent uses no model; with an --endpoint (a test's model
// server) it stands in for any CLI, and all three routes serve it.
func GatewayProviders(spec job.Spec, getenv func(string) string) (map[string]gateway.Provider, error) {
	out := map[string]gateway.Provider{}
	if spec.Agent == "scripted" {
		if spec.Endpoint != "" {
			for _, name := range []string{gateway.Anthropic, gateway.OpenAI, gateway.Gemini} {
				p := gateway.Provider{Upstream: spec.Endpoint, Key: gateway.Placeholder}
				for _, v := range keyVars[name] {
					if k := getenv(v); k != "" {
						p.Key = k
						break
					}
				}
				out[name] = p
			}
		}
		return out, nil
	}
	name, err := agentProvider(spec.Agent, spec.AgentModel)
	if err != nil || name == "" {
		return out, err
	}
	p := gateway.Provider{Upstream: spec.Endpoint}
	for _, v := range keyVars[name] {
		if k := getenv(v); k != "" {
			p.Key = k
			break
		}
	}
	switch {
	case p.Key != "":
	case spec.Credentials != "" && (name == gateway.Anthropic || name == gateway.OpenAI):
		// The gateway holds the subscription login; the sandbox gets a
		// placeholder.
		p.OAuth = &gateway.OAuth{File: spec.Credentials}
	case spec.Endpoint != "":
		// A self-hosted or test upstream may need no key; the gateway
		// sends the placeholder.
		p.Key = gateway.Placeholder
	case spec.Credentials != "":
		return nil, fmt.Errorf("agent %s: the gateway cannot hold a %s credentials file (only Claude and Codex logins); set %s in ptb's environment", spec.Agent, spec.Agent, keyVars[name][0])
	default:
		return nil, fmt.Errorf("agent %s needs an API key for %s: set %s in ptb's environment (only the run's gateway reads it; the sandbox gets a placeholder), or pass --credentials with a subscription login", spec.Agent, name, keyVars[name][0])
	}
	out[name] = p
	return out, nil
}

// hubDeny is the hub route's deny list: the registry's (the instruct
// counterparts of the base models and the benchmarks' test sets).
func hubDeny(reg *registry.Registry) []gateway.DenyRule {
	var out []gateway.DenyRule
	for _, d := range reg.HubDenyList() {
		out = append(out, gateway.DenyRule{Repo: d.Repo, Type: d.Type, PathContains: d.PathContains, Reason: d.Reason})
	}
	return out
}

// RunGateway starts the per-run gateway in the ptb process
// (pipeline.Gateway).
type RunGateway struct {
	Reg    *registry.Registry
	Log    *slog.Logger
	Getenv func(string) string // the harness's environment (API keys, HF_TOKEN); nil: empty
}

func (rg RunGateway) Start(ctx context.Context, dir rundir.Dir, spec job.Spec, socket string) (pipeline.GatewaySession, error) {
	getenv := rg.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	providers, err := GatewayProviders(spec, getenv)
	if err != nil {
		return nil, err
	}
	spendCap := spec.Gateway.SpendCapUSD
	if spendCap > 0 {
		// The cap is over the whole solve: a resumed one has spent some.
		u, err := GatewayUsage(dir.Path(rundir.GatewayLLMLog))
		if err == nil && u.CostUSD != nil {
			// The gateway counts from zero: give it what is left. (With
			// nothing left its first request still passes; internal/gateway
			// would need the spend carried over to refuse it.)
			spendCap -= *u.CostUSD
			if spendCap <= 0 {
				spendCap = 1e-12
			}
		}
	}
	token := getenv("HF_TOKEN")
	if token == "" {
		token = getenv("HUGGING_FACE_HUB_TOKEN")
	}
	return serveGateway(gateway.Config{
		LogDir:        dir.Path(rundir.GatewayDir),
		Providers:     providers,
		AllowedModels: spec.Gateway.AllowModels,
		SpendCapUSD:   spendCap,
		Hub:           gateway.HubConfig{Upstream: spec.Gateway.HubEndpoint, Token: token, Deny: hubDeny(rg.Reg)},
		Logger:        rg.Log,
	}, socket)
}

// serveGateway starts a gateway serving on the unix socket at socket.
func serveGateway(cfg gateway.Config, socket string) (*gatewaySession, error) {
	g, err := gateway.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := relay.ListenUnix(socket)
	if err != nil {
		g.Close()
		return nil, err
	}
	go func() {
		if err := g.Serve(ln); err != nil && cfg.Logger != nil {
			cfg.Logger.Warn("gateway stopped serving", "err", err)
		}
	}()
	provider := ""
	if len(cfg.Providers) == 1 {
		for name := range cfg.Providers {
			provider = name
		}
	}
	return &gatewaySession{g: g, ln: ln, provider: provider}, nil
}

type gatewaySession struct {
	g        *gateway.Gateway
	ln       interface{ Close() error }
	provider string
}

func (s *gatewaySession) Env(base string) map[string]string { return s.g.Env(base) }

func (s *gatewaySession) Endpoint(base string) string {
	if s.provider == "" {
		return ""
	}
	return gateway.LLMEndpoint(base, s.provider)
}

func (s *gatewaySession) Close() error {
	err := s.g.Close()
	s.ln.Close()
	return err
}

// GatewayUsage sums the gateway's LLM log: what the agent's model traffic
// used and cost, as the gateway metered it from the responses.
func GatewayUsage(path string) (*result.Usage, error) {
	u := &result.Usage{PriceTable: trace.DefaultPrices().Version, Source: "gateway (" + rundir.GatewayLLMLog + ")"}
	var cost float64
	n, unpriced, bad := 0, 0, 0
	err := gateway.ReadLLMLog(path, func(rec gateway.LLMRecord, line int, lineErr error) error {
		if lineErr != nil {
			bad++
			return nil
		}
		if rec.Denied {
			return nil
		}
		n++
		u.InputTokens += rec.InputTok
		u.OutputTokens += rec.OutputTok
		u.CachedInputTokens += rec.CachedTok
		u.ReasoningTokens += rec.Reasoning
		switch {
		case rec.CostUSD != nil:
			cost += *rec.CostUSD
		case rec.InputTok+rec.OutputTok > 0:
			unpriced++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.CostUSD = &cost
	var notes []string
	if unpriced > 0 {
		u.CostUSD = nil
		notes = append(notes, fmt.Sprintf("%d requests of a model without a price", unpriced))
	}
	if bad > 0 {
		notes = append(notes, fmt.Sprintf("%d unreadable log lines", bad))
	}
	u.Source += fmt.Sprintf(", %d requests", n)
	if len(notes) > 0 {
		u.Source += "; " + strings.Join(notes, "; ")
	}
	return u, nil
}
