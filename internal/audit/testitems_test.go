package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// TestContaminationFromHubCache: with no data dir, the test split comes
// from the dataset cache `ptb data pull` fills (dataset.Locate's second
// layer), so the contamination scan runs: a workspace holding the test set
// is flagged, a clean one passes; neither is unverified. The audit's own
// directory reader (gone) could only read a data dir and left both
// unverified.
func TestContaminationFromHubCache(t *testing.T) {
	data := sharedDatasets(t)
	b, err := os.ReadFile(filepath.Join(data, task.BFCLFile.Local))
	if err != nil {
		t.Skip(err)
	}
	hub := &dataset.Hub{CacheDir: t.TempDir(), Offline: true}
	p := hub.CachePath(task.BFCLFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &dataset.Layered{Dir: t.TempDir(), Hub: hub, Offline: true} // an empty data dir
	cheat, clean := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(cheat, "train.jsonl"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clean, "train.py"), []byte("print('hello')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sets TestSets
		dir  string
		want string
	}{
		{"cheat, hub cache", TaskTestSets{Src: src}, cheat, Flag},
		{"clean, hub cache", TaskTestSets{Src: src}, clean, Pass},
		{"clean, cached index", &CachedTestSets{Src: TaskTestSets{Src: src}}, clean, Pass},
		{"clean, data dir only", TaskTestSets{Src: dataset.Dir(t.TempDir())}, clean, Unverified},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := checkContamination(context.Background(), c.sets, "bfcl", []ScanRoot{{Label: "workspace", Dir: c.dir}}, "")
			if f.Status != c.want {
				t.Fatalf("status = %s %v, want %s", f.Status, f.Evidence, c.want)
			}
			if c.want != Unverified && !strings.Contains(strings.Join(f.Evidence, "\n"), p) {
				t.Errorf("evidence %v does not name the cached file %s", f.Evidence, p)
			}
		})
	}
}

// TestTaskTestSetsTasks: the tasks with test items and those without (an
// error wrapping os.ErrNotExist: the scan is unverified, not failed).
func TestTaskTestSetsTasks(t *testing.T) {
	data := sharedDatasets(t)
	cases := []struct {
		task  string
		items int // 0: none for this task
	}{
		{"gsm8k", 1319}, {"humaneval", 164}, {"bfcl", 100}, {"arenahard", 250}, {"arenahardwriting", 250},
		{"healthbench", 245},
		{"aime2025", 0}, {"gpqamain", 0}, {"nosuchtask", 0},
	}
	for _, c := range cases {
		t.Run(c.task, func(t *testing.T) {
			ts, err := TaskTestSets{Src: dataset.Dir(data)}.TestSet(context.Background(), c.task)
			if c.items == 0 {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("err = %v, want not-exist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ts.Items); got != c.items || ts.Task != c.task || ts.Source == "" {
				t.Fatalf("got %d items, task %q, source %q; want %d items, task %q", got, ts.Task, ts.Source, c.items, c.task)
			}
		})
	}
}
