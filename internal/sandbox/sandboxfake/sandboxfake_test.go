package sandboxfake_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxfake"
)

func TestSteps(t *testing.T) {
	tests := []struct {
		name    string
		step    sandboxfake.Step
		stop    time.Duration // > 0: Stop with this grace after start
		want    sandbox.Exit
		wantOut string
		minTook time.Duration
	}{
		{name: "exit code", step: sandboxfake.Step{Stdout: []byte("hi\n"), Exit: 3}, want: sandbox.Exit{Code: 3}, wantOut: "hi\n"},
		{name: "sleep then exit", step: sandboxfake.Step{Sleep: 50 * time.Millisecond}, want: sandbox.Exit{Code: 0}, minTook: 50 * time.Millisecond},
		{name: "hang ends by TERM", step: sandboxfake.Step{Hang: true}, stop: time.Minute, want: sandbox.Exit{Code: -1, Signal: "SIGTERM"}},
		{name: "TERM ignored ends by KILL after the grace", step: sandboxfake.Step{Hang: true, IgnoreTerm: true}, stop: 100 * time.Millisecond,
			want: sandbox.Exit{Code: -1, Signal: "SIGKILL"}, minTook: 100 * time.Millisecond},
		{name: "func exit code", step: sandboxfake.Step{Func: func(ctx context.Context, p sandboxfake.Proc) int {
			p.Stdout.Write([]byte(p.Spec.Argv[0]))
			return 7
		}}, want: sandbox.Exit{Code: 7}, wantOut: "agent"},
		{name: "func stopped", step: sandboxfake.Step{Func: func(ctx context.Context, p sandboxfake.Proc) int {
			<-ctx.Done()
			return 0
		}}, stop: time.Minute, want: sandbox.Exit{Code: -1, Signal: "SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sandboxfake.New(tt.step)
			var out bytes.Buffer
			start := time.Now()
			p, err := b.Start(context.Background(), sandbox.Spec{Argv: []string{"agent"}, Workspace: t.TempDir(), Stdout: &out})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Destroy()
			if tt.stop > 0 {
				if err := p.Stop(tt.stop); err != nil {
					t.Fatal(err)
				}
			}
			got, err := p.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("exit = %+v, want %+v", got, tt.want)
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout = %q, want %q", out.String(), tt.wantOut)
			}
			if took := time.Since(start); took < tt.minTook {
				t.Errorf("ended after %v, before %v", took, tt.minTook)
			}
		})
	}
}

func TestFilesAndScriptOrder(t *testing.T) {
	ws := t.TempDir()
	b := sandboxfake.New(
		sandboxfake.Step{Dirs: []string{"final_model"}, Files: map[string][]byte{"final_model/config.json": []byte("{}")}, Links: map[string]string{"final_model/leak": "/etc/passwd"}},
		sandboxfake.Step{Exit: 1},
	)
	for i, want := range []int{0, 1, 1} {
		p, err := b.Start(context.Background(), sandbox.Spec{Argv: []string{"a"}, Workspace: ws})
		if err != nil {
			t.Fatal(err)
		}
		ex, _ := p.Wait(context.Background())
		p.Destroy()
		if ex.Code != want {
			t.Errorf("start %d: exit %d, want %d", i, ex.Code, want)
		}
	}
	if got, err := os.ReadFile(filepath.Join(ws, "final_model", "config.json")); err != nil || string(got) != "{}" {
		t.Errorf("config.json = %q, %v", got, err)
	}
	if got, _ := os.Readlink(filepath.Join(ws, "final_model", "leak")); got != "/etc/passwd" {
		t.Errorf("leak -> %q", got)
	}
	if n := len(b.Started()); n != 3 {
		t.Errorf("Started: %d specs, want 3", n)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		b       *sandboxfake.Backend
		spec    sandbox.Spec
		wantErr string
	}{
		{"network not enforced", sandboxfake.New(sandboxfake.Step{}).WithCapabilities(sandbox.Capabilities{Name: "nonet", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}}),
			sandbox.Spec{Argv: []string{"a"}, Network: sandbox.NetworkHost}, `network "host"`},
		{"path outside the workspace", sandboxfake.New(sandboxfake.Step{Files: map[string][]byte{"../x": nil}}),
			sandbox.Spec{Argv: []string{"a"}}, ""},
		{"empty command", sandboxfake.New(sandboxfake.Step{}), sandbox.Spec{}, "empty command"},
		{"no script", sandboxfake.New(), sandbox.Spec{Argv: []string{"a"}}, "no script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Workspace = t.TempDir()
			var errb bytes.Buffer
			tt.spec.Stderr = &errb
			p, err := tt.b.Start(context.Background(), tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Start error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ex, _ := p.Wait(context.Background())
			if ex.Code != 1 || !strings.Contains(errb.String(), "not a path inside the workspace") {
				t.Errorf("exit %+v, stderr %q: want a refusal", ex, errb.String())
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(tt.spec.Workspace), "x")); err == nil {
				t.Errorf("the fake wrote outside the workspace")
			}
		})
	}
}
