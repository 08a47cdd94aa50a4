package sandbox_test

import (
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestCapabilitiesSupports(t *testing.T) {
	bwrapLike := sandbox.Capabilities{Name: "iso", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone, sandbox.NetworkHost}, SamePaths: true, ReadOnlyHost: true}
	noneLike := sandbox.Capabilities{Name: "bare", Networks: []sandbox.Network{sandbox.NetworkHost}, SamePaths: true}
	noHostNet := sandbox.Capabilities{Name: "nohost", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}, ReadOnlyHost: true}
	noRO := sandbox.Capabilities{Name: "noro", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}}
	remap := []sandbox.Mount{{Source: "/run/x/sock", Target: sandbox.SocketDir}}
	tests := []struct {
		name    string
		caps    sandbox.Capabilities
		spec    sandbox.Spec
		wantErr string // "" = supported
	}{
		{"default network on an isolating backend", bwrapLike, sandbox.Spec{}, ""},
		{"host network on an isolating backend", bwrapLike, sandbox.Spec{Network: sandbox.NetworkHost}, ""},
		{"host network the backend cannot give", noHostNet, sandbox.Spec{Network: sandbox.NetworkHost}, `cannot enforce network "host" (it enforces none)`},
		{"no networks at all", sandbox.Capabilities{Name: "x", Isolated: true}, sandbox.Spec{}, "it enforces none of them"},
		{"gateway not applied", bwrapLike, sandbox.Spec{Network: sandbox.NetworkGateway}, "apply the run's sandbox.Gateway"},
		{"a bare backend enforces nothing and is recorded unsandboxed", noneLike, sandbox.Spec{Network: sandbox.NetworkNone, ReadOnly: []string{"/x"}}, ""},
		{"remapped mount on an isolating backend", bwrapLike, sandbox.Spec{Mounts: remap}, ""},
		{"remapped mount on a bare backend", noneLike, sandbox.Spec{Mounts: remap}, "cannot show /run/x/sock at /run/ptb"},
		{"same-path mount on a bare backend", noneLike, sandbox.Spec{Mounts: []sandbox.Mount{{Source: "/a", Target: "/a"}}}, ""},
		{"read-only paths without a read-only host", noRO, sandbox.Spec{ReadOnly: []string{"/opt/model"}}, "cannot show host paths read-only (first: /opt/model)"},
		{"no read-only paths asked", noRO, sandbox.Spec{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.caps.Supports(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Supports = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Supports = %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "sandbox "+tt.caps.Name) {
				t.Errorf("error %q does not name the backend %s", err, tt.caps.Name)
			}
		})
	}
}
