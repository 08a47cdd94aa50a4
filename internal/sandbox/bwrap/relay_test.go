package bwrap_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

// relayInitEnv makes the test binary play `ptb sandbox-init`: the value
// is the forward, the arguments the command.
const relayInitEnv = "PTB_BWRAP_TEST_RELAY_INIT"

func init() {
	if fw, ok := os.LookupEnv(relayInitEnv); ok {
		f, err := relay.ParseForward(fw)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(relay.Init(context.Background(), []relay.Forward{f}, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
	}
}

// TestRelayIsTheOnlyWayOut runs a client in a sandbox with no network of
// its own: it reaches the harness's HTTP server through the relayed unix
// socket mounted at sandbox.SocketDir, and nothing the host listens on
// over TCP.
func TestRelayIsTheOnlyWayOut(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	// The system interpreter: one under a hidden home (pyenv) is not
	// visible in the sandbox.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("/usr/bin/python3 not installed")
	}
	root := t.TempDir()
	sockDir := filepath.Join(root, strings.Repeat("long-run-directory-name-", 4), "sock")
	ws, home, tmp := filepath.Join(root, "ws"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
	for _, d := range []string{sockDir, ws, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := relay.ListenUnix(filepath.Join(sockDir, "gateway.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gateway saw %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	hostSvc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostSvc.Close()
	go func() {
		for {
			c, err := hostSvc.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host secret service"))
			c.Close()
		}
	}()

	script := fmt.Sprintf(`
import socket, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:18080/hub/api/models/x").read().decode())
try:
    socket.create_connection(("127.0.0.1", %d), timeout=2).recv(100)
    print("host service reached")
except OSError as e:
    print("host service blocked")
`, hostSvc.Addr().(*net.TCPAddr).Port)
	exe, _ := os.Executable()
	var out, errb bytes.Buffer
	p, err := b.Start(context.Background(), sandbox.Spec{
		Argv:      []string{exe, py, "-c", script},
		Env:       []string{relayInitEnv + "=tcp:127.0.0.1:18080=unix:" + sandbox.SocketDir + "/gateway.sock", "PATH=/usr/bin:/bin"},
		Workspace: ws, Home: home, Tmp: tmp,
		ReadOnly: []string{filepath.Dir(exe)},
		Mounts:   []sandbox.Mount{{Source: sockDir, Target: sandbox.SocketDir}},
		Network:  sandbox.NetworkNone,
		Stdout:   &out, Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, err := p.Wait(ctx)
	p.Destroy()
	if err != nil || ex.Code != 0 {
		t.Fatalf("exit %+v, %v\nstdout: %s\nstderr: %s", ex, err, out.String(), errb.String())
	}
	if got, want := out.String(), "gateway saw /hub/api/models/x\nhost service blocked\n"; got != want {
		t.Errorf("sandbox printed %q, want %q (stderr %s)", got, want, errb.String())
	}
}
