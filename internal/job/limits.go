package job

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Default limits, sized for a 10-hour job on one GPU of an H100 box (a
// machine of 8 GPUs, ~2 TB of memory, ~200 cores, several TB of disk,
// shared by up to 8 jobs). Memory and CPUs are capped by what this host
// has.
const (
	DefaultMemoryBytes = 128 << 30 // at most 3/4 of the host's memory
	DefaultPids        = 16384     // threads count: a training process has hundreds
	DefaultCPUs        = 24        // at most the host's cores
	DefaultTmpBytes    = 16 << 30  // /tmp and /dev/shm, held in memory
	DefaultDiskBytes   = 400 << 30 // workspace and home: a 4B model with optimizer checkpoints
	DefaultDiskFiles   = 2_000_000 // a Python environment or two, datasets, checkpoints
)

// LimitNames are the names --limit takes, in order.
var LimitNames = []string{"memory", "pids", "cpus", "tmp", "disk", "files"}

// normalizeLimits fills the zero limits with the defaults; a negative
// limit means none and is kept as given, so that a resumed job does not
// take the default instead.
func normalizeLimits(l *sandbox.Limits) {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
		if total := hostMemory(); total > 0 && l.MemoryBytes > total/4*3 {
			l.MemoryBytes = total / 4 * 3
		}
	}
	if l.Pids == 0 {
		l.Pids = DefaultPids
	}
	if l.CPUs == 0 {
		l.CPUs = min(DefaultCPUs, float64(runtime.NumCPU()))
	}
	if l.TmpBytes == 0 {
		l.TmpBytes = DefaultTmpBytes
	}
	if l.DiskBytes == 0 {
		l.DiskBytes = DefaultDiskBytes
	}
	if l.DiskFiles == 0 {
		l.DiskFiles = DefaultDiskFiles
	}
}

// SandboxLimits are the limits as the sandbox takes them: a negative
// (switched off) limit becomes zero (not enforced).
func (s *Spec) SandboxLimits() sandbox.Limits {
	l := s.Limits
	for _, p := range []*int64{&l.MemoryBytes, &l.Pids, &l.TmpBytes, &l.DiskBytes, &l.DiskFiles} {
		if *p < 0 {
			*p = 0
		}
	}
	if l.CPUs < 0 {
		l.CPUs = 0
	}
	return l
}

// SetLimit sets one limit from NAME=VALUE: memory, tmp and disk take a
// size (bytes, or with K, M, G, T suffixes in powers of 1024), pids and
// files a count, cpus a number of cores; "none" switches a limit off.
func (s *Spec) SetLimit(kv string) error {
	name, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("limit %q: want NAME=VALUE, NAME one of %s", kv, strings.Join(LimitNames, ", "))
	}
	if !slices.Contains(LimitNames, name) {
		return fmt.Errorf("limit %q: unknown; want one of %s", name, strings.Join(LimitNames, ", "))
	}
	v = strings.TrimSpace(v)
	var n int64
	var f float64
	var err error
	if v == "none" {
		n, f = -1, -1
	} else {
		switch name {
		case "memory", "tmp", "disk":
			n, err = ParseSize(v)
		case "pids", "files":
			n, err = strconv.ParseInt(v, 10, 64)
		case "cpus":
			f, err = strconv.ParseFloat(v, 64)
		}
		if err == nil && (n < 0 || f < 0 || (n == 0 && f == 0)) {
			err = fmt.Errorf("must be positive (or none)")
		}
	}
	if err != nil {
		return fmt.Errorf("limit %s: %q: %v", name, v, err)
	}
	switch name {
	case "memory":
		s.Limits.MemoryBytes = n
	case "pids":
		s.Limits.Pids = n
	case "cpus":
		s.Limits.CPUs = f
	case "tmp":
		s.Limits.TmpBytes = n
	case "disk":
		s.Limits.DiskBytes = n
	case "files":
		s.Limits.DiskFiles = n
	}
	return nil
}

// ParseSize reads a byte count with an optional K, M, G or T suffix
// (powers of 1024; a trailing "B" or "iB" is allowed).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size (want e.g. 64G, 512M or a byte count)")
	}
	return int64(n * float64(mult)), nil
}

// hostMemory is the host's total memory in bytes, 0 if unknown.
func hostMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
