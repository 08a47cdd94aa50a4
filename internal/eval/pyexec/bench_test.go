package pyexec

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchProgram is a HumanEval-sized program: a function, its checks, the
// call (HumanEval/0's shape).
const benchProgram = `from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True
    return False


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False


check(has_close_elements)
`

// BenchmarkPoolProgram is what one program costs through a bwrap sandbox
// of the pool, against the same program started directly (os/exec) with
// the same interpreter and the environment the worker gives it, one
// program at a time, alternating in each iteration: pool-ms/program,
// direct-ms/program and their ratio (the per-program overhead of the
// sandbox: a new user, pid and ipc namespace with /bin/sh as its pid 1,
// and emptying what the program could write). The sandbox is started
// before the timer.
func BenchmarkPoolProgram(b *testing.B) {
	py := hostPython(b)
	p := testPool(b, bwrapBackend(b), py, 1, 30*time.Second)
	if r, err := p.Run(context.Background(), benchProgram); err != nil || !r.Passed() {
		b.Fatalf("through the pool: %+v, %v", r, err)
	}
	dir := b.TempDir()
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	env := append([]string{"PATH=" + strings.Join(append(append([]string{}, py.Dirs...), SystemPath), ":"),
		"LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "HOME=" + home, "TMPDIR=" + tmp}, py.Env...)
	direct := func() {
		cmd := exec.Command(py.Path, "-c", benchProgram)
		cmd.Env, cmd.Dir = env, dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("directly: %v: %s", err, out)
		}
	}
	const n = 20
	var pool, plain time.Duration
	for b.Loop() {
		began := time.Now()
		for range n {
			if r, err := p.Run(context.Background(), benchProgram); err != nil || !r.Passed() {
				b.Fatalf("through the pool: %+v, %v", r, err)
			}
		}
		pool += time.Since(began)
		began = time.Now()
		for range n {
			direct()
		}
		plain += time.Since(began)
	}
	progs := float64(b.N * n)
	b.ReportMetric(float64(pool.Milliseconds())/progs, "pool-ms/program")
	b.ReportMetric(float64(plain.Milliseconds())/progs, "direct-ms/program")
	b.ReportMetric(pool.Seconds()/plain.Seconds(), "pool/direct")
}
