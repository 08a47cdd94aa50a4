package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/audit/safetensors"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// PinFileName is the pin file's name in ptb's cache directory.
const PinFileName = "reference-pins.json"

// DefaultPinFile returns where the audit records the digests of reference
// weights on first use: $PTB_CACHE/reference-pins.json, else
// $XDG_CACHE_HOME/ptb/reference-pins.json, else
// $HOME/.cache/ptb/reference-pins.json; "" if none is set.
func DefaultPinFile(getenv func(string) string) string {
	switch {
	case getenv("PTB_CACHE") != "":
		return filepath.Join(getenv("PTB_CACHE"), PinFileName)
	case getenv("XDG_CACHE_HOME") != "":
		return filepath.Join(getenv("XDG_CACHE_HOME"), "ptb", PinFileName)
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".cache", "ptb", PinFileName)
	}
	return ""
}

// PinRecord is one repo's entry in the pin file.
type PinRecord struct {
	Snapshot   string            `json:"snapshot"` // the snapshot directory first pinned
	Files      map[string]string `json:"files"`    // file name -> sha256
	RecordedAt string            `json:"recorded_at"`
}

// refStore hands out reference checkpoints (the base model, its instruct
// counterpart) only from hub caches the harness owns, and only when their
// files match pinned digests: the registry's, else those recorded in the
// pin file at first use. A cache inside a directory the agent could write
// (the run directory, the output root) is never a reference.
type refStore struct {
	caches    []string // harness-owned hub caches, in order
	untrusted []string // roots the agent could write
	reg       *registry.Registry
	pinFile   string
	now       func() time.Time

	verified map[string]refResult
}

type refResult struct {
	snap, root string
	note       string
	err        error
}

// errNoReference wraps every reason a reference is not available.
var errNoReference = errors.New("no trusted reference")

// maxPinnedFile bounds config.json and the index in a reference snapshot.
const maxSmallRefFile = 64 << 20

// snapshot returns repo's verified snapshot directory and its cache root,
// with a note for the evidence (how it was pinned).
func (s *refStore) snapshot(repo string) (snap, root, note string, err error) {
	key := strings.ToLower(repo)
	if r, ok := s.verified[key]; ok {
		return r.snap, r.root, r.note, r.err
	}
	snap, root, note, err = s.find(repo)
	if s.verified == nil {
		s.verified = map[string]refResult{}
	}
	s.verified[key] = refResult{snap, root, note, err}
	return snap, root, note, err
}

func (s *refStore) find(repo string) (string, string, string, error) {
	var skipped []string
	var trusted []string
	for _, c := range s.caches {
		if u := s.untrustedRoot(c); u != "" {
			skipped = append(skipped, fmt.Sprintf("%s (inside %s, which the agent could write)", c, u))
			continue
		}
		trusted = append(trusted, c)
	}
	for _, c := range trusted {
		snap, err := Snapshot([]string{c}, repo)
		if err != nil {
			continue
		}
		if u := s.untrustedRoot(snap); u != "" {
			return "", "", "", fmt.Errorf("%s: snapshot %s resolves inside %s, which the agent could write: %w", repo, snap, u, errNoReference)
		}
		note, err := s.verify(repo, snap, c)
		if err != nil {
			return "", "", "", err
		}
		return snap, c, note, nil
	}
	msg := fmt.Sprintf("%s: not in a harness-owned hugging face cache (searched %s)", repo, strings.Join(trusted, ", "))
	if len(trusted) == 0 {
		msg = fmt.Sprintf("%s: no harness-owned hugging face cache (pass --hf-cache or set HF_HUB_CACHE)", repo)
	}
	if len(skipped) > 0 {
		msg += "; not used: " + strings.Join(skipped, ", ")
	}
	return "", "", "", fmt.Errorf("%s: %w", msg, errNoReference)
}

// untrustedRoot returns the untrusted root p lies in (after resolving
// links), or "".
func (s *refStore) untrustedRoot(p string) string {
	rp, err := filepath.EvalSymlinks(p)
	if err != nil {
		rp = p
	}
	rp, _ = filepath.Abs(rp)
	for _, u := range s.untrusted {
		if u == "" {
			continue
		}
		ru, err := filepath.EvalSymlinks(u)
		if err != nil {
			ru = u
		}
		ru, _ = filepath.Abs(ru)
		if inRoot(rp, ru) {
			return u
		}
	}
	return ""
}

func inRoot(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator))
}

