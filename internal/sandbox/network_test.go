package sandbox_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestParseNetwork(t *testing.T) {
	for _, c := range []struct {
		in   string
		want sandbox.Network
		err  string
	}{
		{"none", sandbox.NetworkNone, ""},
		{"gateway", sandbox.NetworkGateway, ""},
		{"host", sandbox.NetworkHost, ""},
		{"bridge", "", `network "bridge": want none, gateway or host`},
		{"", "", "want none, gateway or host"},
	} {
		got, err := sandbox.ParseNetwork(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseNetwork(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseNetwork(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestGatewayApply(t *testing.T) {
	base := sandbox.Spec{Argv: []string{"claude", "-p", "hi"}, ReadOnly: []string{"/opt/cli"}, Network: sandbox.NetworkGateway}
	t.Run("isolated", func(t *testing.T) {
		g := sandbox.Gateway{Init: "/usr/bin/ptb", SocketDir: "/runs/r1/gateway/socket"}
		got, err := g.Apply(base, sandbox.Capabilities{Name: "bwrap", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone, sandbox.NetworkHost}, SamePaths: true, ReadOnlyHost: true})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"/usr/bin/ptb", "sandbox-init", "--forward", "tcp:127.0.0.1:18080=unix:/run/ptb/gateway.sock", "--", "claude", "-p", "hi"}
		if !slices.Equal(got.Argv, want) {
			t.Errorf("argv %q, want %q", got.Argv, want)
		}
		if got.Network != sandbox.NetworkNone {
			t.Errorf("network %q, want none (a namespace of its own)", got.Network)
		}
		if len(got.Mounts) != 1 || got.Mounts[0] != (sandbox.Mount{Source: "/runs/r1/gateway/socket", Target: sandbox.SocketDir}) {
			t.Errorf("mounts %+v", got.Mounts)
		}
		if !slices.Equal(got.ReadOnly, []string{"/opt/cli", "/usr/bin/ptb"}) {
			t.Errorf("read-only %q", got.ReadOnly)
		}
		if u, _ := g.URL(sandbox.Capabilities{Isolated: true}); u != "http://127.0.0.1:18080" {
			t.Errorf("URL %s", u)
		}
		if len(base.Mounts) != 0 || base.Argv[0] != "claude" {
			t.Errorf("Apply changed its input: %+v", base)
		}
	})
	t.Run("not isolated", func(t *testing.T) {
		g := sandbox.Gateway{Init: "/usr/bin/ptb", SocketDir: "/runs/r1/gateway/socket"}
		caps := sandbox.Capabilities{Name: "none"}
		u, err := g.URL(caps)
		if err != nil || g.Port == 0 || g.Port == sandbox.GatewayPort {
			t.Fatalf("URL %s, port %d, %v: want a free port of the host", u, g.Port, err)
		}
		got, err := g.Apply(base, caps)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Mounts) != 0 || got.Network != sandbox.NetworkHost {
			t.Errorf("mounts %+v network %q: the none backend shares the host's paths and network", got.Mounts, got.Network)
		}
		if fw := got.Argv[3]; !strings.HasSuffix(fw, "=unix:/runs/r1/gateway/socket/gateway.sock") || !strings.HasPrefix(fw, "tcp:127.0.0.1:"+u[len("http://127.0.0.1:"):]) {
			t.Errorf("forward %q, URL %s", fw, u)
		}
	})
	for _, c := range []struct {
		name string
		g    sandbox.Gateway
		spec sandbox.Spec
		want string
	}{
		{"relative init", sandbox.Gateway{Init: "ptb", SocketDir: "/s"}, base, "absolute path"},
		{"no socket dir", sandbox.Gateway{Init: "/ptb"}, base, "socket directory"},
		{"no command", sandbox.Gateway{Init: "/ptb", SocketDir: "/s"}, sandbox.Spec{}, "no command"},
	} {
		if _, err := c.g.Apply(c.spec, sandbox.Capabilities{Isolated: true}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// Apply refuses a backend that cannot give the gateway what it needs: an
// isolating backend without a network namespace of its own (none), or
// without read-only paths for the ptb binary.
func TestGatewayApplyConsultsCapabilities(t *testing.T) {
	g := sandbox.Gateway{Init: "/usr/bin/ptb", SocketDir: "/var/run/x", Port: 1}
	spec := sandbox.Spec{Argv: []string{"agent"}, Network: sandbox.NetworkGateway}
	tests := []struct {
		name    string
		caps    sandbox.Capabilities
		wantErr string
	}{
		{"isolating", sandbox.Capabilities{Name: "iso", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}, ReadOnlyHost: true}, ""},
		{"no network namespace", sandbox.Capabilities{Name: "hostonly", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkHost}, ReadOnlyHost: true}, `sandbox gateway: sandbox hostonly: cannot enforce network "none"`},
		{"no read-only paths", sandbox.Capabilities{Name: "noro", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}}, "sandbox gateway: sandbox noro: cannot show host paths read-only (first: /usr/bin/ptb)"},
		{"bare", sandbox.Capabilities{Name: "bare", Networks: []sandbox.Network{sandbox.NetworkHost}, SamePaths: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Apply(spec, tt.caps)
			if tt.wantErr == "" && err != nil {
				t.Errorf("Apply = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Apply = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
