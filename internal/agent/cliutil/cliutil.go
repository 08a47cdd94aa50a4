// Package cliutil holds what the agent CLI adapters share: endpoint URL
// shaping, the placeholder credential and version probing.
package cliutil

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
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

var versionRE = regexp.MustCompile(`\d+\.\d+\.\d+[0-9A-Za-z.+-]*`)

// Version runs bin --version (5 s at most) and returns the first x.y.z in
// its output, or "" if it cannot tell.
func Version(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	return versionRE.FindString(string(out))
}
