package sandbox_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestHandleJSON(t *testing.T) {
	tests := []struct {
		name      string
		in        string // as a solve state holds it
		backend   string
		state     string // "" = none
		roundTrip string
	}{
		{"process backend, as solve.json has always held it", `{"backend":"bwrap","pid":12,"pgid":12,"start":99}`, "bwrap", `{"pgid":12,"pid":12,"start":99}`,
			`{"backend":"bwrap","pgid":12,"pid":12,"start":99}`},
		{"container backend", `{"backend":"podman","container":"c0ffee"}`, "podman", `{"container":"c0ffee"}`, `{"backend":"podman","container":"c0ffee"}`},
		{"no state", `{"backend":"fake"}`, "fake", "", `{"backend":"fake"}`},
		{"null", `null`, "", "", `{"backend":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h sandbox.Handle
			if err := json.Unmarshal([]byte(tt.in), &h); err != nil {
				t.Fatal(err)
			}
			if h.Backend != tt.backend || string(h.State) != tt.state {
				t.Errorf("read %s as backend %q state %s, want %q %s", tt.in, h.Backend, h.State, tt.backend, tt.state)
			}
			b, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.roundTrip {
				t.Errorf("wrote %s, want %s", b, tt.roundTrip)
			}
		})
	}
	for _, bad := range []sandbox.Handle{
		{Backend: "x", State: json.RawMessage(`[1]`)},
		{Backend: "x", State: json.RawMessage(`{"backend":"y"}`)},
	} {
		if _, err := json.Marshal(bad); err == nil || !strings.Contains(err.Error(), "sandbox handle of x") {
			t.Errorf("Marshal(%s) = %v, want an error naming the backend", bad.State, err)
		}
	}
	if err := json.Unmarshal([]byte(`"pid 12"`), new(sandbox.Handle)); err == nil {
		t.Errorf("a handle that is not an object was read")
	}
}
