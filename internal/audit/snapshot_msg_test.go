package audit

import (
	"errors"
	"strings"
	"testing"
)

// With no cache directory at all, the error says what to do instead of
// "(searched )".
func TestSnapshotNoCacheMessage(t *testing.T) {
	for _, c := range []struct {
		caches []string
		want   string
	}{
		{nil, "give --hf-cache DIR or set HF_HUB_CACHE"},
		{[]string{t.TempDir()}, "(searched /"},
	} {
		_, err := Snapshot(c.caches, "Qwen/Qwen3-1.7B-Base")
		if !errors.Is(err, errNotCached) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "(searched )") {
			t.Errorf("Snapshot(%v): %v; want %q", c.caches, err, c.want)
		}
	}
}
