package eval

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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/safeio"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// The inference server loads final_model, which the agent wrote: vLLM runs
// the model directory's Python under --trust-remote-code, and any server
// parses its files. It is therefore run like the agent, in the sandbox
// backend: final_model read-only, only the job's GPUs, an allowlisted
// environment (no harness secret), the server's install read-only, a
// private home and /tmp, the evaluation data hidden, and no network but its
// socket, which `ptb sandbox-init` relays to the server's TCP port inside.

// PinnedVLLM is the vLLM version the original harness pinned.
const PinnedVLLM = "0.11.0"

// ServerRecord says which server answered the evaluation and how it was
// contained; it is written to eval.json and returned in the Summary.
type ServerRecord struct {
	Backend         string `json:"backend"` // vllm | hf
	Executable      string `json:"executable"`
	Version         string `json:"version"`                  // `vllm --version`, or the hf server's transformers and torch; "unknown: ..." when it could not be read
	PinnedVersion   string `json:"pinned_version,omitempty"` // vllm: the original's pin
	Sandbox         string `json:"sandbox"`                  // the sandbox backend it ran in
	Unsandboxed     bool   `json:"unsandboxed"`              // the backend isolated nothing (none)
	GPUs            []int  `json:"gpus"`
	TrustRemoteCode bool   `json:"trust_remote_code"` // the server was asked to run the model directory's code
}

// Warnings are what a reader of the record must know: an unsandboxed
// server, a vLLM version other than the original's.
func (r ServerRecord) Warnings() []string {
	var w []string
	if r.Unsandboxed {
		w = append(w, fmt.Sprintf("unsandboxed: the %s server that loaded the model ran with the %s sandbox backend (development only); nothing was isolated", r.Backend, r.Sandbox))
	}
	switch {
	case r.PinnedVersion == "" || r.Version == r.PinnedVersion:
	case strings.HasPrefix(r.Version, "unknown"):
		w = append(w, fmt.Sprintf("the %s version could not be read (%s); the original pinned %s", r.Backend, r.Version, r.PinnedVersion))
	default:
		w = append(w, fmt.Sprintf("%s %s is not the original's pinned %s; scores may differ from the paper's", r.Backend, r.Version, r.PinnedVersion))
	}
	return w
}

// serverDirs are the server's own directories, under OUT/server: its home,
// /tmp and working directory (writable by it), its socket directory (shown
// at sandbox.SocketDir inside) and the code ptb gives it (read-only). Root
// is private to the harness; all of it is removed when the server stops.
type serverDirs struct {
	Root, Home, Tmp, Work, Sock, Code string
}

// remove removes everything the directories hold on the host.
func (d serverDirs) remove() { safeio.RemoveAll(d.Root) }

// ServerDir is the server's directory inside the evaluation's output.
const ServerDir = "server"

// serverSocket is the relayed socket's name in the socket directory.
const serverSocket = "server.sock"

func (d serverDirs) sock() string { return filepath.Join(d.Sock, serverSocket) }

// makeServerDirs lays out OUT/server afresh (a crashed harness may have
// left one).
func makeServerDirs(out string) (serverDirs, error) {
	root := filepath.Join(out, ServerDir)
	d := serverDirs{Root: root, Home: filepath.Join(root, "home"), Tmp: filepath.Join(root, "tmp"),
		Work: filepath.Join(root, "work"), Sock: filepath.Join(root, "sock"), Code: filepath.Join(root, "code")}
	if err := safeio.RemoveAll(root); err != nil {
		return d, fmt.Errorf("clear %s: %w", root, err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return d, fmt.Errorf("make %s: %w", root, err)
	}
	for _, p := range []string{d.Home, d.Tmp, d.Work, d.Code, d.Sock} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return d, fmt.Errorf("make %s: %w", p, err)
		}
	}
	// The sandbox's user (an unprivileged uid under a root harness) makes
	// its socket here; Root keeps everyone else out on the host.
	if err := os.Chmod(d.Sock, 0o777); err != nil {
		return d, err
	}
	return d, nil
}

// freshTmp empties the server's /tmp before a process starts in it: a
// restarted server starts clean, and nothing one sandbox laid out there
// (the mount points of its binds) is handed to the next.
func (d serverDirs) freshTmp() error {
	if err := safeio.RemoveAll(d.Tmp); err != nil {
		return fmt.Errorf("clear %s: %w", d.Tmp, err)
	}
	return os.Mkdir(d.Tmp, 0o755)
}

