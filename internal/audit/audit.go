package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// Options says what to audit. Either RunDir (a run directory) or Workspace
// (a bare workspace, with Task and BaseModel) is set; for a run directory,
// Task and BaseModel default to its job spec.
type Options struct {
	RunDir, Workspace, Task, BaseModel, HFCache, DataDir string
	// Judge runs the LLM judge; nil leaves the judge unverified.
	Judge JudgeRunner
	// JudgeRuns is the number of judge runs to take the majority of (default 1).
	JudgeRuns int
	// TestSets overrides the test-set source (default: the tasks' test items
	// from DataDir, TaskTestSets{dataset.Dir(DataDir)}).
	TestSets TestSets
	// HubLog and Protected override the run directory's gateway/hub.jsonl and
	// protected.json (a bare workspace has neither unless given here).
	HubLog, Protected string
	// Getenv reads HF_HUB_CACHE, HF_HOME, HOME and PTB_CACHE (default os.Getenv).
	Getenv func(string) string
	// Registry pins the sha256 of reference weights (nil: the built-in
	// registry).
	Registry *registry.Registry
	// PinFile is where reference digests are recorded on first use when the
	// registry pins none ("" = DefaultPinFile; "-" = never record: unpinned
	// references are unverified).
	PinFile string
	// Untrusted are directories the agent could write (the output root);
	// no reference weights are taken from inside them. The run directory
	// or workspace audited is always untrusted.
	Untrusted []string
}

// target is Options resolved against the file system.
type target struct {
	label, workspace, finalModel, task, base string
	protected, hubLog, trace                 string
	egressLog, network, sandbox              string
	// finalRoot is where links in final_model may lead ("" = nowhere:
	// the collected copy has none).
	finalRoot string
	// refs gives the base and instruct weights and config, from
	// harness-owned caches only; agentCaches are the agent's own hub
	// caches, compared with only to find what final_model is closer to.
	refs        *refStore
	agentCaches []string
	roots       []ScanRoot
}

func resolve(o Options) (*target, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	t := &target{task: o.Task, base: o.BaseModel, protected: o.Protected, hubLog: o.HubLog}
	untrusted := append([]string{}, o.Untrusted...)
	switch {
	case o.RunDir != "" && o.Workspace != "":
		return nil, errors.New("audit: give a run directory or a workspace, not both")
	case o.RunDir != "":
		d := rundir.Dir(o.RunDir)
		if !isDir(o.RunDir) {
			return nil, fmt.Errorf("audit: run directory %s: %w", o.RunDir, os.ErrNotExist)
		}
		t.label = o.RunDir
		var spec result.Spec
		if err := d.ReadJSON(rundir.JobFile, &spec); err != nil {
			if r, rerr := result.Read(d.Path(rundir.ResultFile)); rerr == nil {
				spec = r.Spec
			}
		}
		if t.task == "" {
			t.task = spec.Benchmark
		}
		if t.base == "" {
			t.base = spec.BaseModel
		}
		t.workspace = d.Path(rundir.Workspace)
		if !isDir(t.workspace) {
			t.workspace = d.Path(rundir.Snapshot)
		}
		t.finalModel = d.Path(rundir.FinalModel)
		if !isDir(t.finalModel) {
			t.finalModel = filepath.Join(t.workspace, "final_model")
		}
		if t.protected == "" {
			t.protected = d.Path(rundir.ProtectedFile)
		}
		if t.hubLog == "" {
			t.hubLog = d.Path(rundir.GatewayHubLog)
		}
		t.egressLog = d.Path(rundir.GatewayEgressLog)
		t.network, t.sandbox = spec.Network, spec.SandboxName
		t.trace = d.Path(rundir.TraceRaw)
		hfHome := d.Path(rundir.Home, ".cache", "huggingface")
		t.agentCaches = existingDirs(filepath.Join(hfHome, "hub"))
		untrusted = append(untrusted, o.RunDir)
		// Everything the agent could write: its workspace, its HOME (with
		// the Hugging Face cache it downloaded into) and its private /tmp.
		t.roots = []ScanRoot{
			{Label: "workspace", Dir: t.workspace},
			{Label: "home", Dir: d.Path(rundir.Home), CLIState: true},
			{Label: "tmp", Dir: d.Path(rundir.Tmp)},
		}
	case o.Workspace != "":
		if !isDir(o.Workspace) {
			return nil, fmt.Errorf("audit: workspace %s: %w", o.Workspace, os.ErrNotExist)
		}
		t.label = o.Workspace
		t.workspace = o.Workspace
		t.finalModel = filepath.Join(o.Workspace, "final_model")
		t.finalRoot = o.Workspace
		untrusted = append(untrusted, o.Workspace)
		t.roots = []ScanRoot{{Label: "workspace", Dir: o.Workspace}}
	default:
		return nil, errors.New("audit: no run directory or workspace given")
	}
	reg := o.Registry
	if reg == nil {
		reg = registry.Default()
	}
	pinFile := o.PinFile
	switch pinFile {
	case "":
		pinFile = DefaultPinFile(getenv)
	case "-":
		pinFile = ""
	}
	t.refs = &refStore{caches: HFCacheDirs(o.HFCache, getenv), untrusted: untrusted, reg: reg, pinFile: pinFile}
	return t, nil
}

// Run audits a run directory or a bare workspace. Every check runs; a check
// that cannot run is an unverified finding, never an error. Run returns an
// error only when the target itself cannot be resolved or ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	t, err := resolve(o)
	if err != nil {
		return nil, err
	}
	sets := o.TestSets
	if sets == nil && o.DataDir != "" {
		sets = TaskTestSets{Src: dataset.Dir(o.DataDir)}
	}
	var fs []Finding
	fs = append(fs, checkProtected(t.workspace, t.protected))
	fs = append(fs, checkConfig(t.finalModel, t.base, t.refs))
	fs = append(fs, checkCode(t.finalModel))
	fs = append(fs, checkLineage(ctx, t, t.base)...)
	fs = append(fs, checkContamination(ctx, sets, t.task, exemptProtected(t.roots, t.protected), t.trace))
	fs = append(fs, checkHub(t.hubLog, t.network)...)
	if t.egressLog != "" {
		// A run directory: how the agent reached the network, and where.
		fs = append(fs, checkNetwork(t.network, t.sandbox))
		fs = append(fs, checkEgress(t.egressLog, t.network)...)
	}
	fs = append(fs, checkTrace(t.trace)...)
	fs = append(fs, runJudge(ctx, o.Judge, t.workspace, t.base, t.task, o.JudgeRuns)...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := Decide(fs)
	r.Task, r.Base, r.Target = t.task, t.base, t.label
	return r, nil
}
