// Package cliutil holds what the agent CLI adapters and their runners
// share: endpoint URL shaping, the placeholder credential, version probing,
// and finding a CLI and the host directories its installation needs.
package cliutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Placeholder is the credential given to a CLI whose endpoint is injected:
// the scripted model ignores it and the per-run gateway replaces it with the
// real key, so no real secret enters the sandbox.
const Placeholder = "ptb-placeholder-key"

// BaseURL returns endpoint without a trailing slash or "/v1".
func BaseURL(endpoint string) string {
	u := strings.TrimRight(endpoint, "/")
	return strings.TrimSuffix(u, "/v1")
}

// VersionTimeout bounds `CLI --version`. Gemini CLI loads its whole bundle
// first and, with the other CLIs starting beside it (doctor --agents), can
// take over 5 s on a small machine; doctor's own version line allows 20 s.
// Under load (a 2-core CI machine running test packages beside it) it took
// 17 s alone and over 30 s with other work, leaving result.json without the
// version: 90 s, once per run, costs nothing beside a run's hours.
const VersionTimeout = 90 * time.Second

var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\d+\.\d+\.\d+[0-9A-Za-z.+-]*`) })

// Version runs bin --version (VersionTimeout at most) and returns the first
// x.y.z in its output, or "" if it cannot tell.
func Version(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, VersionTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	return versionRE().FindString(string(out))
}

// LookPath finds the executable name (a path, or a bare name searched in
// path, a colon-separated list) and returns its absolute path.
func LookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", err
		}
		return filepath.Abs(name)
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on the search path", name)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// InstallPaths are the host directories an executable needs: the directory
// holding it and, for an npm package, its node_modules directory (for both
// the link and its target).
func InstallPaths(bin string) []string {
	out := []string{filepath.Dir(bin)}
	cands := []string{bin}
	if real, err := filepath.EvalSymlinks(bin); err == nil && real != bin {
		cands = append(cands, real)
		out = append(out, filepath.Dir(real))
	}
	for _, c := range cands {
		if i := strings.Index(c, "/node_modules/"); i > 0 {
			out = append(out, c[:i+len("/node_modules")]) // the packages, not the directory holding them (a HOME)
		}
	}
	return out
}
