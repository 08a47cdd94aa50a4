package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
)

// fakeExec is an executor that keeps its jobs in memory (unit tests only;
// the real schedulers run the contract suite in their own packages).
type fakeExec struct {
	mu        sync.Mutex
	jobs      []Status
	submits   []Submission
	cancelled []string
	listErr   error
	logs      map[string][]string
	settings  *yaml.Node
}

var (
	fakeMu   sync.Mutex
	fakeByID = map[string]*fakeExec{}
)

func init() {
	// The file names its fake by the setting id: each test gets its own.
	Register("fake", func(n *yaml.Node) (Executor, error) {
		var s struct {
			ID string `yaml:"id"`
		}
		if n != nil {
			if err := n.Decode(&s); err != nil {
				return nil, err
			}
		}
		fakeMu.Lock()
		defer fakeMu.Unlock()
		f := fakeByID[s.ID]
		if f == nil {
			return nil, fmt.Errorf("line %d: id %q: no such fake", n.Line, s.ID)
		}
		f.settings = n
		return f, nil
	})
}

func newFake(t *testing.T) (*fakeExec, string) {
	t.Helper()
	id := t.Name()
	f := &fakeExec{logs: map[string][]string{}}
	fakeMu.Lock()
	fakeByID[id] = f
	fakeMu.Unlock()
	t.Cleanup(func() { fakeMu.Lock(); delete(fakeByID, id); fakeMu.Unlock() })
	return f, id
}

func (f *fakeExec) Name() string                    { return "fake" }
func (f *fakeExec) Check(ctx context.Context) error { return nil }
func (f *fakeExec) Submit(ctx context.Context, s Submission) ([]Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, s)
	var out []Status
	for _, j := range s.Jobs {
		st := Status{RunID: j.RunID, BackendID: strconv.Itoa(len(f.jobs)), State: StatePending}
		f.jobs = append(f.jobs, st)
		out = append(out, st)
	}
	return out, nil
}
func (f *fakeExec) List(ctx context.Context, c Ref) ([]Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	return append([]Status(nil), f.jobs...), nil
}
func (f *fakeExec) Cancel(ctx context.Context, c Ref, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, ids...)
	return nil
}
func (f *fakeExec) Logs(ctx context.Context, c Ref, id string) ([]string, error) {
	return f.logs[id], nil
}

// set sets the state of every job of run id.
func (f *fakeExec) set(id string, s State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.jobs {
		if f.jobs[i].RunID == id {
			f.jobs[i].State = s
		}
	}
}

func (f *fakeExec) submitted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, s := range f.submits {
		for _, j := range s.Jobs {
			ids = append(ids, j.RunID)
		}
	}
	return ids
}

// testSpecifier makes a spec from the flags the engine writes (a stand-in
// for ptb run's parser, which internal/cli tests against the real one).
func testSpecifier(reg *registry.Registry) Specifier {
	return func(args []string) (job.Spec, error) {
		var s job.Spec
		for i := 0; i+1 < len(args); i += 2 {
			v := args[i+1]
			switch args[i] {
			case "--agent":
				s.Agent = v
			case "--agent-model":
				s.AgentModel = v
			case "--base-model":
				s.BaseModel = v
			case "--benchmark":
				s.Benchmark = v
			case "--seed":
				s.Seed, _ = strconv.Atoi(v)
			case "--hours":
				s.Hours, _ = strconv.ParseFloat(v, 64)
			case "--label":
				s.Label = v
			case "--script":
				s.Script = v
			case "--eval-backend":
				s.Eval.Backend = v
			case "--eval-responses":
				s.Eval.Responses = v
			case "--sandbox":
				s.Sandbox = v
			case "--spend-cap":
				s.Gateway.SpendCapUSD, _ = strconv.ParseFloat(v, 64)
			case "--reprompt":
				s.Reprompt = 1
			}
		}
		err := s.Normalize(reg)
		return s, err
	}
}

// writeCampaign writes a campaign file into a temp dir and parses it.
func writeCampaign(t *testing.T, body string) (*File, []Cell) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "camp.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "s.yaml"), []byte("steps: []\n"), 0o644)
	f, err := ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := f.Expand(registry.Default(), testSpecifier(registry.Default()))
	if err != nil {
		t.Fatal(err)
	}
	return f, cells
}
