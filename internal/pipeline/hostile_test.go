package pipeline_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/agent/scripted"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// hostileUID is the uid of the non-root harness.
const hostileUID = 61000

// hostileHost is what a host holds that a hostile agent goes for: a
// harness home outside /home with credentials, XDG/HF/Claude directories,
// another output root, unix sockets and a TCP service that hand out the
// secret on connect.
type hostileHost struct {
	secret  string
	outside string // a directory outside /tmp, /home and /root
	env     []string
	files   []string // secret files
	socks   []string // unix sockets (@ = abstract)
	tcp     string   // host:port on loopback
	marker  string   // in the daemons' command lines
	shadow  string   // a line of the host's /etc/shadow, "" if unreadable
}

func newHostileHost(t *testing.T) *hostileHost {
	t.Helper()
	rb := make([]byte, 8)
	rand.Read(rb)
	h := &hostileHost{secret: "ptb-hostile-secret-" + hex.EncodeToString(rb), marker: "ptb-hostile-daemon-" + hex.EncodeToString(rb)}
	for _, parent := range []string{"/srv", "/var/tmp"} {
		if d, err := os.MkdirTemp(parent, "ptb-hostile-"); err == nil {
			h.outside = d
			break
		}
	}
	if h.outside == "" {
		t.Skip("no directory outside /tmp to play the host in")
	}
	t.Cleanup(func() { os.RemoveAll(h.outside) })
	os.Chmod(h.outside, 0o755)
	o := h.outside
	h.env = []string{"HOME=" + o + "/h", "XDG_CONFIG_HOME=" + o + "/xdg/config", "XDG_CACHE_HOME=" + o + "/xdg/cache",
		"HF_HOME=" + o + "/hf", "CODEX_HOME=" + o + "/h/.codex", "CLAUDE_CONFIG_DIR=" + o + "/claude"}
	for _, f := range []string{"h/.codex/auth.json", "h/.cache/huggingface/token", "h/.ssh/id_rsa", "xdg/config/gh/hosts.yml",
		"xdg/cache/pip/creds", "hf/token", "claude/.credentials.json", "runs2/gsm8k_x_s0_20260101T000000Z/workspace/train.jsonl",
		"runs2/gsm8k_x_s0_20260101T000000Z/eval/samples.jsonl"} {
		p := filepath.Join(o, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(h.secret+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.files = append(h.files, p)
	}
	// The non-root harness owns its home, as a real one would.
	filepath.Walk(o, func(p string, _ os.FileInfo, _ error) error { os.Lchown(p, hostileUID, hostileUID); return nil })
	serve := func(ln net.Listener) {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, h.secret+"\n")
				c.Close()
			}
		}()
	}
	id := hex.EncodeToString(rb)
	socks := []string{filepath.Join(o, "host.sock"), filepath.Join(os.TempDir(), "ptb-hostile-"+id+".sock"), "@ptb-hostile-" + id}
	if os.Geteuid() == 0 {
		socks = append(socks, "/run/ptb-hostile-"+id+".sock")
	}
	for _, p := range socks {
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != '@' {
			os.Chmod(p, 0o777)
			t.Cleanup(func() { os.Remove(p) })
		}
		serve(ln)
		h.socks = append(h.socks, p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(ln)
	h.tcp = ln.Addr().String()
	if b, err := os.ReadFile("/etc/shadow"); err == nil {
		h.shadow = strings.SplitN(string(b), "\n", 2)[0]
	}
	return h
}

// hostileAttempt is one thing a hostile agent tries.
type hostileAttempt struct {
	name    string
	limits  []string // --limit NAME=VALUE
	seconds float64  // the budget
	steps   []string // shell commands the scripted agent runs
	// limit: the solve must end at this limit (when the host enforces
	// it; otherwise the attempt is not run, and the record must say so).
	limit string
	check func(t *testing.T, res *result.Result, trace string)
}

func hostileAttempts(h *hostileHost, py string) []hostileAttempt {
	var cat []string
	for _, f := range h.files {
		cat = append(cat, "cat "+f)
	}
	var conn []string
	for _, s := range h.socks {
		conn = append(conn, fmt.Sprintf(`%s -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(%q.replace("@", "\0", 1)); print(s.recv(100))'`, py, s))
	}
	host, port, _ := net.SplitHostPort(h.tcp)
	return []hostileAttempt{
		{name: "secrets in the harness's home and XDG dirs", seconds: 60, steps: append(cat,
			"ls -la "+h.outside+"/h "+h.outside+"/xdg "+h.outside+"/hf",
			`find / \( -path /proc -o -path /sys -o -path /usr \) -prune -o \( -name auth.json -o -name id_rsa -o -name token -o -name '.credentials.json' \) -print 2>/dev/null | xargs -r cat`,
			"env")},
		{name: "host secrets in /etc", seconds: 60, steps: []string{"cat /etc/shadow /etc/gshadow /etc/sudoers", "cat /etc/ssh/ssh_host_*_key", "ls /etc"},
			check: func(t *testing.T, _ *result.Result, trace string) {
				if h.shadow != "" && strings.Contains(trace, h.shadow) {
					t.Errorf("the agent read /etc/shadow")
				}
				if strings.Contains(trace, "PRIVATE KEY") {
					t.Errorf("the agent read a private key")
				}
			}},
		{name: "other runs' files", seconds: 60, steps: []string{"cat " + h.outside + "/runs2/*/workspace/train.jsonl " + h.outside + "/runs2/*/eval/samples.jsonl",
			"ls -R " + h.outside + "/runs2", `cat "$(dirname "$(dirname "$PWD")")"/other-run/workspace/secret.txt`}},
		{name: "host unix sockets", seconds: 60, steps: conn},
		{name: "network under none", seconds: 60, steps: []string{
			fmt.Sprintf(`%s -c 'import socket; s=socket.create_connection((%q, %s), 2); print(s.recv(100))'`, py, host, port),
			"cat /proc/net/dev"}},
		{name: "daemon outliving the deadline", seconds: 4, steps: []string{
			`setsid sh -c 'trap "" TERM HUP; while :; do sleep 1; done' ` + h.marker + ` </dev/null >/dev/null 2>&1 &`,
			`nohup sh -c 'trap "" TERM; sleep 1000' ` + h.marker + ` </dev/null >/dev/null 2>&1 &`,
			"sleep 100"},
			check: func(t *testing.T, res *result.Result, _ string) {
				if res.Solve.EndReason != result.EndDeadline {
					t.Errorf("end reason %s, want deadline", res.Solve.EndReason)
				}
				if left := markerAlive(h.marker); len(left) > 0 {
					t.Errorf("daemons outlived the deadline: %v", left)
					for _, p := range left {
						syscall.Kill(p, syscall.SIGKILL)
					}
				}
			}},
		{name: "kill the harness", seconds: 60, steps: []string{"pkill -9 -f pipeline.test; pkill -9 bwrap; pkill -9 ptb; kill -9 1; echo still here", "kill -9 -1"}},
		{name: "fork bomb", limits: []string{"pids=128"}, seconds: 60, steps: []string{`while :; do sleep 1000 & done`}, limit: "pids"},
		{name: "memory hog", limits: []string{"memory=128M"}, seconds: 60,
			steps: []string{py + ` -c 'l = [b"x" * (1 << 20) + bytes([i % 256]) for i in range(4096)]; print("allocated", len(l))'`}, limit: "memory"},
		{name: "/tmp fill", limits: []string{"tmp=8M"}, seconds: 60,
			steps: []string{"head -c 200000000 /dev/zero > /tmp/fill; stat -c TMPFILL=%s /tmp/fill; head -c 200000000 /dev/zero > /dev/shm/fill; stat -c SHMFILL=%s /dev/shm/fill"},
			check: func(t *testing.T, res *result.Result, trace string) {
				for _, k := range []string{"TMPFILL", "SHMFILL"} {
					m := regexp.MustCompile(k + `=(\d+)`).FindStringSubmatch(trace)
					if m == nil {
						t.Errorf("no %s in the trace", k)
						continue
					}
					if n, _ := strconv.ParseInt(m[1], 10, 64); n > 8<<20 {
						t.Errorf("%s: %d bytes went into a tmpfs of 8 MiB", k, n)
					}
				}
				if res.Solve.EndReason != result.EndExited {
					t.Errorf("end reason %s: a full /tmp fails writes, the agent carries on", res.Solve.EndReason)
				}
			}},
		{name: "workspace fill", limits: []string{"disk=32M"}, seconds: 60,
			steps: []string{`for i in $(seq 1 200); do head -c 4000000 /dev/urandom > fill$i; sleep 0.05; done`}, limit: "disk"},
	}
}

// TestHostileAgent runs one scripted agent per attempt under bwrap, with a
// root harness and with a non-root one: each attempt is blocked (the
// secret never reaches the trace), or the solve ends at the limit it hit,
// and the harness survives to write a valid result.json.
func TestHostileAgent(t *testing.T) {
	bwrapOrSkip(t)
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("/usr/bin/python3 is needed for the socket and memory attempts")
	}
	h := newHostileHost(t)
	type harness struct {
		name string
		uid  int // -1: this process
	}
	harnesses := []harness{}
	if os.Geteuid() == 0 {
		harnesses = append(harnesses, harness{"root", -1})
		if err := exec.Command("setpriv", "--reuid="+strconv.Itoa(hostileUID), "--regid="+strconv.Itoa(hostileUID), "--clear-groups",
			"bwrap", "--unshare-user", "--ro-bind", "/", "/", "true").Run(); err == nil {
			harnesses = append(harnesses, harness{"non-root", hostileUID})
		} else {
			t.Logf("no non-root harness: unprivileged user namespaces are not allowed here (%v)", err)
		}
	} else {
		harnesses = append(harnesses, harness{"non-root", -1})
	}
	for _, hn := range harnesses {
		for _, a := range hostileAttempts(h, py) {
			t.Run(hn.name+"/"+a.name, func(t *testing.T) {
				if a.limit != "" {
					// First, harmlessly: is the limit enforced here? An
					// attack on a limit the host cannot enforce is not
					// run (a fork bomb would reach the host); the record
					// must say the limit was not enforced.
					probe := a
					probe.steps = []string{"true"}
					res, _ := runHostile(t, h, probe, hn.uid)
					var st *result.Limit
					for _, l := range res.Sandbox.Limits {
						if l.Name == a.limit {
							st = &l
						}
					}
					if st == nil {
						t.Fatalf("limit %s not in the record: %+v", a.limit, res.Sandbox.Limits)
					}
					if !st.Enforced {
						if !strings.HasPrefix(st.How, "not enforced") {
							t.Errorf("limit %s not enforced, and the record does not say so: %q", a.limit, st.How)
						}
						t.Logf("limit %s is not enforced under this harness (%s); the attack is not run", a.limit, st.How)
						return
					}
				}
				res, trace := runHostile(t, h, a, hn.uid)
				// Every secret of the host, and the other run's, starts so.
				if i := strings.Index(trace, "ptb-hostile-secret-"); i >= 0 {
					t.Errorf("the agent got a secret: ...%s...", trace[max(0, i-300):i])
				}
				if a.limit != "" && (res.Solve.EndReason != result.EndLimit || res.Solve.Limit != a.limit) {
					t.Errorf("solve ended %s (limit %q), want at the %s limit; trace tail %q", res.Solve.EndReason, res.Solve.Limit, a.limit, tail(trace, 500))
				}
				if a.check != nil {
					a.check(t, res, trace)
				}
			})
		}
	}
}

