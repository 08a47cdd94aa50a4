package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// EgressConfig configures the egress proxy.
type EgressConfig struct {
	// Allow lists the hosts the proxy lets through (nil: DefaultAllow()).
	// A host matching no Allow rule is refused.
	Allow []HostRule
	// Deny lists hosts refused even when an Allow rule matches (nil:
	// DefaultDeny()): the LLM providers' API hosts (only the LLM route may
	// call them) and the hub's hosts (only the hub route).
	Deny []HostRule
	// Dial connects to an allowed host (nil: a dialer that refuses
	// loopback, private, link-local and unspecified addresses after
	// resolving). Tests inject one that reaches httptest servers.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// HostRule matches hosts by name.
type HostRule struct {
	// Host is a host name or a glob over it (path.Match, case-insensitive):
	// "pypi.org", "*.githubusercontent.com". A "*." glob does not match the
	// bare domain.
	Host string `json:"host" yaml:"host"`
	// Ports limits the rule to these ports (empty: 80 and 443).
	Ports []int `json:"ports,omitempty" yaml:"ports,omitempty"`
	// Reason is logged, and told to the client when the rule denies.
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
}

type egressProxy struct {
	g     *Gateway
	allow []HostRule
	deny  []HostRule
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newEgressProxy(c EgressConfig, g *Gateway) (*egressProxy, error) {
	e := &egressProxy{g: g, allow: c.Allow, deny: c.Deny, dial: c.Dial}
	if e.allow == nil {
		e.allow = DefaultAllow()
	}
	if e.deny == nil {
		e.deny = DefaultDeny()
	}
	for _, r := range append(append([]HostRule(nil), e.allow...), e.deny...) {
		if _, err := matchGlob(r.Host, ""); err != nil || r.Host == "" {
			return nil, fmt.Errorf("egress rule %q: want a host name or glob", r.Host)
		}
	}
	return e, nil
}

// DefaultAllow is what post-training needs: the Python and npm package
// indexes, GitHub, PyTorch's wheels.
func DefaultAllow() []HostRule {
	return nil
}

// DefaultDeny is the LLM providers' API hosts and the hub's hosts.
func DefaultDeny() []HostRule {
	return nil
}

func (e *egressProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "ptb gateway: egress proxy not yet implemented", http.StatusNotImplemented)
}
