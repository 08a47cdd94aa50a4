package bwrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// fakeEtc builds an /etc with what a host keeps there, secrets included.
func fakeEtc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	files := []string{"passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "shadow", "gshadow",
		"sudoers", "sudoers.d/admin", "ssh/ssh_host_ed25519_key", "ssh/sshd_config", "pip.conf", "npmrc",
		"ssl/certs/ca-certificates.crt", "ssl/private/server.key", "python3.11/sitecustomize.py",
		"default/locale", "default/useradd", "machine-id", "subuid"}
	for _, f := range files {
		p := filepath.Join(etc, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// resolv.conf as systemd-resolved leaves it: a link into /run.
	target := filepath.Join(root, "run", "stub-resolv.conf")
	os.MkdirAll(filepath.Dir(target), 0o755)
	os.WriteFile(target, []byte("nameserver 127.0.0.53\n"), 0o644)
	os.Symlink(target, filepath.Join(etc, "resolv.conf"))
	os.Symlink("/proc/mounts", filepath.Join(etc, "mtab"))
	return etc
}

func TestArgsFilterEtc(t *testing.T) {
	etc := fakeEtc(t)
	dir := t.TempDir()
	spec := sandbox.Spec{Argv: []string{"true"}, Workspace: filepath.Join(dir, "ws"), Home: filepath.Join(dir, "home"), Tmp: filepath.Join(dir, "tmp")}
	a, err := hostLayout{etc: etc}.args(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a, " ")
	for _, want := range []string{
		"--ro-bind " + etc + "/passwd /etc/passwd",
		"--ro-bind " + etc + "/group /etc/group",
		"--ro-bind " + etc + "/ssl /etc/ssl",
		"--tmpfs /etc/ssl/private",
		"--ro-bind " + etc + "/python3.11 /etc/python3.11",
		"--ro-bind " + etc + "/default/locale /etc/default/locale",
		"--ro-bind " + etc + "/resolv.conf /etc/resolv.conf", // bwrap binds what the link points to
		"--symlink /proc/mounts /etc/mtab",
		"--remount-ro /",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	for _, secret := range []string{"shadow", "gshadow", "sudoers", "ssh", "pip.conf", "npmrc", "machine-id", "subuid", "useradd"} {
		for _, x := range a {
			if strings.HasPrefix(x, etc+"/"+secret) || x == "/etc/"+secret || strings.HasPrefix(x, "/etc/"+secret+"/") {
				t.Errorf("/etc/%s reaches the sandbox: %s", secret, got)
			}
		}
	}
	// The private keys' tmpfs comes after the bind that would show them.
	if strings.Index(got, "--tmpfs /etc/ssl/private") < strings.Index(got, "/etc/ssl ") {
		t.Errorf("ssl/private hidden before /etc/ssl is bound: %s", got)
	}
}

func TestArgsBindNothingElseOfTheHost(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "cli", "node_modules")
	os.MkdirAll(ro, 0o755)
	spec := sandbox.Spec{Argv: []string{"true"}, Workspace: "/srv/runs/r1/workspace", Home: "/srv/runs/r1/home",
		Tmp: "/srv/runs/r1/tmp", ReadOnly: []string{ro}, Hidden: []string{"/srv/runs", "/root", "/opt/ptb-state"}}
	a, err := hostLayout{etc: fakeEtc(t)}.args(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for i := 0; i+2 < len(a); i++ {
		switch a[i] {
		case "--ro-bind", "--bind", "--dev-bind":
			sources = append(sources, a[i+1])
		}
	}
	allowed := append(append([]string{}, SystemDirs...), "/dev/null", ro, "/srv/runs/r1/workspace", "/srv/runs/r1/home", "/srv/runs/r1/tmp")
	for _, s := range sources {
		ok := strings.Contains(s, "/etc/")
		for _, d := range allowed {
			if within(s, d) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("host path %s is bound into the sandbox", s)
		}
	}
	got := strings.Join(a, " ")
	if strings.Contains(got, "--ro-bind / /") {
		t.Errorf("the whole host is bound: %s", got)
	}
	// A hidden path nothing shows needs no mount; one inside a bound
	// system directory does.
	if strings.Contains(got, "--tmpfs /srv/runs ") || strings.Contains(got, "--tmpfs /root ") {
		t.Errorf("mounts over paths the sandbox cannot see anyway: %s", got)
	}
	if err := os.Mkdir("/opt/ptb-state", 0o755); err == nil {
		defer os.Remove("/opt/ptb-state")
		a, _ = hostLayout{etc: fakeEtc(t)}.args(spec, nil)
		if got := strings.Join(a, " "); !strings.Contains(got, "--tmpfs /opt/ptb-state") {
			t.Errorf("hidden path under /opt is not covered: %s", got)
		}
	}
}

func TestHarnessPrivateDirs(t *testing.T) {
	env := map[string]string{"HOME": "/opt/harness", "XDG_CONFIG_HOME": "/opt/harness/.config", "HF_HOME": "relative/hf",
		"CODEX_HOME": "/", "CLAUDE_CONFIG_DIR": "/usr", "HF_TOKEN_PATH": "/srv/tok", "XDG_CACHE_HOME": "/usr/local/cache"}
	got := strings.Join(harnessPrivate(func(k string) string { return env[k] }), " ")
	if want := "/opt/harness /opt/harness/.config /usr/local/cache /srv/tok"; got != want {
		t.Errorf("got %q, want %q (relative paths and ones covering a system directory left out)", got, want)
	}
}
