package pyexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// OriginalPython is the Python version the original harness ran HumanEval
// programs with (inspect_evals' sandbox image).
const OriginalPython = "3.10"

// PythonInfo is what an interpreter says about itself.
type PythonInfo struct {
	Executable string   `json:"executable"` // realpath(sys.executable)
	Version    string   `json:"version"`    // e.g. 3.11.7
	Prefixes   []string `json:"prefixes"`   // sys.prefix, base_prefix, exec_prefix, base_exec_prefix
	Path       []string `json:"path"`       // sys.path
	UserBase   string   `json:"userbase"`   // the user site's base, when it is enabled and exists
}

// pythonQuery prints where an interpreter lives, what it imports from and
// its version.
const pythonQuery = `import json, os, site, sys
u = bool(site.ENABLE_USER_SITE) and os.path.isdir(site.getusersitepackages() or "")
print(json.dumps({"executable": os.path.realpath(sys.executable),
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix],
    "path": sys.path, "userbase": site.getuserbase() if u else ""}))`

// Query asks the interpreter py, on the host, where it lives (at most a
// minute, 1 MiB of answer).
func Query(ctx context.Context, py string, env []string) (PythonInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", pythonQuery)
	cmd.Env = env
	out := &capture{max: 1 << 20, keep: true}
	errb := &tail{max: 4096}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Run(); err != nil {
		return PythonInfo{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	var q PythonInfo
	if out.exceeded || json.Unmarshal(bytes.TrimSpace(out.buf.Bytes()), &q) != nil || !filepath.IsAbs(q.Executable) {
		return PythonInfo{}, fmt.Errorf("unexpected answer %q", truncate(out.buf.String(), 200))
	}
	return q, nil
}

// Resolve finds the interpreter name (a path, or a name looked up on env's
// PATH) on the host, before any sandbox hides the homes it may live in, and
// asks it where it lives: the interpreter run is the one found (a venv's
// python keeps its venv) unless that is a script (a pyenv shim, a wrapper),
// in which case the real interpreter it starts is run. Everything it needs
// is listed to be shown read-only.
func Resolve(ctx context.Context, name string, env []string) (Interpreter, error) {
	path, err := lookPath(name, env)
	if err != nil {
		return Interpreter{}, err
	}
	q, err := Query(ctx, path, env)
	if err != nil {
		return Interpreter{}, fmt.Errorf("ask %s where it lives: %w", path, err)
	}
	in := Interpreter{Path: path, Version: q.Version}
	if isScript(path) {
		in.Path = q.Executable
	}
	binds := []string{in.Path, q.Executable}
	if real, err := filepath.EvalSymlinks(in.Path); err == nil {
		binds = append(binds, real)
	}
	for _, p := range append(append([]string{}, q.Prefixes...), q.Path...) {
		if filepath.IsAbs(p) && p != "/" {
			if _, err := os.Stat(p); err == nil {
				binds = append(binds, filepath.Clean(p))
			}
		}
	}
	if q.UserBase != "" {
		binds = append(binds, q.UserBase)
		in.Env = append(in.Env, "PYTHONUSERBASE="+q.UserBase)
	}
	in.Binds = outermost(binds)
	in.Dirs = []string{filepath.Dir(in.Path)}
	return in, nil
}

// Warning says how the interpreter differs from the original's, or "".
func (in Interpreter) Warning() string {
	if in.Version == OriginalPython || strings.HasPrefix(in.Version, OriginalPython+".") {
		return ""
	}
	return fmt.Sprintf("humaneval programs run with Python %s (%s), not the original's %s; a few programs may behave differently", in.Version, in.Path, OriginalPython)
}

// HostEnv is the environment an interpreter is found and asked in on the
// host: PATH, HOME (a user-site install, a pyenv root) and the variables
// that choose a pyenv, venv or conda interpreter; never a secret.
func HostEnv() []string {
	env := []string{"LANG=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "PYENV_ROOT", "PYENV_VERSION", "VIRTUAL_ENV", "CONDA_PREFIX"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lookPath finds name on env's PATH (a name with a slash is taken as it
// is) and makes it absolute.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("interpreter %s: %w", name, err)
		}
		return p, nil
	}
	pathVar := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH (give the interpreter with --python)", name)
}

// isScript reports whether path starts with #! (a shim or wrapper, not
// an interpreter binary).
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, _ := bufio.NewReader(io.LimitReader(f, 2)).Peek(2)
	return string(b) == "#!"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