// install is how the server's program runs in the sandbox and what of the
// host it needs to see.
type install struct {
	Argv0  string   // the executable run inside (a real interpreter, never a pyenv shim)
	Python string   // the interpreter found, "" if none
	Binds  []string // host paths shown read-only: the executable, the interpreter's prefixes and sys.path
	Path   []string // PATH entries ahead of the system's
	Env    []string // what the interpreter needs, e.g. PYTHONUSERBASE for a user-site install
}

// pythonQuery prints where an interpreter lives and what it imports from.
const pythonQuery = `import json, os, site, sys
u = bool(site.ENABLE_USER_SITE) and os.path.isdir(site.getusersitepackages() or "")
print(json.dumps({"executable": os.path.realpath(sys.executable),
    "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix],
    "path": sys.path, "userbase": site.getuserbase() if u else ""}))`

// hfVersionScript prints the hf server's library versions without
// importing them.
const hfVersionScript = `import importlib.metadata as m
print("transformers " + m.version("transformers") + ", torch " + m.version("torch"))`

// findInstall resolves exe on the host (PATH, symlinks) and, for a Python
// program, its interpreter: the homes and /root are hidden in the sandbox,
// so a venv, pyenv or conda install under one must be bound explicitly.
// isInterpreter says exe is itself the interpreter (the hf backend's
// python3); otherwise the interpreter is read from exe's #! line.
func findInstall(ctx context.Context, exe string, isInterpreter bool, env []string) (install, error) {
	path, err := lookPath(exe, env)
	if err != nil {
		return install{}, err
	}
	in := install{Argv0: path, Binds: []string{path}, Path: []string{filepath.Dir(path)}}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		in.Binds = append(in.Binds, real)
	}
	// Which interpreter to ask, and whether the program run inside becomes
	// the interpreter it names (a pyenv shim or a wrapper script would need
	// what is around it on the host; the real interpreter does not).
	py, useReal := "", false
	interp, script := shebang(path, env)
	switch {
	case script && pythonName(interp):
		py = interp // a Python script (vllm's entry point): its interpreter
	case isInterpreter && !script:
		py = path // an interpreter binary
	case isInterpreter:
		py, useReal = path, true // a shim or wrapper that starts one
	}
	if py == "" {
		return in, nil
	}
	q, err := queryPython(ctx, py, env)
	if err != nil {
		if isInterpreter {
			// Not a Python that answers (a stand-in): run it as it is,
			// with only itself bound.
			return in, nil
		}
		return install{}, fmt.Errorf("ask %s (the interpreter of %s) where it lives: %w", py, path, err)
	}
	if useReal {
		in.Argv0 = q.Executable
	}
	in.Python = q.Executable
	in.Binds = append(in.Binds, q.Executable)
	in.Path = append([]string{filepath.Dir(q.Executable)}, in.Path...)
	for _, p := range append(q.Prefixes, q.Path...) {
		if filepath.IsAbs(p) && p != "/" {
			if _, err := os.Stat(p); err == nil {
				in.Binds = append(in.Binds, filepath.Clean(p))
			}
		}
	}
	if q.UserBase != "" {
		in.Binds = append(in.Binds, q.UserBase)
		in.Env = append(in.Env, "PYTHONUSERBASE="+q.UserBase)
	}
	in.Binds = outermostPaths(in.Binds)
	in.Path = dedupe(in.Path)
	return in, nil
}

type pythonInfo struct {
	Executable string   `json:"executable"`
	Prefixes   []string `json:"prefixes"`
	Path       []string `json:"path"`
	UserBase   string   `json:"userbase"`
}

func queryPython(ctx context.Context, py string, env []string) (pythonInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", pythonQuery)
	cmd.Env = env
	var out, errb limitedBuffer
	out.max, errb.max = 1<<20, 4096
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return pythonInfo{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	var q pythonInfo
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &q); err != nil || !filepath.IsAbs(q.Executable) {
		return pythonInfo{}, fmt.Errorf("unexpected answer %q", out.String())
	}
	return q, nil
}

