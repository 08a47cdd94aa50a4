package limits

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// TreeUsage is what a set of processes uses, read from /proc: the
// fallback when no control group could be made (a non-root harness on a
// cgroup v1 host).
type TreeUsage struct {
	Tasks       int64 // threads, as the pids controller counts them
	MemoryBytes int64 // proportional set size (shared pages split among their users), else resident size
}

// MeasureTree adds up the tasks and memory of pids; processes that vanish
// meanwhile are skipped.
func MeasureTree(pids []int) TreeUsage {
	var u TreeUsage
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid)
		b, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		// Fields after "(comm)": state is [0], num_threads [17].
		if end := bytes.LastIndexByte(b, ')'); end >= 0 {
			f := bytes.Fields(b[end+1:])
			if len(f) > 17 {
				n, _ := strconv.ParseInt(string(f[17]), 10, 64)
				u.Tasks += n
			}
		}
		if pss, ok := rollup(dir+"/smaps_rollup", "Pss:"); ok {
			u.MemoryBytes += pss
		} else if sm, err := os.ReadFile(dir + "/statm"); err == nil {
			if f := bytes.Fields(sm); len(f) > 1 {
				n, _ := strconv.ParseInt(string(f[1]), 10, 64)
				u.MemoryBytes += n * int64(os.Getpagesize())
			}
		}
	}
	return u
}

// rollup reads "Key: N kB" from an smaps_rollup file.
func rollup(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(key)) {
			fs := bytes.Fields(line[len(key):])
			if len(fs) >= 1 {
				n, err := strconv.ParseInt(string(fs[0]), 10, 64)
				return n << 10, err == nil
			}
		}
	}
	return 0, false
}
