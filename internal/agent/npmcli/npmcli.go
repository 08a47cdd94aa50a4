// Package npmcli installs the agent CLIs from the npm registry at the
// pinned versions ptb was verified with (each adapter's agentinfo.Info.NPM),
// into a prefix reused between runs.
package npmcli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	_ "github.com/ptb-dev/ptb/internal/agent/agents" // the built-in adapters and their pins
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Packages returns the pinned CLI versions (shared/fixtures/AGENT_CLIS.md)
// by agent name: every registered agent with an npm package. The agent's
// name is its executable's.
func Packages() map[string]string {
	out := map[string]string{}
	for _, i := range agentinfo.All() {
		if i.NPM != "" {
			out[i.Name] = i.NPM
		}
	}
	return out
}

// DefaultPrefix is $PTB_AGENTS_PREFIX, else ptb/agents-e2e under the user
// cache directory.
func DefaultPrefix() (string, error) {
	if p := os.Getenv("PTB_AGENTS_PREFIX"); p != "" {
		return p, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "ptb", "agents-e2e"), nil
}

// Bin is the directory holding the CLIs' executables.
func Bin(prefix string) string { return filepath.Join(prefix, "node_modules", ".bin") }

// Installed reports whether every CLI is present in prefix.
func Installed(prefix string) bool {
	for name := range Packages() {
		if _, err := os.Stat(filepath.Join(Bin(prefix), name)); err != nil {
			return false
		}
	}
	return true
}

// Install installs the pinned CLIs into prefix unless they are already
// there. Concurrent callers (parallel test packages) take turns on a lock
// file, so the prefix is installed once.
func Install(ctx context.Context, prefix string) error {
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(prefix, ".ptb-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", prefix, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if Installed(prefix) {
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("npm not found: install Node.js and npm (Debian: apt-get install nodejs npm)")
	}
	args := []string{"install", "--no-audit", "--no-fund", "--prefix", prefix}
	pkgs := Packages()
	for _, name := range agentinfo.Names() {
		if pkg, ok := pkgs[name]; ok {
			args = append(args, pkg)
		}
	}
	out, err := exec.CommandContext(ctx, "npm", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install: %w\n%s", err, out)
	}
	return nil
}

// Ready returns DefaultPrefix with the CLIs installed in it.
func Ready(ctx context.Context) (string, error) {
	p, err := DefaultPrefix()
	if err != nil {
		return "", err
	}
	return p, Install(ctx, p)
}
