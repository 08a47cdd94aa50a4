// Package pinned serves the files ptb takes from upstream repositories at
// pinned commits without copying them into its source: the original's chat
// templates and the judge prompts of ArenaHard and HealthBench. A file is
// downloaded on first use (from raw.githubusercontent.com, or a mirror that
// replaces that base URL) into a cache and its sha256 is checked on every
// open, not only on download; a text taken from a Python source file is
// extracted by parsing the string literal and its sha256 is checked too. An
// offline directory can stand in for the download; its copies are checked
// the same way. A digest that does not match is a *DigestError naming the
// file and both digests.
package pinned

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultBaseURL is the base of every pinned URL; a mirror replaces it.
const DefaultBaseURL = "https://raw.githubusercontent.com"

// EnvBaseURL names the environment variable that overrides DefaultBaseURL.
const EnvBaseURL = "PTB_PINNED_BASE_URL"

// maxFile bounds a pinned file's size (download and cache alike).
const maxFile = 8 << 20

// Source is one pinned file.
type Source struct {
	// Name is the file's name in an offline directory: a template's file
	// name ("qwen3.jinja") or a judge prompt's path under a data directory
	// ("arenahard/judge_system_prompt.txt").
	Name string
	// URL is the file at its pinned commit, under DefaultBaseURL.
	URL string
	// SHA256 is the digest of the upstream file.
	SHA256 string
	// Literal, if set, is the string constant the text is taken from;
	// TextSHA256 is the digest of its value (UTF-8).
	Literal    *Literal
	TextSHA256 string
}

// TextDigest is the digest a copy of the text (an offline copy, or what
// Text returns) must have.
func (s Source) TextDigest() string {
	if s.Literal != nil {
		return s.TextSHA256
	}
	return s.SHA256
}

// Commit-pinned upstream locations (see docs/EVAL.md).
const (
	ptbCommit       = "9082063a62e10e040f1acacdec2ccfc1467e0c00"
	arenaHardCommit = "9a1d3864b1a4388635b856fdd7eefb2cc8142525"
	simpleEvalsCmt  = "5e623c2b400af62a1278e23595f95b0853d7fe8a"
)

// Table is the set of pinned files ptb uses. Tests inject their own.
type Table struct {
	Templates         map[string]Source // by file name
	ArenaHardJudge    Source            // the ArenaHard judge's system prompt
	HealthBenchGrader Source            // HealthBench's GRADER_TEMPLATE
}

// Default is the table of the original's files.
func Default() *Table {
	tmpl := func(name, sum string) Source {
		return Source{Name: name, SHA256: sum,
			URL: DefaultBaseURL + "/aisa-group/PostTrainBench/" + ptbCommit + "/src/eval/templates/" + name}
	}
	return &Table{
		Templates: map[string]Source{
			"qwen3.jinja":               tmpl("qwen3.jinja", "ddd80c7700049450b953ae6acffa1731d696c5df5b1fbfb2de7e4ead17d708c6"),
			"gemma3.jinja":              tmpl("gemma3.jinja", "7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4"),
			"gemma3_tool_calling.jinja": tmpl("gemma3_tool_calling.jinja", "ce729a8a0045b4efb594616f0490707a13a5ced4d10ab5b471adb556c994a297"),
			"smollm.jinja":              tmpl("smollm.jinja", "b81bcca37cade6b21c04fec447f33e86bd07981b92d46718d078f56bf6026f82"),
		},
		ArenaHardJudge: Source{
			Name:       "arenahard/judge_system_prompt.txt",
			URL:        DefaultBaseURL + "/lmarena/arena-hard-auto/" + arenaHardCommit + "/utils/judge_utils.py",
			SHA256:     "cbb093f4fc27408d8447e946392f26f98538b1e3950f574aca91a0f7595167b4",
			Literal:    &Literal{Var: "JUDGE_SETTINGS", Keys: []string{"creative_writing", "system_prompt"}},
			TextSHA256: "171489efbca7f19fb520e1b3c23783c76af7c723e770fe897a55f391684aa358",
		},
		HealthBenchGrader: Source{
			Name:       "healthbench/grader_template.txt",
			URL:        DefaultBaseURL + "/openai/simple-evals/" + simpleEvalsCmt + "/healthbench_eval.py",
			SHA256:     "89909957f005762edaded2f0e39fc9b3b242edd55e3ac0ce4c8dd886ac59d167",
			Literal:    &Literal{Var: "GRADER_TEMPLATE"},
			TextSHA256: "2adffd51fd259554ebcd036ad1072d4aa2b7ce3aec2bbffe36271f911632ed3c",
		},
	}
}

