package execproc

import "testing"

func TestSignalName(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{9, "SIGKILL"}, {15, "SIGTERM"}, {6, "SIGABRT"}, {24, "SIGXCPU"},
		{17, "SIGCHLD"}, // named now; the hand-written table said SIG17
		{34, "SIG34"},   // a real-time signal has no name
		{0, "SIG0"},
	}
	for _, tt := range tests {
		if got := SignalName(tt.n); got != tt.want {
			t.Errorf("SignalName(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
