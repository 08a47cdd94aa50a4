package sandbox

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
)

// Network is a sandbox's network policy.
type Network string

// Network policies. Backends enforce NetworkNone and NetworkHost;
// NetworkGateway is NetworkNone plus a relay to the run's gateway, set up
// for every backend alike by Gateway.Apply.
const (
	// NetworkNone is a fresh network namespace with loopback only.
	NetworkNone Network = "none"
	// NetworkGateway is NetworkNone whose only way out is the run's
	// gateway, reached through a relay on the sandbox's 127.0.0.1.
	NetworkGateway Network = "gateway"
	// NetworkHost is the host's network: for debugging only, recorded as
	// such, and never a clean verdict.
	NetworkHost Network = "host"
)

// Networks lists the policies a job may ask for.
var Networks = []Network{NetworkNone, NetworkGateway, NetworkHost}

// ParseNetwork checks a policy name.
func ParseNetwork(s string) (Network, error) {
	for _, n := range Networks {
		if string(n) == s {
			return n, nil
		}
	}
	return "", fmt.Errorf("network %q: want none, gateway or host", s)
}

// GatewaySocket is the gateway's unix socket inside the socket directory.
const GatewaySocket = "gateway.sock"

// GatewayPort is where, on the sandbox's own loopback, the relay to the
// gateway listens.
const GatewayPort = 18080

// Gateway is how a sandbox reaches the run's gateway: a unix socket in a
// host directory of the run, relayed to TCP on 127.0.0.1 inside by the ptb
// binary (`ptb sandbox-init --forward`, internal/sandbox/relay), which
// starts before the sandboxed command.
type Gateway struct {
	// Init is the ptb executable that runs `sandbox-init` inside; it is made
	// visible read-only.
	Init string
	// SocketDir is the host directory holding GatewaySocket; an isolated
	// sandbox sees it at SocketDir (the package constant).
	SocketDir string
	// Port is where the relay listens on the sandbox's 127.0.0.1; 0 lets
	// URL choose (GatewayPort in a network namespace of the sandbox's own,
	// a free port of the host otherwise).
	Port int
}

// URL returns the gateway's base URL inside a sandbox of a backend with
// caps, choosing the port if it is not set.
func (g *Gateway) URL(caps Capabilities) (string, error) {
	if g.Port == 0 {
		g.Port = GatewayPort
		if !caps.Isolated {
			p, err := freePort()
			if err != nil {
				return "", fmt.Errorf("sandbox gateway: %w", err)
			}
			g.Port = p
		}
	}
	return "http://127.0.0.1:" + strconv.Itoa(g.Port), nil
}

// Apply returns spec changed so that its command reaches the gateway (at
// URL) and nothing else.
//
// With an isolated backend the sandbox gets a network namespace of its
// own (NetworkNone), the socket directory at /run/ptb, and its command
// wrapped as `INIT sandbox-init --forward tcp:127.0.0.1:GatewayPort=unix:
// /run/ptb/gateway.sock -- ARGV`. A backend that is not isolated (none)
// shares the host's network, so the relay listens on a free loopback port
// of the host and connects to the socket at its host path; nothing is
// enforced there, and the run is recorded as unsandboxed.
func (g Gateway) Apply(spec Spec, caps Capabilities) (Spec, error) {
	if g.Init == "" || !filepath.IsAbs(g.Init) {
		return spec, fmt.Errorf("sandbox gateway: the ptb executable must be an absolute path, got %q", g.Init)
	}
	if g.SocketDir == "" || !filepath.IsAbs(g.SocketDir) {
		return spec, fmt.Errorf("sandbox gateway: the socket directory must be an absolute path, got %q", g.SocketDir)
	}
	if len(spec.Argv) == 0 {
		return spec, errors.New("sandbox gateway: no command to wrap")
	}
	if _, err := g.URL(caps); err != nil {
		return spec, err
	}
	out := spec
	sock := filepath.Join(SocketDir, GatewaySocket)
	if caps.Isolated {
		out.Network = NetworkNone
		out.Mounts = append(append([]Mount{}, spec.Mounts...), Mount{Source: g.SocketDir, Target: SocketDir})
	} else {
		sock = filepath.Join(g.SocketDir, GatewaySocket)
		out.Network = NetworkHost
	}
	out.ReadOnly = append([]string{}, spec.ReadOnly...)
	if !slices.Contains(out.ReadOnly, g.Init) {
		out.ReadOnly = append(out.ReadOnly, g.Init)
	}
	listen := "tcp:127.0.0.1:" + strconv.Itoa(g.Port)
	out.Argv = append([]string{g.Init, "sandbox-init", "--forward", listen + "=unix:" + sock, "--"}, spec.Argv...)
	if err := caps.Supports(out); err != nil {
		return spec, fmt.Errorf("sandbox gateway: %w", err)
	}
	return out, nil
}

// freePort asks the kernel for a free port on the host's loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
