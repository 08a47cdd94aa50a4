package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/eval"
	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

func newEvalCmd(e *env) *cobra.Command {
	var (
		o         eval.Options
		asJSON    bool
		dev       bool
		noSandbox bool
		sbName    string
		gpus      string
		judgeURL  string
		baseModel string
		regFile   string
		pins      pinned.Store
	)
	cmd := &cobra.Command{
		Use:   "eval --task T (--model PATH | --base-url URL | --responses FILE)",
		Short: "Evaluate a model (or recorded completions) on one benchmark",
		Long: `eval runs one PostTrainBench benchmark the way the original harness does and
writes metrics.json, samples.jsonl and server.log to --out. Tasks: ` + fmt.Sprint(task.Names()) + `.

Backends: vllm (start 'vllm serve' on --model), hf (start ptb's own small
transformers server on --model, for machines without vLLM; needs python3 with
torch and transformers, see --hf-python), url (any OpenAI-compatible
--base-url), replay (--responses FILE: one JSON object per line with "id" and
"completion", or "tool_calls" for bfcl). An interrupted evaluation resumes
from samples.jsonl in --out. ArenaHard and HealthBench need OPENAI_API_KEY
(or --judge-url). HumanEval runs each program as a fresh interpreter
process through a few long-lived bubblewrap sandboxes; the interpreter is
--python (default: python3 on ptb's PATH, found before sandboxing, so that a
venv, pyenv or conda Python under a home directory works) and is recorded
with its version in eval.json, with a warning when it is not the original's
3.10.

A server ptb starts (vllm, hf) always gets ptb's pinned chat template for
--base-model (the original's templates at its pinned commit, fetched once into
the cache and checked by sha256 on every use; a mirror with
--pinned-base-url or $PTB_PINNED_BASE_URL; offline copies with
--templates-dir), never the one in the model directory. Without --base-model
the template is chosen by the model directory's name or config.json, and the
summary says so. The judge prompts are pinned the same way.

The vllm and hf servers load the model directory, whose code vLLM runs under
--trust-remote-code: they run in the sandbox (--sandbox, bwrap by default)
with the model read-only, only the --gpus given, no network but a unix socket
to ptb, and none of ptb's environment but an allowlist (add to it with
--server-env). --sandbox none runs them bare and records them as unsandboxed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Task == "" {
				return usagef("--task is required (one of %v)", task.Names())
			}
			if o.Limit < 0 {
				return usagef("--limit %d: want 0 (all samples) or a positive count", o.Limit)
			}
			if o.Concurrency < 0 {
				return usagef("--concurrency %d: want 0 (adaptive) or a positive count", o.Concurrency)
			}
			if o.MaxTokens < 0 {
				return usagef("--max-tokens %d: want 0 (the original's retry ladder) or a positive count", o.MaxTokens)
			}
			if err := jobrun.CheckDataDir(o.DataDir); err != nil {
				return err
			}
			tk, err := task.New(o.Task, o.Version, task.Config{})
			if err != nil {
				return usagef("%v", err)
			}
			info := tk.Info()
			if o.Backend == "" {
				switch {
				case o.Responses != "":
					o.Backend = eval.BackendReplay
				case o.BaseURL != "":
					o.Backend = eval.BackendURL
				case o.ModelPath != "":
					o.Backend = eval.BackendVLLM
				default:
					return usagef("give --model PATH, --base-url URL or --responses FILE")
				}
			}
			if baseModel != "" {
				reg := registry.Default()
				if regFile != "" {
					if reg, err = registry.Load(regFile); err != nil {
						return err
					}
				}
				m, err := reg.Model(baseModel)
				if err != nil {
					return usagef("--base-model: %v", err)
				}
				o.BaseModel = &m
			}
			pins.Offline = o.Offline
			pins.Table = pinTable
			o.Pinned = &pins
			if dev && o.Limit == 0 {
				o.Limit = info.DevLimit
			}
			if o.OutDir == "" {
				o.OutDir = filepath.Join("ptb-eval", info.Name)
			}
			server := eval.StartsServer(o.Backend)
			if noSandbox {
				if cmd.Flags().Changed("sandbox") && sbName != "none" {
					return usagef("--unsafe-no-sandbox runs without a sandbox; it cannot be combined with --sandbox %s", sbName)
				}
				sbName = "none"
			}
			if info.Sandbox || server {
				sb, err := evalSandbox(cmd.Context(), sbName, info.Sandbox)
				if err != nil {
					return err
				}
				o.Sandbox = sb
			}
			if server {
				if o.GPUs, err = evalGPUs(gpus); err != nil {
					return err
				}
				o.Hidden = evalHostData(o)
			}
			if info.Judge {
				key := os.Getenv("OPENAI_API_KEY")
				if key != "" || judgeURL != "" {
					o.Judge = judge.NewOpenAI(judgeURL, key)
				}
			}
			o.Progress = e.stderr
			sum, err := eval.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			fmt.Fprintf(e.stdout, "%s (%s) accuracy %.4f ± %.4f over %d samples; results in %s\n", sum.Task, sum.Version, sum.Accuracy, sum.Stderr, sum.Scored, sum.OutDir)
			if t := sum.ChatTemplate; t != nil {
				by := "base model " + t.BaseModel
				if t.ChosenBy == eval.ChosenByConfig {
					by = "the model's name or config.json (no --base-model)"
				}
				fmt.Fprintf(e.stdout, "chat template %s (sha256 %s), chosen by %s\n", t.File, t.SHA256, by)
			}
			if sum.Missing > 0 {
				fmt.Fprintf(e.stderr, "warning: %d samples had no recorded response and were scored as empty\n", sum.Missing)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Task, "task", "", "benchmark: "+fmt.Sprint(task.Names()))
	f.StringVar(&o.Version, "version", "", "task version: faithful (default) or strict")
	f.StringVar(&o.Backend, "backend", "", "vllm, hf, url or replay (default: from the other flags; --model means vllm)")
	f.StringVar(&o.ModelPath, "model", "", "model directory (vllm and hf backends)")
	f.StringVar(&o.VLLM, "vllm", "", "vllm executable (default: vllm on PATH)")
	f.StringVar(&o.Python, "python", "", "interpreter for HumanEval programs, a path or a name on PATH (default python3)")
	f.StringVar(&o.HFPython, "hf-python", "", "python with torch and transformers for the hf backend (default python3)")
	f.StringVar(&o.BaseURL, "base-url", "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (url backend)")
	f.StringVar(&o.APIKey, "api-key", os.Getenv("PTB_EVAL_API_KEY"), "API key of --base-url (default $PTB_EVAL_API_KEY)")
	f.StringVar(&o.Model, "served-model", "", "model name at --base-url (default: the first of /models)")
	f.StringVar(&o.Responses, "responses", "", "recorded completions, JSON lines (replay backend)")
	f.StringVar(&o.DataDir, "data-dir", "", "local dataset root laid out like shared/datasets (default: $PTB_DATA_DIR, then the cache, the shipped files, the hub)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "dataset cache (default $PTB_CACHE/datasets or the user cache dir)")
	f.BoolVar(&o.Offline, "offline", false, "use the dataset cache only")
	f.StringVar(&o.TemplatesDir, "templates-dir", "", "offline copies of the pinned chat templates (qwen3.jinja, ...), checked by sha256 (default: the pinned cache)")
	f.StringVar(&baseModel, "base-model", "", "the job's base model (registry id or short name): chooses the chat template (default: by the model's config)")
	f.StringVar(&regFile, "registry", "", "registry file for --base-model (default: the built-in one)")
	f.StringVar(&pins.BaseURL, "pinned-base-url", "", "mirror replacing https://raw.githubusercontent.com for the pinned templates and judge prompts (default $"+pinned.EnvBaseURL+")")
	f.StringVar(&pins.CacheDir, "pinned-cache-dir", "", "cache of pinned files (default $PTB_CACHE/pinned or the user cache dir)")
	f.IntVar(&o.Limit, "limit", 0, "evaluate the first N samples (0 = all)")
	f.BoolVar(&dev, "dev", false, "use the original's development limit (gsm8k 150, gpqamain 50, ...)")
	f.IntVar(&o.MaxTokens, "max-tokens", 0, "max tokens per completion (0 = the original's retry ladder)")
	f.StringVar(&o.Ladder, "ladder", eval.LadderFaithful, "retry ladder: faithful (a failed attempt reruns the whole set, as run_task.sh) or per-sample (keep finished samples, retry the rest)")
	f.IntVar(&o.Concurrency, "concurrency", 0, fmt.Sprintf("requests in flight; 0 = adaptive: start at %d and grow while throughput grows", eval.AdaptiveStart))
	f.StringVar(&o.OutDir, "out", "", "output directory (default ptb-eval/TASK)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.StringVar(&sbName, "sandbox", "bwrap", "sandbox for the inference server and HumanEval programs: bwrap, or none (development only, recorded as unsandboxed)")
	f.BoolVar(&noSandbox, "unsafe-no-sandbox", false, "run the inference server and HumanEval programs unsandboxed (--sandbox none; development only, recorded as unsandboxed)")
	f.StringVar(&gpus, "gpus", "auto", "GPU indices the server may use, e.g. 0 or 0,1; auto: $CUDA_VISIBLE_DEVICES, else every /dev/nvidiaN; none: no GPU")
	f.StringArrayVar(&o.ServerEnv, "server-env", nil, "add KEY=VALUE (or KEY, from ptb's environment) to the server's environment (repeatable)")
	f.StringVar(&judgeURL, "judge-url", "", "grading endpoint for arenahardwriting/healthbench (default OpenAI)")
	return cmd
}

// evalSandbox returns the sandbox for the server and HumanEval programs:
// the named backend, checked.
func evalSandbox(ctx context.Context, name string, programs bool) (sandbox.Backend, error) {
	if name == "" {
		name = "bwrap"
	}
	b, err := sandbox.Lookup(name)
	if err != nil {
		return nil, usagef("unknown sandbox %q (want %s)", name, strings.Join(sandbox.Backends(), " or "))
	}
	err = b.Check(ctx)
	if err == nil {
		return b, nil
	}
	what := "the inference server runs the model directory's code"
	if programs {
		what = "humaneval runs generated code"
	}
	return nil, fmt.Errorf("%s and needs bubblewrap (%v); install bubblewrap, or pass --unsafe-no-sandbox (--sandbox none) for an unsandboxed development run", what, err)
}

// evalGPUs reads --gpus: a list, none, or auto (the harness's
// CUDA_VISIBLE_DEVICES when it lists indices, else every /dev/nvidiaN).
func evalGPUs(s string) ([]int, error) {
	switch s {
	case "none":
		return nil, nil
	case "auto":
		if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
			if g, err := parseGPUs(v); err == nil {
				return g, nil
			}
		}
		var g []int
		devs, _ := filepath.Glob("/dev/nvidia[0-9]*")
		for _, d := range devs {
			if n, err := strconv.Atoi(strings.TrimPrefix(d, "/dev/nvidia")); err == nil {
				g = append(g, n)
			}
		}
		slices.Sort(g)
		return g, nil
	}
	return parseGPUs(s)
}

// evalHostData are the host paths the server must not see: the
// evaluation's data (test sets with their answers) and the recorded
// completions.
func evalHostData(o eval.Options) []string {
	cache := o.CacheDir
	if cache == "" {
		cache = dataset.DefaultCacheDir()
	}
	var h []string
	for _, p := range []string{o.DataDir, os.Getenv("PTB_DATA_DIR"), cache, o.Responses} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				h = append(h, abs)
			}
		}
	}
	return h
}

func newDataCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Manage benchmark datasets"}
	var cacheDir string
	var pins pinned.Store
	pull := &cobra.Command{
		Use:   "pull [TASK...]",
		Short: "Download benchmark data, chat templates and judge prompts into the cache (HF_ENDPOINT, HF_TOKEN honoured)",
		Long: `pull downloads the datasets of the given tasks (all by default) into the
dataset cache, and the pinned chat templates and judge prompts into the pinned
cache (from raw.githubusercontent.com at the original's commits, or the mirror
of --pinned-base-url / $` + pinned.EnvBaseURL + `), each checked by sha256.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = task.Names()
			}
			hub := dataset.NewHub(cacheDir, false)
			failed := 0
			for _, name := range args {
				files, ok := task.Files(name)
				if !ok {
					return usagef("unknown task %q (known: %v)", name, task.Names())
				}
				for _, f := range files {
					if f.Shipped != "" {
						fmt.Fprintf(e.stdout, "%s\t%s (shipped with ptb)\n", name, f.Name())
						continue
					}
					p, err := hub.Pull(cmd.Context(), f)
					if err != nil {
						failed++
						fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
						continue
					}
					fmt.Fprintf(e.stdout, "%s\t%s\n", name, p)
				}
			}
			pins.Table = pinTable
			lines, err := eval.PullPinned(cmd.Context(), &pins)
			for _, l := range lines {
				fmt.Fprintf(e.stdout, "pinned\t%s\n", l)
			}
			if err != nil {
				fmt.Fprintln(e.stderr, err)
				failed++
			}
			if failed > 0 {
				return fmt.Errorf("%d files could not be pulled", failed)
			}
			return nil
		},
	}
	pull.Flags().StringVar(&cacheDir, "cache-dir", "", "dataset cache (default $PTB_CACHE/datasets or the user cache dir)")
	pull.Flags().StringVar(&pins.BaseURL, "pinned-base-url", "", "mirror replacing https://raw.githubusercontent.com (default $"+pinned.EnvBaseURL+")")
	pull.Flags().StringVar(&pins.CacheDir, "pinned-cache-dir", "", "cache of pinned files (default $PTB_CACHE/pinned or the user cache dir)")
	cmd.AddCommand(pull)
	return cmd
}
