package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
	"github.com/ptb-dev/ptb/internal/campaign/kube/kubetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func settings(t *testing.T, text string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func newExec(t *testing.T, text string) *Executor {
	t.Helper()
	x, err := New(settings(t, text))
	if err != nil {
		t.Fatal(err)
	}
	return x.(*Executor)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestManifestGolden(t *testing.T) {
	x := newExec(t, `
image: registry.example/ptb:1.0
namespace: ptb
volume_claim: ptb-runs
node_selector: {gpu: h100}
secret: ptb-keys
service_account: ptb
`)
	s := campaign.Submission{
		Campaign: "paper", Root: "/shared/runs", Dir: "/shared/runs/.campaign/paper", Exe: "/usr/local/bin/ptb",
		Resources: campaign.Resources{GPUs: 1, CPUs: 16, MemoryMB: 65536, DiskMB: 204800, TimeLimit: 11 * time.Hour},
		PassEnv:   []string{"ANTHROPIC_API_KEY"},
	}
	m := x.Manifest(s, campaign.Job{Index: 7, RunID: "gsm8k_qwen3-1.7b_claude-claude-opus-4.6_s0"})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	golden(t, "job-gpu.json", buf.Bytes())
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"namespace: x", "image is required"},
		{"image: x\ngrace_seconds: 10", "grace_seconds 10"},
		{"image: x\nimagePullPolicy: Always", "field imagePullPolicy not found"},
	} {
		_, err := New(settings(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}

func TestSubmitRefusesSecretsWithoutASecret(t *testing.T) {
	x := newExec(t, "image: x")
	_, err := x.Submit(context.Background(), campaign.Submission{Campaign: "c", Jobs: []campaign.Job{{RunID: "a"}}, PassEnv: []string{"OPENAI_API_KEY"}})
	if err == nil || !strings.Contains(err.Error(), "secret:") {
		t.Fatalf("Submit = %v, want an error asking for secret:", err)
	}
}

// TestParseList reads `kubectl get jobs,pods -o json` captured from the
// real control plane (scripts/ci/kube-up.sh) with the fake node, by
// TestE2ECampaign (PTB_KUBE_CAPTURE, PTB_KUBE_CAPTURE_EVICTED): at the end
// (three Jobs complete, one failed by its podFailurePolicy on exit 3), and
// just after the eviction (every Job active, the evicted pod being deleted
// with its DisruptionTarget condition).
func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		file   string
		want   map[string]campaign.State
		reason map[string]string
	}{
		{"get-jobs-pods.json",
			map[string]campaign.State{"e2e-a": campaign.StateExited, "e2e-b": campaign.StateExited, "e2e-evicted": campaign.StateExited, "e2e-nomodel": campaign.StateFailed},
			map[string]string{"e2e-nomodel": "PodFailurePolicy: Container ptb for pod default/ptb-e2e-3-"}},
		{"get-jobs-pods-evicted.json",
			map[string]campaign.State{"e2e-a": campaign.StateRunning, "e2e-b": campaign.StateRunning, "e2e-evicted": campaign.StateRunning, "e2e-nomodel": campaign.StateRunning},
			nil},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseList(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		got := map[string]campaign.Status{}
		for _, s := range st {
			got[s.RunID] = s
			if !strings.HasPrefix(s.BackendID, "ptb-e2e-") {
				t.Errorf("%s: %s has backend id %q, want its Job's name", tc.file, s.RunID, s.BackendID)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d runs, want %d: %+v", tc.file, len(got), len(tc.want), st)
		}
		for id, want := range tc.want {
			if got[id].State != want {
				t.Errorf("%s: %s: state %q (%s), want %q", tc.file, id, got[id].State, got[id].Reason, want)
			}
		}
		for id, want := range tc.reason {
			if !strings.HasPrefix(got[id].Reason, want) {
				t.Errorf("%s: %s: reason %q, want it to start with %q", tc.file, id, got[id].Reason, want)
			}
		}
	}
}

// plane returns the control plane of scripts/ci/kube-up.sh and a fake node,
// or skips.
func plane(t *testing.T) (kubeconfig, kubectl string) {
	kubeconfig, kubectl = os.Getenv("PTB_KUBECONFIG"), os.Getenv("PTB_KUBECTL")
	if kubeconfig == "" || kubectl == "" {
		t.Skip("no Kubernetes control plane: run eval \"$(scripts/ci/kube-up.sh)\" (sets PTB_KUBECONFIG, PTB_KUBECTL); .ci/run does")
	}
	return kubeconfig, kubectl
}

func TestContract(t *testing.T) {
	kubeconfig, kubectl := plane(t)
	kubetest.Start(t, kubeconfig, "ptb-fake-node")
	root := t.TempDir()
	campaigntest.Run(t, func(t *testing.T) campaigntest.Env {
		x, err := New(settings(t, "image: ptb-test\nkubectl: "+kubectl+"\nkubeconfig: "+kubeconfig+"\ngrace_seconds: 60\n"))
		if err != nil {
			t.Fatal(err)
		}
		return campaigntest.Env{Exec: x, Root: root, Wait: 90 * time.Second, EngineThrottles: true}
	})
}
