package eval

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// TestServerSpec is the server's sandbox, field by field: what it sees
// read-only, its private directories, its socket, only the job's GPUs, no
// network, and an environment that is an allowlist.
func TestServerSpec(t *testing.T) {
	for k, v := range map[string]string{"OPENAI_API_KEY": "sk-x", "HF_TOKEN": "hf_x", "PTB_JUDGE_KEY": "j", "LANG": "de_DE.UTF-8", "LD_LIBRARY_PATH": "/opt/cuda/lib64"} {
		t.Setenv(k, v)
	}
	out := t.TempDir()
	dirs, err := makeServerDirs(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dirs.remove)
	inst := install{Argv0: "/opt/venv/bin/vllm", Python: "/usr/bin/python3.11",
		Binds: []string{"/opt/venv", "/usr/lib/python3.11"}, Path: []string{"/usr/bin", "/opt/venv/bin"},
		Env: []string{"PYTHONUSERBASE=/root/.local"}}
	cases := []struct {
		name       string
		sb         sandbox.Backend
		gpus       []int
		serverEnv  []string
		tmpl       string
		wantSock   string
		wantCUDA   string
		wantNVIDIA string
		wantExtra  []string
	}{
		{name: "bwrap, one GPU", sb: bwrap.New(), gpus: []int{2}, wantSock: "/run/ptb", wantCUDA: "2", wantNVIDIA: "2"},
		{name: "bwrap, no GPU", sb: bwrap.New(), wantSock: "/run/ptb", wantCUDA: ""},
		{name: "bwrap, two GPUs, template, extra env", sb: bwrap.New(), gpus: []int{0, 3}, serverEnv: []string{"LD_LIBRARY_PATH", "VLLM_ATTENTION_BACKEND=FLASHINFER", "UNSET_ON_HOST"},
			tmpl: "/cache/templates/qwen3.jinja", wantSock: "/run/ptb", wantCUDA: "0,3", wantNVIDIA: "0,3",
			wantExtra: []string{"LD_LIBRARY_PATH=/opt/cuda/lib64", "VLLM_ATTENTION_BACKEND=FLASHINFER"}},
		{name: "none: same paths", sb: none.New(), gpus: []int{1}, wantSock: dirs.Sock, wantCUDA: "1", wantNVIDIA: "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{OutDir: out, Target: Target{ModelPath: "/runs/r1/collect/final_model", Backend: BackendVLLM}, Server: Server{GPUs: c.gpus, ServerEnv: c.serverEnv, Hidden: []string{"/data/datasets", "/runs"}}}
			p := &procServer{o: o, sb: c.sb, isolated: c.sb.Capabilities().Isolated, dirs: dirs, self: "/usr/local/bin/ptb", inst: inst, tmpl: c.tmpl,
				args: func(port int) []string { return []string{"serve", o.ModelPath, "--port", "8000"} }}
			spec := p.spec(p.serveArgv(8000))
			wantArgv := []string{"/usr/local/bin/ptb", "sandbox-init", "--forward", "unix:" + c.wantSock + "/server.sock=tcp:127.0.0.1:8000", "--",
				"/opt/venv/bin/vllm", "serve", "/runs/r1/collect/final_model", "--port", "8000"}
			if !reflect.DeepEqual(spec.Argv, wantArgv) {
				t.Errorf("argv\n got %q\nwant %q", spec.Argv, wantArgv)
			}
			wantRO := []string{dirs.Code, "/opt/venv", "/runs/r1/collect/final_model", "/usr/lib/python3.11", "/usr/local/bin/ptb"}
			if c.tmpl != "" {
				wantRO = append(wantRO, c.tmpl)
			}
			slices.Sort(wantRO)
			if !reflect.DeepEqual(spec.ReadOnly, wantRO) {
				t.Errorf("read-only\n got %q\nwant %q", spec.ReadOnly, wantRO)
			}
			if len(spec.Writable) != 0 {
				t.Errorf("writable %q, want none beyond its own directories", spec.Writable)
			}
			if spec.Workspace != dirs.Work || spec.Dir != dirs.Work || spec.Home != dirs.Home || spec.Tmp != dirs.Tmp {
				t.Errorf("own directories %q %q %q %q", spec.Workspace, spec.Dir, spec.Home, spec.Tmp)
			}
			want := []sandbox.Mount{{Source: dirs.Sock, Target: c.wantSock, Writable: true}}
			if !reflect.DeepEqual(spec.Mounts, want) {
				t.Errorf("mounts %+v, want %+v", spec.Mounts, want)
			}
			if !reflect.DeepEqual(spec.Hidden, o.Hidden) {
				t.Errorf("hidden %q, want %q", spec.Hidden, o.Hidden)
			}
			if spec.Network != sandbox.NetworkNone {
				t.Errorf("network %q", spec.Network)
			}
			if !slices.Equal(spec.GPUs, c.gpus) {
				t.Errorf("gpus %v, want %v", spec.GPUs, c.gpus)
			}
			wantEnv := []string{"PATH=/usr/bin:/opt/venv/bin:/usr/local/bin:/bin", "LANG=de_DE.UTF-8", "HOME=" + dirs.Home, "TMPDIR=/tmp",
				"HF_HOME=" + dirs.Home + "/.cache/huggingface", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "HF_DATASETS_OFFLINE=1",
				"VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
				"CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES=" + c.wantCUDA}
			if c.wantNVIDIA != "" {
				wantEnv = append(wantEnv, "NVIDIA_VISIBLE_DEVICES="+c.wantNVIDIA)
			}
			wantEnv = append(wantEnv, "PYTHONUSERBASE=/root/.local")
			wantEnv = append(wantEnv, c.wantExtra...)
			if !reflect.DeepEqual(spec.Env, wantEnv) {
				t.Errorf("env\n got %q\nwant %q", spec.Env, wantEnv)
			}
			for _, kv := range spec.Env {
				for _, secret := range []string{"OPENAI_API_KEY", "HF_TOKEN", "PTB_JUDGE_KEY"} {
					if strings.HasPrefix(kv, secret+"=") {
						t.Errorf("env holds %s", secret)
					}
				}
			}
		})
	}
}