// TemplateNames are the template file names, sorted.
func (t *Table) TemplateNames() []string {
	names := make([]string, 0, len(t.Templates))
	for n := range t.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// All lists every source: templates (by name), then the judge prompts.
func (t *Table) All() []Source {
	var out []Source
	for _, n := range t.TemplateNames() {
		out = append(out, t.Templates[n])
	}
	for _, s := range []Source{t.ArenaHardJudge, t.HealthBenchGrader} {
		if s.URL != "" {
			out = append(out, s)
		}
	}
	return out
}

// DigestError is a pinned file whose content is not the pinned one.
type DigestError struct {
	What      string // "qwen3.jinja", "the text of JUDGE_SETTINGS[...] in ..."
	Path      string // the file read (cache, offline copy) or URL
	Got, Want string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s: %s has sha256 %s, want %s (pinned); it is not the original's file: delete or replace it (ptb data pull fetches the pinned copy)", e.What, e.Path, e.Got, e.Want)
}

// ErrNotDownloaded: the file is not in the cache and downloads are off.
var ErrNotDownloaded = errors.New("pinned file not in the cache")

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Store fetches, caches and verifies pinned files.
type Store struct {
	Table    *Table // nil: Default()
	CacheDir string // "" = DefaultCacheDir()
	BaseURL  string // replaces DefaultBaseURL; "" = $PTB_PINNED_BASE_URL or DefaultBaseURL
	Offline  bool   // never download
	HTTP     *http.Client
}

// DefaultCacheDir is $PTB_CACHE/pinned, or ptb/pinned in the user cache
// directory (beside the dataset cache).
func DefaultCacheDir() string {
	if d := os.Getenv("PTB_CACHE"); d != "" {
		return filepath.Join(d, "pinned")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "ptb", "pinned")
}

// T is the store's table.
func (s *Store) T() *Table {
	if s == nil || s.Table == nil {
		return Default()
	}
	return s.Table
}

func (s *Store) base() string {
	b := s.BaseURL
	if b == "" {
		b = os.Getenv(EnvBaseURL)
	}
	if b == "" {
		b = DefaultBaseURL
	}
	return strings.TrimRight(b, "/")
}

// URL is where src is downloaded from: its pinned URL with the base
// replaced by the mirror's, if one is set.
func (s *Store) URL(src Source) (string, error) {
	rest, ok := strings.CutPrefix(src.URL, DefaultBaseURL+"/")
	if !ok {
		return "", fmt.Errorf("pinned %s: URL %s is not under %s", src.Name, src.URL, DefaultBaseURL)
	}
	return s.base() + "/" + rest, nil
}

// CachePath is where src lives in the cache: the URL's path under the
// cache directory (the commit is part of it).
func (s *Store) CachePath(src Source) string {
	rest := strings.TrimPrefix(src.URL, DefaultBaseURL+"/")
	dir := s.CacheDir
	if dir == "" {
		dir = DefaultCacheDir()
	}
	return filepath.Join(dir, filepath.FromSlash(rest))
}

// File returns the upstream file of src: from the cache, downloading it
// first if it is absent (unless Offline). Its digest is checked on every
// call.
func (s *Store) File(ctx context.Context, src Source) ([]byte, error) {
	p := s.CachePath(src)
	b, err := readBounded(p)
	if errors.Is(err, os.ErrNotExist) {
		if s.Offline {
			return nil, fmt.Errorf("pinned %s: %s is absent and downloads are off; run `ptb data pull` or give an offline copy: %w", src.Name, p, ErrNotDownloaded)
		}
		if b, err = s.download(ctx, src, p); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pinned %s: %w", src.Name, err)
	}
	if got := digest(b); got != src.SHA256 {
		return nil, &DigestError{What: src.Name, Path: p, Got: got, Want: src.SHA256}
	}
	return b, nil
}

// Text returns the text ptb uses: the file itself, or the extracted
// literal, whose digest is checked as well.
func (s *Store) Text(ctx context.Context, src Source) ([]byte, error) {
	b, err := s.File(ctx, src)
	if err != nil {
		return nil, err
	}
	return extractText(src, b, s.CachePath(src))
}

func extractText(src Source, b []byte, from string) ([]byte, error) {
	if src.Literal == nil {
		return b, nil
	}
	v, err := src.Literal.Extract(b)
	if err != nil {
		return nil, fmt.Errorf("pinned %s from %s: %w", src.Name, from, err)
	}
	if got := digest([]byte(v)); got != src.TextSHA256 {
		return nil, &DigestError{What: "the text of " + src.Literal.String() + " (" + src.Name + ")", Path: from, Got: got, Want: src.TextSHA256}
	}
	return []byte(v), nil
}

// Pull makes sure src is cached and verified and returns its cache path.
func (s *Store) Pull(ctx context.Context, src Source) (string, error) {
	if _, err := s.Text(ctx, src); err != nil {
		return "", err
	}
	return s.CachePath(src), nil
}

// ReadCopy reads src's copy in an offline directory (dir/src.Name): the
// text itself (a template, or an extracted judge prompt), checked against
// the text digest.
func ReadCopy(dir string, src Source) ([]byte, error) {
	p := filepath.Join(dir, filepath.FromSlash(src.Name))
	b, err := readBounded(p)
	if err != nil {
		return nil, fmt.Errorf("pinned %s: %w", src.Name, err)
	}
	if got, want := digest(b), src.TextDigest(); got != want {
		return nil, &DigestError{What: src.Name, Path: p, Got: got, Want: want}
	}
	return b, nil
}

// readBounded reads a regular file of at most maxFile bytes; a link or a
// special file is refused.
func readBounded(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", p, fi.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxFile)
	}
	return b, nil
}

