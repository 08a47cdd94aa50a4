package task

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/pyexec"
)

// anchorLoop runs the programs in a JSON file with `python -c`, each under
// the original's 30 s timeout, in a plain sequential loop (workers 1) or a
// thread pool, and exits 1 unless every program exited 0.
const anchorLoop = `import json, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
progs = json.load(open(sys.argv[1]))
workers = int(sys.argv[2])
def run(p):
    return subprocess.run([sys.executable, "-c", p], capture_output=True, timeout=30).returncode
if workers == 1:
    codes = [run(p) for p in progs]
else:
    with ThreadPoolExecutor(workers) as ex:
        codes = list(ex.map(run, progs))
sys.exit(0 if all(c == 0 for c in codes) else 1)
`

// BenchmarkHumanEval scores the 164 canonical solutions through ptb (the
// task's Score, programs in a pool of one long-lived bwrap sandbox per
// CPU, the pool's start and end included) and, side by side with the
// same interpreter, runs the same programs in a plain sequential Python
// loop and in a 2-thread Python pool, unsandboxed. It reports each
// wall time and the ratios ptb/sequential (goal: below 1) and
// ptb/2-threads (goal: at most 1.3).
//
// The interpreter is resolved once, before the timed part, for ptb and
// the anchors alike (the anchors are handed the resolved path): resolving
// python3 through a pyenv shim runs a chain of bash scripts that costs
// about a second here, once per run, not per program. Its time is
// reported on its own (resolve-s/op), outside the ratios.
func BenchmarkHumanEval(b *testing.B) {
	tk := mustTask(b, "humaneval")
	samples, err := tk.Load(context.Background(), dataset.Dir(evaltest.Datasets(b)))
	if err != nil {
		b.Fatal(err)
	}
	resolveBegan := time.Now()
	py, err := pyexec.Resolve(context.Background(), "python3", pyexec.HostEnv())
	if err != nil {
		b.Skipf("python3: %v", err)
	}
	resolve := time.Since(resolveBegan)
	sb := evaltest.Sandbox(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	progs := make([]string, len(samples))
	for i, s := range samples {
		r := s.data.(HumanEvalRecord)
		progs[i] = r.Prompt + FindCode(s.Target) + "\n" + r.Test + "\n" + "check(" + r.EntryPoint + ")"
	}
	dir := b.TempDir()
	progFile, loop := filepath.Join(dir, "programs.json"), filepath.Join(dir, "loop.py")
	pj, _ := json.Marshal(progs)
	if err := os.WriteFile(progFile, pj, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(loop, []byte(anchorLoop), 0o644); err != nil {
		b.Fatal(err)
	}
	anchor := func(workers string) time.Duration {
		began := time.Now()
		out, err := exec.Command(py.Path, loop, progFile, workers).CombinedOutput()
		if err != nil {
			b.Fatalf("python loop (%s workers): %v: %s", workers, err, out)
		}
		return time.Since(began)
	}
	var ptb, seq, pool2 time.Duration
	for b.Loop() {
		began := time.Now()
		// As evaltest.Programs makes it, with the interpreter resolved
		// above.
		pool, err := pyexec.New(pyexec.Options{Sandbox: sb, Self: self, Python: py, Size: runtime.NumCPU(),
			Limits: HumanEvalLimits, Timeout: HumanEvalTimeout, OutputLimit: 10 << 20, TempDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		env := Env{Programs: pool}
		var wg sync.WaitGroup
		var failed []string
		var mu sync.Mutex
		for _, s := range samples {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc, err := tk.Score(context.Background(), env, s, Output{Content: s.Target})
				if err != nil || sc.Score != 1 {
					mu.Lock()
					failed = append(failed, s.ID)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		pool.Close()
		ptb += time.Since(began)
		if len(failed) > 0 {
			b.Fatalf("canonical solutions scored 0 through ptb: %s", strings.Join(failed, ", "))
		}
		seq += anchor("1")
		pool2 += anchor("2")
	}
	n := float64(b.N)
	b.ReportMetric(resolve.Seconds(), "resolve-s/op")
	b.ReportMetric(ptb.Seconds()/n, "ptb-s/op")
	b.ReportMetric(seq.Seconds()/n, "seq-s/op")
	b.ReportMetric(pool2.Seconds()/n, "pool2-s/op")
	b.ReportMetric(ptb.Seconds()/seq.Seconds(), "ptb/seq")
	b.ReportMetric(ptb.Seconds()/pool2.Seconds(), "ptb/pool2")
}