// lookPath finds exe on the PATH of env (exe with a slash is taken as is)
// and makes it absolute.
func lookPath(exe string, env []string) (string, error) {
	if !strings.Contains(exe, "/") {
		for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
			if dir == "" || !filepath.IsAbs(dir) {
				continue
			}
			p := filepath.Join(dir, exe)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s not found on PATH", exe)
	}
	p, err := filepath.Abs(exe)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// shebang returns the interpreter a script names on its #! line, following
// `/usr/bin/env NAME` (on env's PATH) and pip's `/bin/sh` trampoline for
// long paths (”'exec' "/path/python" "$0" "$@"). ok is false for a
// binary or a file without #!.
func shebang(path string, env []string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 4096))
	first, _ := r.ReadString('\n')
	if !strings.HasPrefix(first, "#!") {
		return "", false
	}
	fields := strings.Fields(strings.TrimPrefix(first, "#!"))
	if len(fields) == 0 {
		return "", false
	}
	interp := fields[0]
	if filepath.Base(interp) == "env" {
		name := ""
		for _, a := range fields[1:] {
			if !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") {
				name = a
				break
			}
		}
		if name == "" {
			return "", false
		}
		p, err := lookPath(name, env)
		if err != nil {
			return name, true
		}
		return p, true
	}
	if filepath.Base(interp) == "sh" {
		second, _ := r.ReadString('\n')
		if m := trampoline().FindStringSubmatch(second); m != nil {
			return m[1], true
		}
	}
	return interp, true
}

