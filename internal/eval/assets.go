package eval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/modelinfo"
	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/registry"
)

// TemplateDir is where the verified chat template the server reads is
// written, inside Options.OutDir.
const TemplateDir = "chat_template"

// Ways a chat template is chosen (TemplateRecord.ChosenBy).
const (
	ChosenByBaseModel = "base_model" // the job's base model (the original's effective choice)
	ChosenByConfig    = "config"     // final_model's directory name or config.json (ptb eval without --base-model)
)

// TemplateRecord says which chat template the server was given and why.
type TemplateRecord struct {
	File      string `json:"file"`                 // qwen3.jinja, ...
	SHA256    string `json:"sha256"`               // of the file passed (always the pinned digest)
	ChosenBy  string `json:"chosen_by"`            // base_model | config
	BaseModel string `json:"base_model,omitempty"` // the registry id, when chosen by it
	Path      string `json:"path"`                 // the file passed with --chat-template
}

// store is the pinned-file store of o.
func (o Options) store() *pinned.Store {
	if o.Pinned != nil {
		return o.Pinned
	}
	return &pinned.Store{Offline: o.Offline}
}

// TemplateFor is the pinned template file for a base model and task: the
// registry's tool template for a task with tools where the model has one,
// else its template.
func TemplateFor(m registry.Model, tools bool) string {
	t := m.Template
	if tools && m.ToolTemplate != "" {
		t = m.ToolTemplate
	}
	if t == "" {
		return ""
	}
	return t + ".jinja"
}

// resolveTemplate chooses the chat template for a server ptb starts, reads
// ptb's pinned copy (never final_model's own), verified, and writes it to
// OutDir/chat_template/ for the server to read.
func (o Options) resolveTemplate(ctx context.Context, info task.Info) (*TemplateRecord, error) {
	rec := &TemplateRecord{}
	if o.BaseModel != nil {
		rec.File, rec.ChosenBy, rec.BaseModel = TemplateFor(*o.BaseModel, info.Tools), ChosenByBaseModel, o.BaseModel.ID
		if rec.File == "" {
			return nil, fmt.Errorf("base model %s has no chat template in the registry", o.BaseModel.ID)
		}
	} else {
		rec.File, rec.ChosenBy = ChatTemplateFile(modelinfo.ModelType(o.ModelPath), info.Tools), ChosenByConfig
		if rec.File == "" {
			return nil, fmt.Errorf("choose a chat template for %s: neither its directory name nor config.json's architectures name a known family (qwen, gemma, smollm, llama); give --base-model", o.ModelPath)
		}
	}
	b, err := o.store().Template(ctx, o.TemplatesDir, rec.File)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	sum := sha256.Sum256(b)
	rec.SHA256 = hex.EncodeToString(sum[:])
	dir := filepath.Join(o.OutDir, TemplateDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write chat template: %w", err)
	}
	rec.Path, err = filepath.Abs(filepath.Join(dir, rec.File))
	if err != nil {
		return nil, fmt.Errorf("write chat template: %w", err)
	}
	// Replace, never write through, whatever is there.
	tmp := rec.Path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, fmt.Errorf("write chat template: %w", err)
	}
	if err := os.Rename(tmp, rec.Path); err != nil {
		return nil, fmt.Errorf("write chat template: %w", err)
	}
	return rec, nil
}

// prompts serves the judged tasks' prompts from the pinned store, or from
// a --data-dir copy when it has one (checked the same way).
type prompts struct {
	store   *pinned.Store
	dataDir string
}

func (p prompts) JudgePrompt(ctx context.Context, name string) (string, error) {
	t := p.store.T()
	var src pinned.Source
	switch name {
	case task.PromptArenaHardJudge:
		src = t.ArenaHardJudge
	case task.PromptHealthBenchGrader:
		src = t.HealthBenchGrader
	default:
		return "", fmt.Errorf("no pinned judge prompt %q", name)
	}
	b, err := p.store.Prompt(ctx, p.dataDir, src)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// PullPinned fetches every pinned file into the store's cache and verifies
// it; it returns "name<TAB>path" lines, one per file.
func PullPinned(ctx context.Context, s *pinned.Store) ([]string, error) {
	var out []string
	var errs []string
	for _, src := range s.T().All() {
		p, err := s.Pull(ctx, src)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, src.Name+"\t"+p)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%d pinned files could not be pulled:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	return out, nil
}
