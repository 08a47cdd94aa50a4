package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultHubUpstream is the public Hugging Face hub.
const DefaultHubUpstream = "https://huggingface.co"

// HubConfig configures the hub route.
type HubConfig struct {
	// Upstream is the hub's base URL ("": DefaultHubUpstream); a mirror or a
	// test server.
	Upstream string
	// Token is the harness's HF token, sent upstream as a Bearer token (never
	// to a CDN the hub redirects to, never into the sandbox).
	Token string
	// Deny lists the repos (and files) the route refuses with 403.
	Deny []DenyRule
}

// DenyRule refuses a hub repository, or some of its files.
type DenyRule struct {
	// Repo is ORG/NAME or a glob over it (path.Match, case-insensitive).
	Repo string `json:"repo" yaml:"repo"`
	// Type is model, dataset or space; "" matches every type.
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// PathContains, when set, limits the rule to files whose path contains
	// it (case-insensitive): {openai/gsm8k, dataset, "test"} refuses the
	// test split and lets metadata and the train split through. Without it
	// the whole repo is refused, metadata included.
	PathContains string `json:"path_contains,omitempty" yaml:"path_contains,omitempty"`
	// Reason is told to the agent and logged.
	Reason string `json:"reason" yaml:"reason"`
}

type hubRoute struct {
	g        *Gateway
	upstream *url.URL
	token    string
	deny     []DenyRule
}

func newHubRoute(c HubConfig, g *Gateway) (*hubRoute, error) {
	up := c.Upstream
	if up == "" {
		up = DefaultHubUpstream
	}
	u, err := url.Parse(strings.TrimSuffix(up, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub upstream %q: want an http(s) URL", up)
	}
	for i, d := range c.Deny {
		if d.Repo == "" || d.Reason == "" {
			return nil, fmt.Errorf("hub deny rule %d: repo and reason are required", i)
		}
		if _, err := matchGlob(d.Repo, ""); err != nil {
			return nil, fmt.Errorf("hub deny rule %d: repo %q: %w", i, d.Repo, err)
		}
		switch d.Type {
		case "", "model", "dataset", "space":
		default:
			return nil, fmt.Errorf("hub deny rule %d: type %q: want model, dataset, space or empty", i, d.Type)
		}
	}
	return &hubRoute{g: g, upstream: u, token: c.Token, deny: c.Deny}, nil
}

func (h *hubRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "ptb gateway: hub route not yet implemented", http.StatusNotImplemented)
}