var trampoline = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^'''exec' "?([^" ]+)"? `) })

// pythonName reports whether an interpreter path names Python.
func pythonName(p string) bool {
	b := filepath.Base(p)
	return strings.HasPrefix(b, "python") || strings.HasPrefix(b, "pypy")
}

// installQueryEnv is the environment a host interpreter is asked in: no
// harness secret, the host's PATH and HOME (so that a user-site install is
// found), and what the user passed to the server.
func installQueryEnv(extra []string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	return append(env, resolveServerEnv(extra)...)
}

// resolveServerEnv turns --server-env entries into KEY=VALUE: a bare KEY
// takes the host's value (and is left out when the host has none).
func resolveServerEnv(extra []string) []string {
	var out []string
	for _, e := range extra {
		if strings.Contains(e, "=") {
			out = append(out, e)
		} else if v, ok := os.LookupEnv(e); ok {
			out = append(out, e+"="+v)
		}
	}
	return out
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// serverEnv is the server's complete environment: an allowlist, never the
// harness's own (which holds the grading key, agent credentials, HF_TOKEN).
func serverEnv(home string, in install, gpus []int, extra []string, lookup func(string) (string, bool)) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	set("PATH", strings.Join(dedupe(append(append([]string{}, in.Path...), "/usr/local/bin", "/usr/bin", "/bin")), ":"))
	set("LANG", "C.UTF-8")
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := lookup(k); ok && v != "" {
			set(k, v)
		}
	}
	set("HOME", home)
	set("TMPDIR", "/tmp")
	set("HF_HOME", filepath.Join(home, ".cache", "huggingface"))
	set("HF_HUB_OFFLINE", "1")
	set("TRANSFORMERS_OFFLINE", "1")
	set("HF_DATASETS_OFFLINE", "1")
	set("VLLM_NO_USAGE_STATS", "1")
	set("DO_NOT_TRACK", "1")
	set("PYTHONUNBUFFERED", "1")
	set("PYTHONDONTWRITEBYTECODE", "1")
	ids := make([]string, len(gpus))
	for i, g := range gpus {
		ids[i] = strconv.Itoa(g)
	}
	set("CUDA_DEVICE_ORDER", "PCI_BUS_ID") // indices as the device nodes number them
	set("CUDA_VISIBLE_DEVICES", strings.Join(ids, ","))
	if len(gpus) > 0 {
		set("NVIDIA_VISIBLE_DEVICES", strings.Join(ids, ","))
	}
	for _, kv := range in.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vals[k]
	}
	return env
}

// socketTarget is where the server sees its socket directory: the
// relay's fixed place in an isolating sandbox, the host path otherwise
// (the none backend cannot remap paths).
func (p *procServer) socketTarget() string {
	if p.isolated {
		return sandbox.SocketDir
	}
	return p.dirs.Sock
}

// mounts are the socket directory. (The sandbox gives the server a
// writable /dev/shm of its own, which vLLM's processes and torch need.)
func (p *procServer) mounts() []sandbox.Mount {
	return []sandbox.Mount{{Source: p.dirs.Sock, Target: p.socketTarget(), Writable: true}}
}

// serveArgv is `ptb sandbox-init --forward unix:SOCK=tcp:127.0.0.1:PORT --
// SERVER ARGS...`.
func (p *procServer) serveArgv(port int) []string {
	fw := "unix:" + filepath.Join(p.socketTarget(), serverSocket) + "=tcp:127.0.0.1:" + strconv.Itoa(port)
	return append([]string{p.self, "sandbox-init", "--forward", fw, "--", p.inst.Argv0}, p.args(port)...)
}

// spec is the sandbox the server (and its version probe) runs in.
func (p *procServer) spec(argv []string) sandbox.Spec {
	ro := []string{p.o.ModelPath, p.self, p.dirs.Code}
	ro = append(ro, p.inst.Binds...)
	if p.tmpl != "" {
		ro = append(ro, p.tmpl)
	}
	return sandbox.Spec{
		Argv:      argv,
		Env:       serverEnv(p.dirs.Home, p.inst, p.o.GPUs, resolveServerEnv(p.o.ServerEnv), os.LookupEnv),
		Dir:       p.dirs.Work,
		Workspace: p.dirs.Work,
		Home:      p.dirs.Home,
		Tmp:       p.dirs.Tmp,
		ReadOnly:  outermostPaths(ro),
		Hidden:    realPaths(p.o.Hidden),
		Mounts:    p.mounts(),
		Network:   sandbox.NetworkNone,
		GPUs:      append([]int{}, p.o.GPUs...),
	}
}

// probeVersion runs `vllm --version` (or asks the hf server's Python for
// its libraries) in the server's sandbox, records the answer and warns
// when it is not the original's pin.
func (p *procServer) probeVersion(ctx context.Context) {
	v, err := p.runVersion(ctx)
	if err != nil {
		v = "unknown: " + err.Error()
	}
	p.record.Version = v
}

func (p *procServer) runVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	spec := p.spec(append([]string{p.inst.Argv0}, p.versionArgs...))
	spec.GPUs = nil
	var out limitedBuffer
	var errb tailBuffer
	out.max, errb.max = 64<<10, 4096
	spec.Stdout, spec.Stderr = &out, &errb
	if err := p.dirs.freshTmp(); err != nil {
		return "", err
	}
	if err := p.sb.Capabilities().Supports(spec); err != nil {
		return "", err
	}
	proc, err := p.sb.Start(ctx, spec)
	if err != nil {
		return "", err
	}
	defer proc.Destroy()
	ex, err := proc.Wait(ctx)
	if err != nil {
		return "", err
	}
	if ex.Code != 0 || ex.Signal != "" {
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return "", fmt.Errorf("%s %s: %s: %s", filepath.Base(p.inst.Argv0), strings.Join(p.versionArgs, " "), exitText(ex, nil), msg)
	}
	return p.launcher.version(out.String())
}

var versionLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^v?(\d+\.\d+(?:\.\d+)*(?:[.+\-]?[0-9A-Za-z][0-9A-Za-z.+\-]*)?)$`)
})

// parseVLLMVersion finds the version in `vllm --version`'s output: the last
// line that is one (vLLM logs platform detection before it).
func parseVLLMVersion(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m := versionLine().FindStringSubmatch(strings.TrimSpace(lines[i])); m != nil {
			return m[1]
		}
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// noteServer records a started server in OUT/eval.json and warns about
// what its record says.
func (o Options) noteServer(rec ServerRecord) error {
	if o.Progress != nil {
		for _, w := range rec.Warnings() {
			fmt.Fprintf(o.Progress, "warning: %s\n", w)
		}
	}
	return recordServer(o.OutDir, rec)
}

// recordServer writes the server's record into OUT/eval.json.
func recordServer(dir string, rec ServerRecord) error {
	if err := updateState(dir, func(st *state) { st.Server = &rec }); err != nil {
		return fmt.Errorf("record the server: %w", err)
	}
	return nil
}

// recordedServer is the server record in OUT/eval.json, if any.
func recordedServer(dir string) *ServerRecord {
	if st := recordedState(dir); st != nil {
		return st.Server
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it (a traceback's last
// line says what went wrong).
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}

// outermostPaths cleans and dedupes paths, dropping those under another.
func outermostPaths(paths []string) []string {
	var clean []string
	for _, p := range paths {
		if p != "" {
			clean = append(clean, filepath.Clean(p))
		}
	}
	sort.Strings(clean)
	var out []string
	for _, p := range clean {
		if !slices.ContainsFunc(out, func(q string) bool { return p == q || strings.HasPrefix(p, q+"/") }) {
			out = append(out, p)
		}
	}
	return out
}

// realPaths resolves symlinks in paths: what is hidden is the directory
// itself, however it is reached (and a sandbox cannot mount over a link).
func realPaths(paths []string) []string {
	out := []string{}
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		out = append(out, p)
	}
	return out
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
