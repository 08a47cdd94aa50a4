package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

func TestParseForward(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "tcp:127.0.0.1:18080=unix:/run/ptb/gateway.sock", want: "tcp:127.0.0.1:18080=unix:/run/ptb/gateway.sock"},
		{in: "unix:/run/ptb/server.sock=tcp:127.0.0.1:8000", want: "unix:/run/ptb/server.sock=tcp:127.0.0.1:8000"},
		{in: "tcp:127.0.0.1:18080", wantErr: "want LISTEN=CONNECT"},
		{in: "tcp:127.0.0.1=unix:/x", wantErr: "missing port"},
		{in: "unix:run/x=tcp:127.0.0.1:1", wantErr: "must be absolute"},
		{in: "udp:127.0.0.1:1=unix:/x", wantErr: "unknown network"},
		{in: "tcp:=unix:/x", wantErr: "want tcp:HOST:PORT"},
	}
	for _, tt := range tests {
		f, err := relay.ParseForward(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseForward(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseForward(%q): %v", tt.in, err)
			continue
		}
		if got := f.String(); got != tt.want {
			t.Errorf("ParseForward(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// longDir returns a directory whose socket paths exceed sun_path.
func longDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestListenUnixLongPath(t *testing.T) {
	path := filepath.Join(longDir(t), "gateway.sock")
	if len(path) <= 108 {
		t.Fatalf("path %d bytes: not long enough to test", len(path))
	}
	if _, err := net.Listen("unix", path); err == nil {
		t.Fatal("net.Listen took a path over sun_path: the test proves nothing")
	}
	ln, err := relay.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v, want a socket with 0666", fi.Mode())
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := relay.DialUnix(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "ping")
	c.(*net.UnixConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "ping" {
		t.Errorf("echo = %q, want ping", got)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestListenUnixReplacesStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	// A crashed harness leaves its socket file behind.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	ln, err := relay.ListenUnix(stale)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ln.Close()

	file := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := relay.ListenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ListenUnix over a regular file: %v, want an error", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the regular file was touched: %q", b)
	}
}

// TestServeRelaysHTTP relays a TCP port to an HTTP server on a unix
// socket, as the sandbox side of the gateway does, and checks that a
// large body goes both ways intact and that half-close reaches the peer.
func TestServeRelaysHTTP(t *testing.T) {
	sock := filepath.Join(longDir(t), "gateway.sock")
	uln, err := relay.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d ", r.Method, r.URL.Path, len(b))
		w.Write(bytes.ToUpper(b))
	})}
	go srv.Serve(uln)
	defer srv.Close()

	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- relay.Serve(ctx, tln, func(ctx context.Context) (net.Conn, error) { return relay.DialUnix(ctx, sock) })
	}()
	body := bytes.Repeat([]byte("abc"), 1<<20)
	resp, err := http.Post("http://"+tln.Addr().String()+"/llm/anthropic/v1/messages", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := append([]byte(fmt.Sprintf("POST /llm/anthropic/v1/messages %d ", len(body))), bytes.ToUpper(body)...)
	if !bytes.Equal(got, want) {
		t.Errorf("relayed response: %d bytes, want %d (prefix %q)", len(got), len(want), got[:min(len(got), 60)])
	}

	// Half-close: the peer sees EOF and can still answer.
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		c.Write(append([]byte("got:"), b...))
		c.Close()
	}()
	eln, _ := net.Listen("tcp", "127.0.0.1:0")
	go relay.Serve(ctx, eln, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", echo.Addr().String())
	})
	c, err := net.Dial("tcp", eln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if string(b) != "got:hello" {
		t.Errorf("half-closed exchange = %q, want got:hello", b)
	}

	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
}

func TestInitExitStatus(t *testing.T) {
	tests := []struct {
		argv []string
		want int
	}{
		{argv: []string{"sh", "-c", "exit 3"}, want: 3},
		{argv: []string{"sh", "-c", "kill -TERM $$"}, want: 128 + 15},
		{argv: []string{"/nonexistent/agent"}, want: 127},
		{argv: nil, want: 127},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		got := relay.Init(context.Background(), nil, tt.argv, os.Environ(), nil, io.Discard, &stderr)
		if got != tt.want {
			t.Errorf("Init(%q) = %d, want %d (stderr %q)", tt.argv, got, tt.want, stderr.String())
		}
	}
}

func TestInitOpensListenersBeforeTheChild(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "up.sock")
	up, err := relay.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("from-harness"))
			c.Close()
		}
	}()
	defer up.Close()
	port := freePort(t)
	fw, err := relay.ParseForward(fmt.Sprintf("tcp:127.0.0.1:%d=unix:%s", port, sock))
	if err != nil {
		t.Fatal(err)
	}
	// The child reads from the forwarded port at once: it must already
	// be listening. python3 stands in for any client in the sandbox.
	py := fmt.Sprintf("import socket; s=socket.create_connection(('127.0.0.1', %d)); print(s.recv(100).decode())", port)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("python3 not installed")
	}
	var out, stderr bytes.Buffer
	code := relay.Init(context.Background(), []relay.Forward{fw}, []string{"/usr/bin/python3", "-c", py}, os.Environ(), nil, &out, &stderr)
	if code != 0 || strings.TrimSpace(out.String()) != "from-harness" {
		t.Errorf("Init = %d, out %q, stderr %q; want 0 and from-harness", code, out.String(), stderr.String())
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
