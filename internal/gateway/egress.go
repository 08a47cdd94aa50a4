package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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
	// Ports limits the rule to these ports (empty: 80 and 443 in an Allow
	// rule, every port in a Deny rule).
	Ports []int `json:"ports,omitempty" yaml:"ports,omitempty"`
	// Reason is logged, and told to the client when the rule denies.
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// Kind classes the hosts for the audit: HostLLM (an LLM provider's
	// API: trying it is the paper's "API use" cheat), HostHub, or "".
	Kind string `json:"kind,omitempty" yaml:"kind,omitempty"`
}

// Host kinds of the default deny rules.
const (
	HostLLM = "llm" // an LLM provider's API host
	HostHub = "hub" // a Hugging Face hub host
)

type egressProxy struct {
	g     *Gateway
	allow []HostRule
	deny  []HostRule
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	tr    *http.Transport
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
		for _, p := range r.Ports {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("egress rule %q: port %d out of range", r.Host, p)
			}
		}
	}
	if e.dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: publicOnly}
		e.dial = d.DialContext
	}
	e.tr = &http.Transport{Proxy: nil, DialContext: e.dial, DisableCompression: true, MaxIdleConnsPerHost: 16,
		IdleConnTimeout: 60 * time.Second, ResponseHeaderTimeout: 5 * time.Minute}
	return e, nil
}

const (
	reasonLLM = "an LLM provider's API: only the gateway's LLM route may call it"
	reasonHub = "the Hugging Face hub: only the gateway's hub route (HF_ENDPOINT) may reach it"
)

// DefaultAllow is what post-training needs: the Python and npm package
// indexes, GitHub, PyTorch's and NVIDIA's wheel indexes, conda.
func DefaultAllow() []HostRule {
	var out []HostRule
	for _, h := range []string{
		"pypi.org", "files.pythonhosted.org", "pypi.python.org",
		"download.pytorch.org", "pypi.nvidia.com",
		"registry.npmjs.org",
		"github.com", "*.github.com", "*.githubusercontent.com",
		"conda.anaconda.org", "repo.anaconda.com",
	} {
		out = append(out, HostRule{Host: h, Reason: "package index or source host"})
	}
	return out
}

// DefaultDeny is the LLM providers' API hosts (the paper's "API use"
// cheat) and the hub's hosts, on every port.
func DefaultDeny() []HostRule {
	var out []HostRule
	for _, h := range []string{
		"anthropic.com", "*.anthropic.com", "claude.ai", "*.claude.ai",
		"openai.com", "*.openai.com", "chatgpt.com", "*.chatgpt.com", "*.openai.azure.com",
		"generativelanguage.googleapis.com", "*aiplatform.googleapis.com", "cloudcode-pa.googleapis.com",
		"gemini.google.com", "oauth2.googleapis.com",
		"openrouter.ai", "*.openrouter.ai", "api.together.xyz", "api.together.ai", "api.groq.com",
		"api.mistral.ai", "api.deepseek.com", "api.fireworks.ai", "api.x.ai", "api.cohere.com", "api.cohere.ai",
		"*.aliyuncs.com", "bedrock-runtime.*.amazonaws.com", "api.perplexity.ai", "opencode.ai", "*.opencode.ai",
	} {
		out = append(out, HostRule{Host: h, Reason: reasonLLM, Kind: HostLLM})
	}
	for _, h := range []string{"huggingface.co", "*.huggingface.co", "hf.co", "*.hf.co", "*.xethub.hf.co"} {
		out = append(out, HostRule{Host: h, Reason: reasonHub, Kind: HostHub})
	}
	return out
}

// publicOnly refuses connections to addresses that are not public: the
// host's and the run's own networks are never reached through the proxy,
// whatever a name resolves to.
func publicOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress dial %s: %w", address, err)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("egress dial %s: not a public address", address)
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a) && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// decide applies the rules to host:port: deny rules first, then allow
// rules; no match is a deny.
func (e *egressProxy) decide(host string, port int) (allowed bool, rule, reason, kind string) {
	if _, err := netip.ParseAddr(host); err == nil {
		for _, r := range e.allow {
			if strings.EqualFold(r.Host, host) && portIn(r.Ports, port, false) {
				return true, "allow " + r.Host, r.Reason, r.Kind
			}
		}
		return false, "ip address", "an IP address; the proxy allows named hosts only", ""
	}
	for _, r := range e.deny {
		if ok, _ := matchGlob(r.Host, host); ok && portIn(r.Ports, port, true) {
			return false, "deny " + r.Host, r.Reason, r.Kind
		}
	}
	for _, r := range e.allow {
		if ok, _ := matchGlob(r.Host, host); ok {
			if portIn(r.Ports, port, false) {
				return true, "allow " + r.Host, r.Reason, r.Kind
			}
			return false, "allow " + r.Host, fmt.Sprintf("port %d is not allowed for %s", port, r.Host), r.Kind
		}
	}
	return false, "default deny", "not in the run's allow list", ""
}