// TestServerDirsPrivate: the socket directory is open to the sandbox's
// uid, the directory around it to no one else.
func TestServerDirsPrivate(t *testing.T) {
	d, err := makeServerDirs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{d.Root: 0o700, d.Sock: 0o777, d.Code: 0o755} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
}

// TestFindInstall resolves what a server needs from the host for each way
// Python programs are installed, and runs the result in bwrap, where homes
// are hidden: a pyenv interpreter (found through its shim), a venv's
// console script, `#!/usr/bin/env python3`, pip's /bin/sh trampoline for
// long paths, and a binary.
func TestFindInstall(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	env := installQueryEnv(nil)
	q, err := queryPython(context.Background(), py, env)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(q.Executable, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Skipf("python3 -m venv: %v %s", err, out)
	}
	site, err := exec.Command(filepath.Join(venv, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").Output()
	if err != nil {
		t.Fatal(err)
	}
	// A package only the venv has: the script imports it, as vllm's entry
	// point imports vllm.
	if err := os.WriteFile(filepath.Join(strings.TrimSpace(string(site)), "fakevllm.py"), []byte("print('fakevllm imported')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := "import fakevllm\n"
	venvPy := filepath.Join(venv, "bin", "python")
	cases := []struct {
		name, exe   string
		interpreter bool
		wantArgv0   string
		wantBind    string // one of the binds
		run         []string
		wantOut     string
	}{
		{name: "python3 on PATH (a pyenv shim here)", exe: "python3", interpreter: true, wantArgv0: q.Executable, wantBind: q.Prefixes[0],
			run: []string{"-c", "import json; print('ok')"}, wantOut: "ok"},
		{name: "venv console script", exe: write("vllm", "#!"+venvPy+"\n"+body), wantBind: venv, run: nil, wantOut: "fakevllm imported"},
		{name: "env python3", exe: write("vllm-env", "#!/usr/bin/env python3\nprint('env ok')\n"), wantBind: q.Prefixes[0], wantOut: "env ok"},
		{name: "pip trampoline", exe: write("vllm-long", "#!/bin/sh\n'''exec' \""+venvPy+"\" \"$0\" \"$@\"\n' '''\n"+body), wantBind: venv, wantOut: "fakevllm imported"},
		{name: "binary", exe: os.Args[0], wantArgv0: os.Args[0], wantBind: os.Args[0]},
	}
	b := bwrap.New()
	bwrapOK := b.Check(context.Background()) == nil
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := findInstall(context.Background(), c.exe, c.interpreter, env)
			if err != nil {
				t.Fatal(err)
			}
			want := c.wantArgv0
			if want == "" {
				want = c.exe
			}
			if in.Argv0 != want {
				t.Errorf("argv0 %q, want %q", in.Argv0, want)
			}
			if !slices.ContainsFunc(in.Binds, func(b string) bool { return b == c.wantBind || strings.HasPrefix(c.wantBind, b+"/") }) {
				t.Errorf("binds %q do not cover %s", in.Binds, c.wantBind)
			}
			if c.wantOut == "" || !bwrapOK {
				return
			}
			p := &procServer{o: Options{Target: Target{ModelPath: t.TempDir()}}, sb: b, isolated: true, inst: in, self: os.Args[0]}
			if p.dirs, err = makeServerDirs(t.TempDir()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.dirs.remove)
			spec := p.spec(append([]string{in.Argv0}, c.run...))
			var outb, errb limitedBuffer
			outb.max, errb.max = 4096, 4096
			spec.Stdout, spec.Stderr = &outb, &errb
			proc, err := b.Start(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := proc.Wait(context.Background())
			proc.Destroy()
			if err != nil || ex.Code != 0 || strings.TrimSpace(outb.String()) != c.wantOut {
				t.Errorf("in bwrap: exit %+v %v, stdout %q (want %q), stderr %s", ex, err, outb.String(), c.wantOut, errb.String())
			}
		})
	}
}

func TestParseVLLMVersion(t *testing.T) {
	cases := []struct{ out, want string }{
		{"0.11.0\n", "0.11.0"},
		{"INFO 11-29 12:00:00 [__init__.py:216] Automatically detected platform cuda.\n0.11.0\n", "0.11.0"},
		{"0.10.1.1\n", "0.10.1.1"},
		{"0.11.1rc2.dev5+g1234abc\n", "0.11.1rc2.dev5+g1234abc"},
		{"Traceback (most recent call last):\nModuleNotFoundError: No module named 'vllm'\n", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := parseVLLMVersion(c.out); got != c.want {
			t.Errorf("parseVLLMVersion(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}

func TestServerRecordWarnings(t *testing.T) {
	cases := []struct {
		rec  ServerRecord
		want []string
	}{
		{ServerRecord{Backend: "vllm", Version: "0.11.0", PinnedVersion: "0.11.0", Sandbox: "bwrap"}, nil},
		{ServerRecord{Backend: "vllm", Version: "0.10.2", PinnedVersion: "0.11.0", Sandbox: "bwrap"},
			[]string{"vllm 0.10.2 is not the original's pinned 0.11.0; scores may differ from the paper's"}},
		{ServerRecord{Backend: "vllm", Version: "unknown: exit status 1", PinnedVersion: "0.11.0", Sandbox: "none", Unsandboxed: true},
			[]string{"unsandboxed: the vllm server that loaded the model ran with the none sandbox backend (development only); nothing was isolated",
				"the vllm version could not be read (unknown: exit status 1); the original pinned 0.11.0"}},
		{ServerRecord{Backend: "hf", Version: "transformers 4.57.0, torch 2.8.0", Sandbox: "bwrap"}, nil},
	}
	for _, c := range cases {
		if got := c.rec.Warnings(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v:\n got %q\nwant %q", c.rec, got, c.want)
		}
	}
}

// A server that made its directories unreadable cannot stop the next start
// from clearing them (it matters for a harness that is not root).
func TestServerDirsClearedDespiteLockedDirectories(t *testing.T) {
	out := t.TempDir()
	d, err := makeServerDirs(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.remove)
	locked := filepath.Join(d.Home, "a", "b")
	if err := os.MkdirAll(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(locked, "f"), []byte("x"), 0o644)
	os.Symlink("/etc", filepath.Join(d.Home, "a", "etc"))
	os.Chmod(locked, 0)
	os.Chmod(filepath.Join(d.Home, "a"), 0)
	if _, err := makeServerDirs(out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(d.Home, "a")); err == nil {
		t.Error("the old home survived")
	}
	if fi, err := os.Stat("/etc"); err != nil || fi.Mode().Perm() == 0o700 {
		t.Errorf("/etc was touched through a link: %v %v", fi.Mode(), err)
	}
}

func TestTailBuffer(t *testing.T) {
	var b tailBuffer
	b.max = 8
	for _, s := range []string{"Traceback\n", strings.Repeat("x", 20), "\nImportError: no"} {
		b.Write([]byte(s))
	}
	if got, want := b.String(), "Error: no"[1:]; got != want {
		t.Errorf("tail %q, want %q", got, want)
	}
}
