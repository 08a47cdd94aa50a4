package gateway

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

// startRelayed serves a gateway for cfg on a unix socket (relay.ListenUnix,
// as ptb run does) and a relay from a loopback TCP port to it (what the
// sandbox's forwarder does); it returns the gateway and the relay's URL.
func startRelayed(t testing.TB, cfg Config) (*Gateway, string) {
	t.Helper()
	dir := t.TempDir()
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(dir, "gateway")
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "gateway.sock")
	uln, err := relay.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	relayed := make(chan error, 1)
	go func() { served <- g.Serve(uln) }()
	go func() {
		relayed <- relay.Serve(ctx, tln, func(ctx context.Context) (net.Conn, error) { return relay.DialUnix(ctx, sock) })
	}()
	t.Cleanup(func() {
		cancel()
		tln.Close()
		g.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		<-relayed
	})
	return g, "http://" + tln.Addr().String()
}

// The whole path of a sandbox's request: TCP on loopback, the relay, the
// unix socket, the gateway, the upstream.
func TestThroughRelay(t *testing.T) {
	_, upURL := scripted(t)
	echo := echoServer(t)
	dns := &fakeDNS{hosts: map[string]string{"pypi.org:443": echo}}
	_, base := startRelayed(t, Config{Providers: map[string]Provider{Anthropic: {Upstream: upURL, Key: realKey}},
		Egress: EgressConfig{Dial: dns.dial}})
	if n := streamOnce(t, benchClient(), base+"/llm/anthropic/v1/messages"); n < 5 {
		t.Errorf("%d SSE events through the relay", n)
	}
	c, br, status := connect(t, base, "pypi.org:443")
	defer c.Close()
	if !strings.Contains(status, "200") {
		t.Fatalf("CONNECT through the relay: %q", status)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	buf := make([]byte, 16)
	n, _ := br.Read(buf)
	if string(buf[:n]) != "hello" {
		t.Errorf("tunnel echoed %q", buf[:n])
	}
}