// refFiles lists the files of a snapshot the audit reads, by name.
func refFiles(snap string) ([]string, error) {
	ents, err := os.ReadDir(snap)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if n == "config.json" || n == "model.safetensors.index.json" || strings.HasSuffix(n, ".safetensors") && !strings.HasPrefix(n, "adapter_model") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// hashRef returns the sha256 of a snapshot file, resolving its link inside
// root; the file must be regular and not sparse.
func hashRef(path, root string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	rr, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if !inRoot(real, rr) {
		return "", fmt.Errorf("%s links outside the cache %s (-> %s)", path, root, real)
	}
	f, fi, err := safeio.Open(real)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if safeio.Sparse(fi) {
		return "", fmt.Errorf("%s: sparse file refused (%d bytes apparent, %d allocated)", path, fi.Size(), safeio.Allocated(fi))
	}
	h := sha256.New()
	if _, err := io.Copy(h, safeio.BoundedReader(f, fi)); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verify hashes the snapshot's files and holds them to the registry's pins,
// else to the pin file's record, else records them there (first use).
func (s *refStore) verify(repo, snap, root string) (string, error) {
	names, err := refFiles(snap)
	if err != nil {
		return "", fmt.Errorf("%s: list %s: %v: %w", repo, snap, err, errNoReference)
	}
	got := map[string]string{}
	for _, n := range names {
		h, err := hashRef(filepath.Join(snap, n), root)
		if err != nil {
			return "", fmt.Errorf("%s: hash %v: %w", repo, err, errNoReference)
		}
		got[n] = h
	}
	if s.reg != nil {
		if want, ok := s.reg.WeightPins(repo); ok {
			if err := comparePins(got, want); err != nil {
				return "", fmt.Errorf("%s in %s: %v (pinned in the registry): %w", repo, snap, err, errNoReference)
			}
			return fmt.Sprintf("%s: %d files match the registry's pinned sha256", repo, len(want)), nil
		}
	}
	if s.pinFile == "" {
		return "", fmt.Errorf("%s: the registry pins no sha256 for its weights and no pin file is configured (set PTB_CACHE): %w", repo, errNoReference)
	}
	pins, err := readPins(s.pinFile)
	if err != nil {
		return "", fmt.Errorf("%s: %v: %w", repo, err, errNoReference)
	}
	if rec, ok := pins[repo]; ok {
		if err := comparePins(got, rec.Files); err != nil {
			return "", fmt.Errorf("%s in %s: %v (recorded in %s on %s from %s): %w", repo, snap, err, s.pinFile, rec.RecordedAt, rec.Snapshot, errNoReference)
		}
		return fmt.Sprintf("%s: %d files match the sha256 recorded in %s on %s", repo, len(rec.Files), s.pinFile, rec.RecordedAt), nil
	}
	if !hasWeights(got) {
		return "", fmt.Errorf("%s: snapshot %s holds no safetensors weights: %w", repo, snap, errNoReference)
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	pins[repo] = PinRecord{Snapshot: snap, Files: got, RecordedAt: now().UTC().Format(time.RFC3339)}
	if err := writePins(s.pinFile, pins); err != nil {
		return "", fmt.Errorf("%s: record pins: %v: %w", repo, err, errNoReference)
	}
	return fmt.Sprintf("%s: first use: sha256 of %d files recorded in %s", repo, len(got), s.pinFile), nil
}

func hasWeights(files map[string]string) bool {
	for n := range files {
		if strings.HasSuffix(n, ".safetensors") {
			return true
		}
	}
	return false
}

func comparePins(got, want map[string]string) error {
	var bad []string
	for n, w := range want {
		g, ok := got[n]
		switch {
		case !ok:
			bad = append(bad, n+" missing")
		case !strings.EqualFold(g, w):
			bad = append(bad, fmt.Sprintf("%s sha256 %s, pinned %s", n, g, w))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok && strings.HasSuffix(n, ".safetensors") {
			bad = append(bad, n+" not pinned")
		}
	}
	slices.Sort(bad)
	if len(bad) > 0 {
		return errors.New("reference files do not match their pins: " + strings.Join(bad, "; "))
	}
	return nil
}

func readPins(path string) (map[string]PinRecord, error) {
	pins := map[string]PinRecord{}
	b, err := safeio.ReadFile(path, 16<<20)
	if errors.Is(err, os.ErrNotExist) {
		return pins, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pin file: %w", err)
	}
	if err := json.Unmarshal(b, &pins); err != nil {
		return nil, fmt.Errorf("pin file %s: %w (delete it to record the pins again)", path, err)
	}
	return pins, nil
}

func writePins(path string, pins map[string]PinRecord) error {
	b, err := json.MarshalIndent(pins, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pins-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// openRef opens repo's verified reference checkpoint.
func (s *refStore) openRef(repo string) (*safetensors.Model, string, error) {
	snap, root, note, err := s.snapshot(repo)
	if err != nil {
		return nil, "", err
	}
	m, err := safetensors.OpenModelIn(snap, root)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v: %w", repo, err, errNoReference)
	}
	return m, note, nil
}
