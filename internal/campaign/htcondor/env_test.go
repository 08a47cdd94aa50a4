package htcondor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// On the real pool: getenv forwards the named variables (and no other),
// their values never enter the submit files, and a job asking for a GPU
// gets one of the pool's (simulated) GPUs in CUDA_VISIBLE_DEVICES and is
// told to read it from there.
func TestJobEnvironmentOnPool(t *testing.T) {
	bin := poolBin(t)
	root := sharedRoot(t)
	t.Setenv("PTB_TEST_SECRET", "s3cr3t-forwarded")
	t.Setenv("PTB_TEST_OTHER", "s3cr3t-kept")
	exe := filepath.Join(root, "envdump")
	os.WriteFile(exe, []byte("#!/bin/sh\n{ echo \"argv: $*\"; env; } > \"$(dirname \"$0\")/env.out\"\n"), 0o755)
	ref := campaign.Ref{Campaign: "envtest", Dir: campaign.Dir(root, "envtest")}
	os.MkdirAll(ref.Dir, 0o777)
	os.Chmod(filepath.Dir(ref.Dir), 0o777)
	os.Chmod(ref.Dir, 0o777)
	e := New(Settings{Bin: bin, VacateTime: 30 * time.Second})
	st, err := e.Submit(t.Context(), campaign.Submission{Campaign: ref.Campaign, Root: root, Dir: ref.Dir, Exe: exe,
		Jobs: []campaign.Job{{RunID: "env-1"}}, PassEnv: []string{"PTB_TEST_SECRET"}, Resources: campaign.Resources{GPUs: 1, CPUs: 1, MemoryMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "env.out")
	var b []byte
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		if b, err = os.ReadFile(out); err == nil && len(b) > 0 {
			if got, _ := e.List(t.Context(), ref); len(got) == 1 && !got[0].State.Live() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not run (env.out: %v)", st[0].BackendID, err)
		}
	}
	env := string(b)
	if !strings.Contains(env, "PTB_TEST_SECRET=s3cr3t-forwarded") {
		t.Errorf("the named variable did not reach the job:\n%s", env)
	}
	if strings.Contains(env, "s3cr3t-kept") {
		t.Errorf("a variable not named in PassEnv reached the job")
	}
	if !strings.Contains(env, "--gpus env:CUDA_VISIBLE_DEVICES") {
		t.Errorf("argv lacks --gpus env:CUDA_VISIBLE_DEVICES:\n%s", env)
	}
	var cvd string
	for _, l := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(l, "CUDA_VISIBLE_DEVICES="); ok {
			cvd = v
		}
	}
	if cvd == "" {
		t.Errorf("the job got no CUDA_VISIBLE_DEVICES:\n%s", env)
	}
	t.Logf("CUDA_VISIBLE_DEVICES in the job: %q", cvd)
	files, _ := filepath.Glob(filepath.Join(ref.Dir, "htcondor", "submit-*"))
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "s3cr3t") {
			t.Errorf("%s holds a forwarded value", f)
		}
	}
}
