package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One unix-socket listener (what ptb run serves, behind the sandbox's
// relay) carries the routes and the proxy alike.
func TestServeOnUnixSocket(t *testing.T) {
	_, upURL := scripted(t)
	echo := echoServer(t)
	dns := &fakeDNS{hosts: map[string]string{"pypi.org:443": echo}}
	dir := t.TempDir()
	g, err := New(Config{LogDir: filepath.Join(dir, "gateway"), Providers: map[string]Provider{OpenAI: {Upstream: upURL, Key: realKey}},
		Egress: EgressConfig{Dial: dns.dial}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "gateway.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial}}
	resp, err := client.Post("http://127.0.0.1:18080/llm/openai/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "chat.completion") {
		t.Errorf("LLM route over the socket: %d %s", resp.StatusCode, b)
	}
	c, err := dial(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n")
	buf := make([]byte, 39)
	io.ReadFull(c, buf)
	if got := string(buf); got != "HTTP/1.1 200 Connection established\r\n\r\n" {
		t.Errorf("CONNECT over the socket: %q", got)
	}
	io.WriteString(c, "ping")
	io.ReadFull(c, buf[:4])
	if string(buf[:4]) != "ping" {
		t.Errorf("tunnel echoed %q", buf[:4])
	}
	c.Close()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	recs := readLog[EgressRecord](t, filepath.Join(dir, "gateway", EgressLogFile))
	if len(recs) != 1 || recs[0].BytesOut != 4 {
		t.Errorf("egress records %+v", recs)
	}
}

// Once a log line cannot be written the gateway refuses everything: the
// audit takes the logs as the whole story.
func TestFailsClosedWhenALogCannotBeWritten(t *testing.T) {
	f := newFakeHub(t)
	g, base := startGateway(t, Config{Hub: HubConfig{Upstream: f.hub.URL, Token: hfToken}})
	g.hubLog.f.Close() // the disk goes away under the hub log
	get := func() int {
		resp, err := http.Get(base + "/hub/api/models/gpt2")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	first := get() // served; its log line fails to write
	for deadline := time.Now().Add(10 * time.Second); g.hubLog.failed() == nil && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if first != 200 || get() != 503 {
		t.Errorf("statuses %d then %d, want 200 then 503", first, get())
	}
	if err := g.Close(); err == nil || !strings.Contains(err.Error(), "hub.jsonl") {
		t.Errorf("Close: %v, want the log's write error", err)
	}
}
