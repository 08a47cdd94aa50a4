package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckEgress(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, network, log string
		missing            bool
		status, kind, ev   string
	}{
		{name: "allowed package index", network: "gateway", log: egressLines(EgressRequest{Method: "CONNECT", Host: "pypi.org", Port: 443, Allowed: true, Rule: "allow pypi.org"}), status: Pass, ev: "1 connections, 1 allowed"},
		{name: "refused other host is a note", network: "gateway", log: egressLines(EgressRequest{Method: "CONNECT", Host: "example.com", Port: 443, Rule: "default deny"}), status: Pass, ev: "note: egress log line 1: CONNECT example.com:443 refused"},
		{name: "provider host refused", network: "gateway", log: egressLines(EgressRequest{Method: "CONNECT", Host: "API.OpenAI.com", Port: 443, Rule: "deny api.openai.com"}), status: Flag, kind: KindAPI, ev: "API.OpenAI.com:443 refused"},
		{name: "provider host by plain http", network: "gateway", log: egressLines(EgressRequest{Method: "POST", Host: "generativelanguage.googleapis.com", Port: 80, URL: "http://generativelanguage.googleapis.com/v1beta/models", Rule: "deny"}), status: Flag, kind: KindAPI},
		{name: "garbage line", network: "gateway", log: "{not json\n", status: Unverified, ev: "1 lines are not egress records"},
		{name: "missing log under gateway", network: "gateway", missing: true, status: Unverified, ev: "no egress log"},
		{name: "no network", network: "none", missing: true, status: Pass},
		{name: "host network", network: "host", log: "", status: Unverified, ev: "host network"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "absent.jsonl")
			if !c.missing {
				p = write(strings.ReplaceAll(c.name, " ", "_")+".jsonl", c.log)
			}
			fs := checkEgress(p, c.network)
			if len(fs) != 1 {
				t.Fatalf("findings %+v", fs)
			}
			f := fs[0]
			if f.Status != c.status || f.Kind != c.kind || !strings.Contains(strings.Join(f.Evidence, "\n"), c.ev) {
				t.Errorf("got %s %q %q, want %s %q with %q", f.Status, f.Kind, f.Evidence, c.status, c.kind, c.ev)
			}
		})
	}
}

func TestCheckNetwork(t *testing.T) {
	for _, c := range []struct{ network, sandbox, want string }{
		{"gateway", "bwrap", Pass},
		{"none", "bwrap", Pass},
		{"host", "bwrap", Unverified},
		{"gateway", "none", Unverified},
		{"", "bwrap", Unverified},
	} {
		if got := checkNetwork(c.network, c.sandbox); got.Status != c.want {
			t.Errorf("network %q sandbox %q: %s, want %s", c.network, c.sandbox, got.Status, c.want)
		}
	}
}

func TestCheckHubWithoutLog(t *testing.T) {
	absent := filepath.Join(t.TempDir(), "hub.jsonl")
	for network, want := range map[string]string{"none": Pass, "gateway": Unverified, "host": Unverified, "": Unverified} {
		if got := checkHub(absent, network); len(got) != 1 || got[0].Status != want {
			t.Errorf("network %q, no hub log: %+v, want %s", network, got, want)
		}
	}
}
