package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxfake"
)

// countingGateway is a test gateway: an HTTP server on the run's socket
// that answers "gateway N PATH", N counting the starts.
type countingGateway struct {
	mu             sync.Mutex
	starts, closes int
	sockets        []string
}

func (g *countingGateway) Start(ctx context.Context, dir rundir.Dir, spec job.Spec, socket string) (pipeline.GatewaySession, error) {
	g.mu.Lock()
	g.starts++
	n := g.starts
	g.sockets = append(g.sockets, socket)
	g.mu.Unlock()
	ln, err := relay.ListenUnix(socket)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gateway %d %s", n, r.URL.Path)
	})}
	go srv.Serve(ln)
	return &countingSession{g: g, srv: srv}, nil
}

type countingSession struct {
	g   *countingGateway
	srv *http.Server
}

func (s *countingSession) Env(base string) map[string]string {
	return map[string]string{"PTB_TEST_GW": base, "ANTHROPIC_API_KEY": "placeholder"}
}
func (s *countingSession) Endpoint(base string) string { return base + "/llm/test" }
func (s *countingSession) Close() error {
	s.g.mu.Lock()
	s.g.closes++
	s.g.mu.Unlock()
	return s.srv.Close()
}

// Under network gateway the solve starts the run's gateway before the
// agent, the agent reaches it (and only it) through the relay, and it is
// closed when the solve ends; an interrupted solve, resumed, starts a new
// one on the same socket.
func TestGatewayPerSolveAndResume(t *testing.T) {
	onBackends(t, []sandboxfake.Step{
		{Func: func(ctx context.Context, p sandboxfake.Proc) int {
			if err := getThroughGateway(ctx, p, "one.txt"); err != nil {
				fmt.Fprintln(p.Stderr, err)
				return 1
			}
			p.Stdout.Write([]byte(`{"type":"tool_call","name":"sleep"}` + "\n"))
			<-ctx.Done() // until interrupted
			return 0
		}},
		{Func: func(ctx context.Context, p sandboxfake.Proc) int {
			if err := getThroughGateway(ctx, p, "two.txt"); err != nil {
				fmt.Fprintln(p.Stderr, err)
				return 1
			}
			return writeModel(ctx, p)
		}},
	}, func(t *testing.T, b sandbox.Backend) {
		if _, err := os.Stat("/usr/bin/python3"); err != nil && !isFake(b) {
			t.Skip("/usr/bin/python3 not installed")
		}
		get := func(file string) string {
			return `  - run: "/usr/bin/python3 -c \"import os, urllib.request as u; open('` + file + `', 'w').write(u.urlopen(os.environ['PTB_TEST_GW'] + '/a').read().decode())\""` + "\n"
		}
		script := "steps:\n" + get("one.txt") + "  - sleep: 2s\n" + get("two.txt") + "  - model: final_model\nfinal: done\n"
		spec, d := newJob(t, 120, script)
		spec.Network = sandbox.NetworkGateway
		if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
			t.Fatal(err)
		}
		gw := &countingGateway{}
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		r.Gateway = gw
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := r.Run(ctx, d)
			errc <- err
		}()
		// Interrupted during the sleep, after one.txt was written.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if b, err := os.ReadFile(d.Path(rundir.TraceRaw)); err == nil && strings.Contains(string(b), `"name":"sleep"`) {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				<-errc
				t.Fatalf("the agent never wrote one.txt\n%s", readTail(d.Path(rundir.TraceLog)))
			}
		}
		cancel()
		<-errc
		if _, err := r.Run(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		res := validate(t, d)
		for file, want := range map[string]string{"one.txt": "gateway 1 /a", "two.txt": "gateway 2 /a"} {
			if got, _ := os.ReadFile(d.Path(rundir.Workspace, file)); string(got) != want {
				t.Errorf("%s = %q, want %q\n%s", file, got, want, readTail(d.Path(rundir.TraceLog)))
			}
		}
		if gw.starts != 2 || gw.closes != 2 {
			t.Errorf("gateway started %d and closed %d times, want 2 and 2", gw.starts, gw.closes)
		}
		for _, s := range gw.sockets {
			if s != d.Path(rundir.GatewaySocketDir, sandbox.GatewaySocket) {
				t.Errorf("socket %s, want it in the run's %s", s, rundir.GatewaySocketDir)
			}
		}
		if res.Sandbox.Network != "gateway" || res.Spec.Network != "gateway" {
			t.Errorf("recorded network %q (asked %q), want gateway", res.Sandbox.Network, res.Spec.Network)
		}
	})
}

// Without a gateway configured, a gateway job's solve fails, saying so.
func TestGatewayMissing(t *testing.T) {
	onBackends(t, helperSteps("exit:0"), func(t *testing.T, b sandbox.Backend) {
		spec, d := newJob(t, 10, "steps:\n  - say: hi\n")
		spec.Network = sandbox.NetworkGateway
		d.WriteJSON(rundir.JobFile, spec)
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		res, err := r.Run(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if st := res.Stages["solve"]; st.Status != "failed" || !strings.Contains(st.Error, "no gateway configured") {
			t.Errorf("solve %+v, want failed for want of a gateway", st)
		}
	})
}

// getThroughGateway is the fake's play of the scripted agent's python
// step: GET /a from the run's gateway, through the socket directory the
// spec mounts at sandbox.SocketDir, into file.
func getThroughGateway(ctx context.Context, p sandboxfake.Proc, file string) error {
	var dir string
	for _, m := range p.Spec.Mounts {
		if m.Target == sandbox.SocketDir {
			dir = m.Source
		}
	}
	if dir == "" {
		return fmt.Errorf("no socket directory mounted at %s: %+v", sandbox.SocketDir, p.Spec.Mounts)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return relay.DialUnix(ctx, filepath.Join(dir, sandbox.GatewaySocket)) // the path may be past sun_path
	}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://gateway/a", nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, file), b, 0o644)
}

func readTail(p string) string {
	b, _ := os.ReadFile(p)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
