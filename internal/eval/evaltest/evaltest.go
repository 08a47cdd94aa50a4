// Package evaltest holds test helpers shared by the eval packages: where the
// shared fixtures are, and a sandbox to run HumanEval programs in.
package evaltest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/pyexec"
	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/sharedtest"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// Shared returns the shared fixture directory (see sharedtest).
func Shared(t testing.TB) string { return sharedtest.Dir(t) }

// Datasets returns the shared datasets directory.
func Datasets(t testing.TB) string { return filepath.Join(Shared(t), "datasets") }

// Sandbox returns bubblewrap when it works here, else the unisolated `none`
// backend (logged). It skips when python3 is missing.
func Sandbox(t testing.TB) sandbox.Backend {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	b := bwrap.New()
	if err := b.Check(context.Background()); err == nil {
		return b
	} else {
		t.Logf("bubblewrap unavailable (%v); running programs with the none backend", err)
	}
	return none.New()
}

// Programs returns a pool that runs HumanEval programs with the host's
// python3 in Sandbox(t), one sandbox per CPU, closed when the test ends.
// The test binary is the worker inside: its TestMain must hand the
// pyexec.WorkerCommand argument to pyexec.Main.
func Programs(t testing.TB, limits sandbox.Limits, timeout time.Duration) *pyexec.Pool {
	t.Helper()
	sb := Sandbox(t)
	py, err := pyexec.Resolve(context.Background(), "python3", pyexec.HostEnv())
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pyexec.New(pyexec.Options{Sandbox: sb, Self: self, Python: py, Size: runtime.NumCPU(), Limits: limits,
		Timeout: timeout, OutputLimit: 10 << 20, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Stand-in judge prompts the test mirror serves (the originals are pinned
// in package pinned; see its opt-in TestRealPins).
const (
	ArenaHardJudgePrompt = "Judge. Output [[A>B]] etc."
	HealthBenchGrader    = "# Conversation\n<<conversation>>\n\n# Rubric item\n<<rubric_item>>"
)

// TemplateText is the content of the test mirror's template name.
func TemplateText(name string) string { return "{# test template " + name + " #}{{ messages }}\n" }

// Mirror is a local HTTP mirror of pinned files with a table pinning them.
type Mirror struct {
	URL   string
	Table *pinned.Table
	Files map[string]string // served content by URL path
}

// Store returns a store over the mirror with a fresh cache.
func (m *Mirror) Store(t testing.TB) *pinned.Store {
	return &pinned.Store{Table: m.Table, CacheDir: t.TempDir(), BaseURL: m.URL}
}

// NewMirror starts an httptest mirror serving small test templates (one per
// name of the real table) and Python sources holding the judge prompts,
// laid out like the pinned URLs' paths, and a table pinning their digests.
func NewMirror(t testing.TB) *Mirror {
	t.Helper()
	sum := func(s string) string {
		b := sha256.Sum256([]byte(s))
		return hex.EncodeToString(b[:])
	}
	m := &Mirror{Table: &pinned.Table{Templates: map[string]pinned.Source{}}, Files: map[string]string{}}
	for _, n := range pinned.Default().TemplateNames() {
		path := "/test/ptb/c0ffee/templates/" + n
		m.Files[path] = TemplateText(n)
		m.Table.Templates[n] = pinned.Source{Name: n, URL: pinned.DefaultBaseURL + path, SHA256: sum(m.Files[path])}
	}
	judgePy := "OTHER = 'x'\nJUDGE_SETTINGS = {\n    \"hard_prompt\": {\"system_prompt\": OTHER},\n    \"creative_writing\": {\n        \"baseline\": \"m\",\n        \"system_prompt\": " + strconv.Quote(ArenaHardJudgePrompt) + ",\n    },\n}\n"
	graderPy := "GRADER_TEMPLATE = \"\"\"\n" + HealthBenchGrader + "\n\"\"\".strip()\n"
	m.Files["/test/arena/c0ffee/utils/judge_utils.py"] = judgePy
	m.Files["/test/evals/c0ffee/healthbench_eval.py"] = graderPy
	def := pinned.Default()
	m.Table.ArenaHardJudge = pinned.Source{Name: def.ArenaHardJudge.Name, URL: pinned.DefaultBaseURL + "/test/arena/c0ffee/utils/judge_utils.py",
		SHA256: sum(judgePy), Literal: def.ArenaHardJudge.Literal, TextSHA256: sum(ArenaHardJudgePrompt)}
	m.Table.HealthBenchGrader = pinned.Source{Name: def.HealthBenchGrader.Name, URL: pinned.DefaultBaseURL + "/test/evals/c0ffee/healthbench_eval.py",
		SHA256: sum(graderPy), Literal: def.HealthBenchGrader.Literal, TextSHA256: sum(HealthBenchGrader)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := m.Files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(b))
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}
