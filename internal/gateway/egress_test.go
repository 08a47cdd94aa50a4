package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeDNS maps host names to local test servers and records every dial.
type fakeDNS struct {
	mu    sync.Mutex
	hosts map[string]string // host:port -> 127.0.0.1:port
	dials []string
}

func (d *fakeDNS) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, addr)
	to, ok := d.hosts[addr]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake dns: no such host %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *fakeDNS) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dials)
}

// echoServer echoes every byte back until the client half-closes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// connect opens a CONNECT tunnel through the gateway at base and returns
// the connection and the proxy's status line.
func connect(t *testing.T, base, target string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for { // headers
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return c, br, strings.TrimSpace(status)
}

func TestEgressConnectTunnels(t *testing.T) {
	echo := echoServer(t)
	dns := &fakeDNS{hosts: map[string]string{"pypi.org:443": echo, "objects.githubusercontent.com:443": echo}}
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Egress: EgressConfig{Dial: dns.dial}})
	for _, target := range []string{"pypi.org:443", "OBJECTS.githubusercontent.com.:443"} {
		c, br, status := connect(t, base, target)
		if status != "HTTP/1.1 200 Connection established" {
			t.Fatalf("%s: %q", target, status)
		}
		payload := strings.Repeat("x", 100000)
		go func() {
			io.WriteString(c, payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(br)
		if err != nil || string(got) != payload {
			t.Fatalf("%s: echoed %d bytes, %v", target, len(got), err)
		}
		c.Close()
	}
	g.Close()
	recs := readLog[EgressRecord](t, filepath.Join(dir, EgressLogFile))
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for i, want := range []struct{ host, rule string }{{"pypi.org", "allow pypi.org"}, {"objects.githubusercontent.com", "allow *.githubusercontent.com"}} {
		r := recs[i]
		if r.Method != "CONNECT" || r.Host != want.host || r.Port != 443 || !r.Allowed || r.Rule != want.rule || r.Status != 200 || r.BytesOut != 100000 || r.BytesIn != 100000 {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}

func TestEgressDenies(t *testing.T) {
	echo := echoServer(t)
	dns := &fakeDNS{hosts: map[string]string{}}
	for _, h := range []string{"api.openai.com:443", "api.anthropic.com:443", "generativelanguage.googleapis.com:443", "chatgpt.com:443",
		"huggingface.co:443", "cdn-lfs-us-1.huggingface.co:443", "cas-bridge.xethub.hf.co:443", "evil.example:443", "github.com:22", "127.0.0.1:8080"} {
		dns.hosts[h] = echo
	}
	cases := []struct {
		target, rule, reason string
	}{
		{"api.openai.com:443", "deny *.openai.com", "LLM provider"},
		{"api.anthropic.com:443", "deny *.anthropic.com", "LLM provider"},
		{"generativelanguage.googleapis.com:443", "deny generativelanguage.googleapis.com", "LLM provider"},
		{"chatgpt.com:443", "deny chatgpt.com", "LLM provider"},
		{"huggingface.co:443", "deny huggingface.co", "hub route"},
		{"cdn-lfs-us-1.huggingface.co:443", "deny *.huggingface.co", "hub route"},
		{"cas-bridge.xethub.hf.co:443", "deny *.hf.co", "hub route"},
		{"evil.example:443", "default deny", "not in the run's allow list"},
		{"github.com:22", "allow github.com", "port 22 is not allowed"},
		{"127.0.0.1:8080", "ip address", "named hosts only"},
		{"[::1]:443", "ip address", "named hosts only"},
	}
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Egress: EgressConfig{Dial: dns.dial}})
	for _, c := range cases {
		conn, br, status := connect(t, base, c.target)
		body, _ := br.ReadString('\n')
		conn.Close()
		if !strings.Contains(status, "403") || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %q %q", c.target, status, body)
		}
	}
	// plain HTTP too
	proxyURL, _ := url.Parse(base)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://api.openai.com/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("plain HTTP to a denied host: %d", resp.StatusCode)
	}
	if n := dns.count(); n != 0 {
		t.Errorf("denied targets were dialled %d times", n)
	}
	g.Close()
	recs := readLog[EgressRecord](t, filepath.Join(dir, EgressLogFile))
	if len(recs) != len(cases)+1 {
		t.Fatalf("%d records, want %d", len(recs), len(cases)+1)
	}
	for i, c := range cases {
		r := recs[i]
		wantKind := map[string]string{"LLM provider": HostLLM, "hub route": HostHub}[c.reason]
		if r.Allowed || r.Rule != c.rule || r.Status != 403 || !strings.Contains(r.Reason, c.reason) || r.Kind != wantKind {
			t.Errorf("%s: record %+v, want rule %q", c.target, r, c.rule)
		}
	}
	if r := recs[len(cases)]; r.Method != "GET" || r.Host != "api.openai.com" || r.Port != 80 || r.Allowed || r.URL != "http://api.openai.com/v1/models" {
		t.Errorf("plain HTTP record %+v", r)
	}
}

func TestEgressPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "host=%s path=%s body=%s proxyauth=%q", r.Host, r.URL.Path, b, r.Header.Get("Proxy-Authorization"))
	}))
	defer srv.Close()
	dns := &fakeDNS{hosts: map[string]string{"download.pytorch.org:80": strings.TrimPrefix(srv.URL, "http://")}}
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Egress: EgressConfig{Dial: dns.dial}})
	proxyURL, _ := url.Parse(base)
	proxyURL.User = url.UserPassword("u", "p")
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Post("http://download.pytorch.org/whl/cu121", "text/plain", strings.NewReader("12345"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `host=download.pytorch.org path=/whl/cu121 body=12345 proxyauth=""`
	if resp.StatusCode != 200 || string(b) != want {
		t.Errorf("got %d %q, want %q", resp.StatusCode, b, want)
	}
	g.Close()
	recs := readLog[EgressRecord](t, filepath.Join(dir, EgressLogFile))
	if len(recs) != 1 || !recs[0].Allowed || recs[0].BytesOut != 5 || recs[0].BytesIn != int64(len(want)) || recs[0].Status != 200 {
		t.Errorf("records %+v", recs)
	}
}

// The default dialer refuses addresses that are not public, whatever an
// allowed name resolves to.
func TestEgressDefaultDialRefusesLocalAddresses(t *testing.T) {
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo)
	var p int
	fmt.Sscan(port, &p)
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Egress: EgressConfig{Allow: []HostRule{{Host: "localhost", Ports: []int{p}}}}})
	c, _, status := connect(t, base, "localhost:"+port)
	c.Close()
	if !strings.Contains(status, "502") {
		t.Errorf("status %q, want 502", status)
	}
	g.Close()
	recs := readLog[EgressRecord](t, filepath.Join(dir, EgressLogFile))
	if len(recs) != 1 || !strings.Contains(recs[0].Reason, "not a public address") {
		t.Errorf("records %+v", recs)
	}
	for _, c := range []struct {
		addr string
		want bool
	}{{"1.1.1.1", true}, {"127.0.0.1", false}, {"10.1.2.3", false}, {"192.168.1.1", false}, {"169.254.169.254", false},
		{"100.64.0.1", false}, {"0.0.0.0", false}, {"::1", false}, {"fe80::1", false}, {"fd00::1", false}, {"::ffff:127.0.0.1", false}, {"2606:4700::1111", true}} {
		if got := publicOnly("tcp", net.JoinHostPort(c.addr, "443"), nil) == nil; got != c.want {
			t.Errorf("%s: public = %v, want %v", c.addr, got, c.want)
		}
	}
}

// Close ends open tunnels and returns.
func TestEgressCloseEndsTunnels(t *testing.T) {
	echo := echoServer(t)
	dns := &fakeDNS{hosts: map[string]string{"pypi.org:443": echo}}
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Egress: EgressConfig{Dial: dns.dial}})
	c, br, status := connect(t, base, "pypi.org:443")
	defer c.Close()
	if !strings.Contains(status, "200") {
		t.Fatal(status)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	io.ReadFull(br, buf)
	closeWithin(t, g, "Close did not end an open tunnel")
	recs := readLog[EgressRecord](t, filepath.Join(dir, EgressLogFile))
	if len(recs) != 1 || recs[0].BytesOut != 4 || recs[0].BytesIn != 4 {
		t.Errorf("records %+v", recs)
	}
}
