package job

import (
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestSetLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want sandbox.Limits
		err  string
	}{
		{in: "memory=64G", want: sandbox.Limits{MemoryBytes: 64 << 30}},
		{in: "memory=512MiB", want: sandbox.Limits{MemoryBytes: 512 << 20}},
		{in: "tmp=1.5G", want: sandbox.Limits{TmpBytes: 3 << 29}},
		{in: "disk=1048576", want: sandbox.Limits{DiskBytes: 1 << 20}},
		{in: "pids=100", want: sandbox.Limits{Pids: 100}},
		{in: "files=none", want: sandbox.Limits{DiskFiles: -1}},
		{in: "cpus=2.5", want: sandbox.Limits{CPUs: 2.5}},
		{in: "memory=lots", err: "not a size"},
		{in: "pids=0", err: "positive"},
		{in: "gpu=1", err: "unknown"},
		{in: "memory", err: "NAME=VALUE"},
	} {
		var s Spec
		err := s.SetLimit(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one mentioning %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || s.Limits != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.in, s.Limits, err, c.want)
		}
	}
}

func TestLimitDefaultsAndOff(t *testing.T) {
	s := Spec{Limits: sandbox.Limits{Pids: -1, TmpBytes: 1 << 20}}
	normalizeLimits(&s.Limits)
	if s.Limits.MemoryBytes <= 0 || s.Limits.MemoryBytes > DefaultMemoryBytes || s.Limits.DiskBytes != DefaultDiskBytes || s.Limits.DiskFiles != DefaultDiskFiles {
		t.Errorf("defaults not filled: %+v", s.Limits)
	}
	if s.Limits.Pids != -1 || s.Limits.TmpBytes != 1<<20 {
		t.Errorf("given limits changed: %+v", s.Limits)
	}
	normalizeLimits(&s.Limits) // a resumed job keeps them
	if got := s.SandboxLimits(); got.Pids != 0 || got.TmpBytes != 1<<20 {
		t.Errorf("sandbox limits %+v: off must read as 0, set as set", got)
	}
}