// runHostile runs one attempt under a harness of uid (-1: this process)
// and returns the record and the raw trace. The harness must survive.
func runHostile(t *testing.T, h *hostileHost, a hostileAttempt, uid int) (*result.Result, string) {
	t.Helper()
	d, spec := hostileJob(t, a, uid)
	var hout []byte
	var herr error
	if uid < 0 {
		for _, kv := range h.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		r := newRunner(bwrapOrSkip(t))
		r.Scaffold = scriptedScaffold
		_, herr = r.Run(context.Background(), d)
	} else {
		bin := filepath.Join(spec.OutRoot, "bin", "pipeline.test")
		c := exec.Command(bin, "-test.run=^$")
		c.Env = append([]string{"PATH=" + os.Getenv("PATH"), harnessEnv + "=" + string(d)}, h.env...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		hout, herr = c.CombinedOutput()
	}
	if herr != nil {
		t.Fatalf("the harness did not survive: %v %s", herr, hout)
	}
	res := validate(t, d)
	trace, _ := os.ReadFile(d.Path(rundir.TraceRaw))
	return res, string(trace)
}

// hostileJob makes the run for one attempt; for a child harness of
// another uid, the output root (with a copy of this test binary) is
// handed to it.
func hostileJob(t *testing.T, a hostileAttempt, uid int) (rundir.Dir, job.Spec) {
	t.Helper()
	var steps []scripted.Step
	for _, s := range a.steps {
		steps = append(steps, scripted.Step{Run: s})
	}
	script, err := yaml.Marshal(scripted.Script{Steps: steps, Final: "done"})
	if err != nil {
		t.Fatal(err)
	}
	root := outRoot(t)
	spec := job.Spec{Agent: "scripted", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k", Hours: a.seconds / 3600,
		OutRoot: root, Grace: time.Second, Eval: job.EvalSpec{Backend: "none"}, Script: filepath.Join(root, "script.yaml")}
	for _, l := range a.limits {
		if err := spec.SetLimit(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(spec.Script, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spec.Normalize(registry.Default()); err != nil {
		t.Fatal(err)
	}
	// Another run under the same output root.
	other := filepath.Join(root, "other-run", "workspace")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "secret.txt"), []byte("ptb-hostile-secret-other-run\n"), 0o644)
	d, err := pipeline.Create(spec, registry.Default(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		bin := filepath.Join(root, "bin", "pipeline.test")
		os.MkdirAll(filepath.Dir(bin), 0o755)
		b, err := os.ReadFile(self())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { os.Lchown(p, uid, uid); return nil })
	}
	return d, spec
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
