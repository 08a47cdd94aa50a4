package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteFiles writes files (relative paths) under root, which the agent
// owns. The harness may run as root, so nothing the agent planted is
// followed: every path is resolved inside root (os.Root refuses a symlink
// that leads out), and an existing file or link at the path is replaced,
// not written through.
func WriteFiles(root string, files map[string][]byte, perm os.FileMode) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for rel, b := range files {
		rel = filepath.Clean(strings.TrimPrefix(rel, "~/"))
		if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("agent file %q escapes %s", rel, root)
		}
		if dir := filepath.Dir(rel); dir != "." {
			if err := r.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("write %s in %s: %w", rel, root, err)
			}
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace %s in %s: %w", rel, root, err)
		}
		f, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("write %s in %s: %w", rel, root, err)
		}
		_, werr := f.Write(b)
		if err := f.Close(); werr == nil {
			werr = err
		}
		if werr != nil {
			return fmt.Errorf("write %s in %s: %w", rel, root, werr)
		}
	}
	return nil
}