func (s *Store) download(ctx context.Context, src Source, p string) ([]byte, error) {
	u, err := s.URL(src)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("pinned %s: %w", src.Name, err)
	}
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download pinned %s from %s (set %s or --pinned-base-url for a mirror): %w", src.Name, u, EnvBaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download pinned %s from %s: HTTP %d", src.Name, u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("download pinned %s from %s: %w", src.Name, u, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("download pinned %s from %s: larger than %d bytes", src.Name, u, maxFile)
	}
	if got := digest(b); got != src.SHA256 {
		return nil, &DigestError{What: src.Name, Path: u, Got: got, Want: src.SHA256}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("cache pinned %s: %w", src.Name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".dl-*")
	if err != nil {
		return nil, fmt.Errorf("cache pinned %s: %w", src.Name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("cache pinned %s: %w", src.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("cache pinned %s: %w", src.Name, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return nil, fmt.Errorf("cache pinned %s: %w", src.Name, err)
	}
	return b, nil
}

// Templates returns every template of the table, verified, by file name.
// With dir set, the copies in dir are used (each checked); else the store.
func (s *Store) Templates(ctx context.Context, dir string) (map[string][]byte, error) {
	t := s.T()
	out := map[string][]byte{}
	for _, n := range t.TemplateNames() {
		b, err := s.Template(ctx, dir, n)
		if err != nil {
			return nil, err
		}
		out[n] = b
	}
	return out, nil
}

// Template returns one verified template by file name, from dir if set.
func (s *Store) Template(ctx context.Context, dir, name string) ([]byte, error) {
	src, ok := s.T().Templates[name]
	if !ok {
		return nil, fmt.Errorf("no pinned chat template %q (pinned: %v)", name, s.T().TemplateNames())
	}
	if dir != "" {
		return ReadCopy(dir, src)
	}
	return s.Text(ctx, src)
}

// Prompt returns a verified judge prompt: from dataDir's copy if it has
// one (checked against the text digest), else from the store.
func (s *Store) Prompt(ctx context.Context, dataDir string, src Source) ([]byte, error) {
	if dataDir != "" {
		if _, err := os.Lstat(filepath.Join(dataDir, filepath.FromSlash(src.Name))); err == nil {
			return ReadCopy(dataDir, src)
		}
	}
	return s.Text(ctx, src)
}
