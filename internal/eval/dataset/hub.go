package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/fsutil"
)

// Hub is a Source that downloads from the Hugging Face hub (or a direct URL)
// into a cache and serves later opens from it. A file's digest is checked
// against File.SHA256 when pinned, and against the digest recorded at first
// download otherwise.
type Hub struct {
	Endpoint string // HF_ENDPOINT or https://huggingface.co
	Token    string // HF_TOKEN (gated datasets)
	CacheDir string
	Offline  bool // never download
	HTTP     *http.Client
}

// NewHub returns a hub source with its settings from the environment:
// HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1; cacheDir "" = $PTB_CACHE/datasets
// or the user cache dir's ptb/datasets.
func NewHub(cacheDir string, offline bool) *Hub {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	ep := os.Getenv("HF_ENDPOINT")
	if ep == "" {
		ep = "https://huggingface.co"
	}
	return &Hub{Endpoint: strings.TrimRight(ep, "/"), Token: os.Getenv("HF_TOKEN"), CacheDir: cacheDir,
		Offline: offline || os.Getenv("HF_HUB_OFFLINE") == "1", HTTP: &http.Client{Timeout: 30 * time.Minute}}
}

// DefaultCacheDir is where datasets are cached by default.
func DefaultCacheDir() string {
	if d := os.Getenv("PTB_CACHE"); d != "" {
		return filepath.Join(d, "datasets")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "ptb", "datasets")
}

// URL is where f is downloaded from.
func (h *Hub) URL(f File) string {
	if f.Repo == "" {
		return f.URL
	}
	return h.Endpoint + "/datasets/" + f.Repo + "/resolve/" + f.Revision + "/" + f.Path
}

// CachePath is where f lives in the cache.
func (h *Hub) CachePath(f File) string {
	if f.Repo != "" {
		return filepath.Join(h.CacheDir, "hub", filepath.FromSlash(f.Repo), f.Revision, filepath.FromSlash(f.Path))
	}
	sum := sha256.Sum256([]byte(f.URL))
	return filepath.Join(h.CacheDir, "url", hex.EncodeToString(sum[:8]), path.Base(f.URL))
}

// Open implements Source.
func (h *Hub) Open(ctx context.Context, f File) (io.ReadCloser, string, error) {
	p, err := h.Pull(ctx, f)
	if err != nil {
		return nil, "", err
	}
	rc, err := os.Open(p)
	return rc, p, err
}

// Pull makes sure f is in the cache with the right digest and returns its path.
func (h *Hub) Pull(ctx context.Context, f File) (string, error) {
	if f.Repo == "" && f.URL == "" {
		return "", fmt.Errorf("%s is not downloadable; give --data-dir with %s in it: %w", f.Local, f.Local, os.ErrNotExist)
	}
	p := h.CachePath(f)
	if _, err := os.Stat(p); err == nil {
		if err := h.verify(p, f); err != nil {
			return "", err
		}
		return p, nil
	}
	if h.Offline {
		return "", fmt.Errorf("%s is not in the cache %s and downloads are off; run `ptb data pull` first: %w", f.Name(), h.CacheDir, os.ErrNotExist)
	}
	if err := h.download(ctx, f, p); err != nil {
		return "", err
	}
	return p, nil
}

func (h *Hub) verify(p string, f File) error {
	got, err := fsutil.HashFile(p)
	if err != nil {
		return fmt.Errorf("hash %s: %w", p, err)
	}
	want := f.SHA256
	if want == "" {
		b, err := os.ReadFile(p + ".sha256")
		if err != nil {
			return fmt.Errorf("cached %s has no recorded digest; delete it and pull again: %w", p, err)
		}
		want = strings.TrimSpace(string(b))
	}
	if got != want {
		return fmt.Errorf("cached %s has sha256 %s, want %s; delete it and pull again", p, got, want)
	}
	return nil
}

func (h *Hub) download(ctx context.Context, f File, p string) error {
	u := h.URL(f)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if f.Repo != "" && h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	hc := h.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case (resp.StatusCode == 401 || resp.StatusCode == 403) && f.Gated:
		return fmt.Errorf("download %s: HTTP %d: %s is gated; accept its terms on the hub and set HF_TOKEN", u, resp.StatusCode, f.Repo)
	case resp.StatusCode != 200:
		return fmt.Errorf("download %s: HTTP %d", u, resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".dl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	hh := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, hh), resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("download %s: %w", u, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	got := hex.EncodeToString(hh.Sum(nil))
	if f.SHA256 != "" && got != f.SHA256 {
		return fmt.Errorf("download %s: sha256 %s, want %s", u, got, f.SHA256)
	}
	if err := os.WriteFile(p+".sha256", []byte(got+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	return nil
}

// ErrNotDownloadable is returned for files that only a local data dir has.
var ErrNotDownloadable = errors.New("not downloadable")
