package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/ptb-dev/ptb/internal/safeio"
)

type hasher struct{ hash.Hash }

func newHash() hasher { return hasher{sha256.New()} }

func (h hasher) hex() string { return hex.EncodeToString(h.Sum(nil)) }

// hashAgentFile returns the sha256 of a file the agent could have changed:
// opened with safeio (no link, FIFO or device), read no further than its
// allocated blocks. A sparse file is not read: its "digest" says so, which
// never matches a prepare-time sha256.
func hashAgentFile(path string) (string, error) {
	f, fi, err := safeio.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if safeio.Sparse(fi) {
		return fmt.Sprintf("sparse file: %d bytes apparent, %d allocated", fi.Size(), safeio.Allocated(fi)), nil
	}
	h := newHash()
	if _, err := io.Copy(h, safeio.BoundedReader(f, fi)); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return h.hex(), nil
}