func portIn(ports []int, p int, anyIfEmpty bool) bool {
	if len(ports) == 0 {
		return anyIfEmpty || p == 80 || p == 443
	}
	return slices.Contains(ports, p)
}

func (e *egressProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := e.g
	start := g.now()
	rec := &EgressRecord{Time: g.stamp(start), Method: r.Method}
	finish := func() {
		rec.DurationMS = ms(g.now().Sub(start))
		g.egressLog.write(rec)
	}
	refuse := func(status int, msg string) {
		rec.Status = status
		if rec.Reason == "" {
			rec.Reason = msg
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Ptb-Gateway", "denied")
		w.WriteHeader(status)
		io.WriteString(w, "ptb gateway: "+msg+"\n")
		finish()
	}
	var hostport string
	switch {
	case r.Method == http.MethodConnect:
		hostport = r.Host
	case r.URL.Scheme == "http":
		hostport = r.URL.Host
		if r.URL.Port() == "" {
			hostport = net.JoinHostPort(r.URL.Hostname(), "80")
		}
		rec.URL = r.URL.String()
	default:
		refuse(http.StatusBadRequest, fmt.Sprintf("scheme %q: the proxy takes CONNECT and plain http:// requests", r.URL.Scheme))
		return
	}
	host, ps, err := net.SplitHostPort(hostport)
	port, perr := strconv.Atoi(ps)
	if err != nil || perr != nil || port < 1 || port > 65535 || host == "" {
		refuse(http.StatusBadRequest, fmt.Sprintf("bad target %q: want host:port", hostport))
		return
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	rec.Host, rec.Port = host, port
	allowed, rule, reason, kind := e.decide(host, port)
	rec.Allowed, rec.Rule, rec.Kind = allowed, rule, kind
	if !allowed {
		rec.Reason = reason
		refuse(http.StatusForbidden, fmt.Sprintf("%s:%d is denied: %s (rule %q)", host, port, reason, rule))
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	if r.Method != http.MethodConnect {
		e.forward(w, r, rec, finish)
		return
	}
	dctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	up, err := e.dial(dctx, "tcp", target)
	cancel()
	if err != nil {
		refuse(http.StatusBadGateway, fmt.Sprintf("connect %s: %v", target, err))
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		refuse(http.StatusInternalServerError, "hijack: "+err.Error())
		return
	}
	rec.Status = http.StatusOK
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		rec.Reason = "write to client: " + err.Error()
		client.Close()
		up.Close()
		finish()
		return
	}
	rec.BytesOut, rec.BytesIn = e.splice(client, brw.Reader, up)
	finish()
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways until both directions end (each end's EOF is
// passed on as a half-close) or the gateway closes; it returns the bytes
// sent upstream and back.
func (e *egressProxy) splice(client net.Conn, fromClient io.Reader, up net.Conn) (out, in int64) {
	done := make(chan struct{})
	go func() {
		select {
		case <-e.g.ctx.Done():
			client.Close()
			up.Close()
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := io.Copy(up, fromClient)
		out = n
		if cw, ok := up.(closeWriter); ok && err == nil {
			cw.CloseWrite()
		} else {
			up.Close()
		}
	}()
	n, err := io.Copy(client, up)
	in = n
	if cw, ok := client.(closeWriter); ok && err == nil {
		cw.CloseWrite()
	} else {
		client.Close()
	}
	wg.Wait()
	close(done)
	client.Close()
	up.Close()
	return out, in
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// forward sends one plain-HTTP request on to its host.
func (e *egressProxy) forward(w http.ResponseWriter, r *http.Request, rec *EgressRecord, finish func()) {
	body := &countingReader{r: r.Body}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), body)
	if err != nil {
		rec.Status, rec.Reason = http.StatusBadRequest, err.Error()
		http.Error(w, "ptb gateway: "+err.Error(), http.StatusBadRequest)
		finish()
		return
	}
	if r.ContentLength == 0 || r.Body == http.NoBody {
		out.Body = nil
	}
	out.ContentLength = r.ContentLength
	copyHeaders(out.Header, r.Header, []string{"Proxy-Authorization", "Proxy-Connection", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"})
	resp, err := e.tr.RoundTrip(out)
	rec.BytesOut = body.n
	if err != nil {
		rec.Status, rec.Reason = http.StatusBadGateway, err.Error()
		http.Error(w, "ptb gateway: "+err.Error(), http.StatusBadGateway)
		finish()
		return
	}
	defer resp.Body.Close()
	resp.Header.Del("Set-Cookie")
	stripHop(resp.Header)
	rec.Status = resp.StatusCode
	rec.BytesIn, err = copyFlush(w, resp)
	rec.BytesOut = body.n
	if err != nil {
		rec.Reason = err.Error()
	}
	finish()
}

func stripHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(k)
	}
}
