package limits

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
)

// DiskUsage is what a set of directory trees holds on disk.
type DiskUsage struct {
	Bytes int64 // allocated bytes (st_blocks), each inode counted once
	Files int64 // directory entries, links and special files included
}

// Measure walks dirs without following links and adds up their allocated
// blocks, counting hard-linked files once (a sparse or hard-linked file
// costs what the disk holds, not its apparent size). It stops early, with
// the partial usage, once Files exceeds maxFiles (when positive) or ctx
// ends, so a tree of millions of files cannot keep the harness busy.
func Measure(ctx context.Context, dirs []string, maxFiles int64) (DiskUsage, error) {
	var u DiskUsage
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: the agent is still writing
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			u.Files++
			if maxFiles > 0 && u.Files > maxFiles {
				return filepath.SkipAll
			}
			info, err := e.Info()
			if err != nil {
				return nil
			}
			st, ok := info.Sys().(*syscall.Stat_t)
			if !ok {
				return nil
			}
			k := key{uint64(st.Dev), st.Ino}
			if st.Nlink > 1 {
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			u.Bytes += st.Blocks * 512
			return nil
		})
		if err != nil {
			return u, err
		}
		if maxFiles > 0 && u.Files > maxFiles {
			break
		}
	}
	return u, nil
}
