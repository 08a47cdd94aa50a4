package campaign

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/registry"
)

func matrixFile(id string) string {
	return `name: m
out: runs
agents:
  - scaffold: claude
    model: claude-opus-4-6
  - name: opus-reprompt
    scaffold: claude
    model: claude-opus-4-6
    label: Opus reprompt
    args: [--reprompt, 30m]
  - scaffold: scripted
base_models: [qwen3-1.7b, Qwen/Qwen3-4B-Base]
benchmarks: [gsm8k, humaneval]
seeds: [0, 1]
exclude:
  - {agent: opus-reprompt, benchmark: humaneval}
  - {base_model: qwen3-4b, seed: 1}
include:
  - {agent: scripted, base_model: gemma3-4b, benchmark: gsm8k, seed: 7}
baselines:
  kinds: [zero-shot, instruct]
  models_dir: models
run:
  script: s.yaml
executor:
  fake: {id: ` + id + `}
`
}

func TestExpandOrderAndIDs(t *testing.T) {
	_, id := newFake(t)
	f, cells := writeCampaign(t, matrixFile(id))
	var got []string
	for _, c := range cells {
		got = append(got, c.RunID)
	}
	want := []string{
		"gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0", "gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s1",
		"humaneval_qwen3-1.7b_claude-claude-opus-4-6_s0", "humaneval_qwen3-1.7b_claude-claude-opus-4-6_s1",
		"gsm8k_qwen3-4b_claude-claude-opus-4-6_s0", "humaneval_qwen3-4b_claude-claude-opus-4-6_s0",
		"gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0_opus-reprompt", "gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s1_opus-reprompt",
		"gsm8k_qwen3-4b_claude-claude-opus-4-6_s0_opus-reprompt",
		"gsm8k_qwen3-1.7b_scripted_s0", "gsm8k_qwen3-1.7b_scripted_s1", "humaneval_qwen3-1.7b_scripted_s0", "humaneval_qwen3-1.7b_scripted_s1",
		"gsm8k_qwen3-4b_scripted_s0", "humaneval_qwen3-4b_scripted_s0",
		"gsm8k_gemma3-4b_scripted_s7",
		"gsm8k_qwen3-1.7b_baseline-zeroshot", "gsm8k_qwen3-1.7b_baseline-instruct", "humaneval_qwen3-1.7b_baseline-zeroshot", "humaneval_qwen3-1.7b_baseline-instruct",
		"gsm8k_qwen3-4b_baseline-zeroshot", "gsm8k_qwen3-4b_baseline-instruct", "humaneval_qwen3-4b_baseline-zeroshot", "humaneval_qwen3-4b_baseline-instruct",
	}
	if !slices.Equal(got, want) {
		t.Errorf("run ids\n got %q\nwant %q", got, want)
	}
	// Expanding again gives the same cells, hashes included.
	again, err := f.Expand(registry.Default(), testSpecifier(registry.Default()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range cells {
		if !slices.Equal(again[i].Args, cells[i].Args) || again[i].Hash != cells[i].Hash {
			t.Errorf("cell %d differs between expansions", i)
		}
	}
	// The variant's args reach ptb run after the campaign's own.
	v := cells[6]
	if v.Agent != "opus-reprompt" || !slices.Equal(v.Args[len(v.Args)-2:], []string{"--reprompt", "30m"}) || cells[0].Hash == v.Hash {
		t.Errorf("variant cell %+v", v)
	}
	// A baseline is a ptb eval of the model in models_dir.
	b := cells[17]
	if b.Kind != KindEval || b.Baseline != BaselineInstruct || !slices.Contains(b.Args, filepath.Join(f.Baselines.ModelsDir, "Qwen", "Qwen3-1.7B")) {
		t.Errorf("baseline cell %+v", b)
	}
}

func TestExpandCollision(t *testing.T) {
	_, id := newFake(t)
	body := strings.Replace(matrixFile(id), "  - scaffold: scripted\n", "  - scaffold: scripted\n  - name: scripted-2\n    scaffold: scripted\n", 1)
	dir := t.TempDir()
	p := filepath.Join(dir, "camp.yaml")
	os.WriteFile(p, []byte(body), 0o644)
	f, err := ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Expand(registry.Default(), testSpecifier(registry.Default()))
	if err == nil || !strings.Contains(err.Error(), "would share run id gsm8k_qwen3-1.7b_scripted_s0") || !strings.Contains(err.Error(), "camp.yaml:12:") {
		t.Errorf("err = %v, want a collision naming the run id and the line", err)
	}
}

func TestAssign(t *testing.T) {
	root := t.TempDir()
	cells := []Cell{{RunID: "a", Hash: "h1", Agent: "x", Line: 3}, {RunID: "b", Hash: "h2", Agent: "x", Line: 3}}
	entries, added, err := Assign(nil, cells, root)
	if err != nil || len(added) != 2 || entries[1].Index != 1 {
		t.Fatalf("first assign: %+v %+v %v", entries, added, err)
	}
	index := added
	// The same cells again: nothing new.
	if _, added, err := Assign(index, cells, root); err != nil || len(added) != 0 {
		t.Errorf("second assign added %+v, %v", added, err)
	}
	// A new cell gets the next index; old indices never shift.
	cells2 := append([]Cell{{RunID: "c", Hash: "h3"}}, cells...)
	entries, added, err = Assign(index, cells2, root)
	if err != nil || len(added) != 1 || entries[0].Index != 2 || entries[1].Index != 0 {
		t.Errorf("assign with a new cell: %+v %+v %v", entries, added, err)
	}
	// An edited cell reusing an id whose run directory exists is refused.
	os.Mkdir(filepath.Join(root, "a"), 0o755)
	edited := []Cell{{RunID: "a", Hash: "h9", Agent: "x", Line: 3}}
	_, _, err = Assign(index, edited, root)
	if err == nil || !strings.Contains(err.Error(), "line 3: cell (agent x") || !strings.Contains(err.Error(), "remove the old run directory "+filepath.Join(root, "a")) {
		t.Errorf("err = %v", err)
	}
	// Once the user removed it, the cell gets a new entry, which Find prefers.
	os.Remove(filepath.Join(root, "a"))
	entries, added, err = Assign(index, edited, root)
	if err != nil || len(added) != 1 || added[0].Index != 2 || added[0].SpecHash != "h9" {
		t.Fatalf("re-declared: %+v %v", added, err)
	}
	if e, _ := Find(append(index, added...), 0, "a"); e.Index != 2 {
		t.Errorf("Find(a) = %+v, want the newest entry", e)
	}
}

// Paths in args are relative to the campaign file, like every path of it.
func TestArgsPathsAreAbsolute(t *testing.T) {
	_, id := newFake(t)
	body := strings.Replace(validFile, "  script: s.yaml\n", "  script: s.yaml\n  args: [--ro, models, --credentials=auth.json, --judge-model, m]\n", 1)
	f, _ := writeCampaign(t, strings.ReplaceAll(body, "ID", id))
	dir := filepath.Dir(f.Path)
	want := []string{"--ro", filepath.Join(dir, "models"), "--credentials=" + filepath.Join(dir, "auth.json"), "--judge-model", "m"}
	if !slices.Equal(f.Run.Args, want) {
		t.Errorf("run.args %q, want %q", f.Run.Args, want)
	}
}

func TestChildArgs(t *testing.T) {
	run := Entry{Job: Job{RunID: "r"}, Args: []string{"--agent", "scripted"}}
	ev := Entry{Job: Job{RunID: "b"}, Kind: KindEval, Args: []string{"--task", "gsm8k"}}
	for _, c := range []struct {
		e    Entry
		gpus string
		want string
	}{
		{run, "", "run --run-id r --out /o --agent scripted"},
		{run, "0,1", "run --run-id r --out /o --agent scripted --gpus 0,1"},
		{ev, "", "eval --out /o/b --task gsm8k --gpus none"},
		{ev, "3", "eval --out /o/b --task gsm8k --gpus 3"},
	} {
		if got := strings.Join(c.e.ChildArgs("/o", c.gpus), " "); got != c.want {
			t.Errorf("ChildArgs(%q) = %q, want %q", c.gpus, got, c.want)
		}
	}
}
