package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ptb-dev/ptb/internal/fsutil"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// SnapshotMaxFile is the largest file kept in the workspace snapshot.
const SnapshotMaxFile = 20 << 20

// modelExts are weight files left out of the snapshot (final_model is
// copied whole, separately).
var modelExts = map[string]bool{".safetensors": true, ".bin": true, ".pt": true, ".pth": true,
	".gguf": true, ".ckpt": true, ".h5": true, ".msgpack": true, ".onnx": true, ".npz": true}

// sparseSlack is how far a collected file's apparent size may exceed the
// blocks it occupies; a file with more holes than this is refused, so a
// sparse file can never make collect write more than it occupies plus
// sparseSlack.
const sparseSlack = 64 << 20

// budget bounds what collect writes and visits (job bounds), across
// final_model and the snapshot.
type budget struct {
	maxBytes int64
	maxFiles int
	bytes    int64
	files    int
}

// errOverBudget marks a collect that went over its bounds.
var errOverBudget = errors.New("over the collect bounds")

func (b *budget) entry(rel string) error {
	b.files++
	if b.files > b.maxFiles {
		return fmt.Errorf("%w: more than %d files and directories (job bounds.collect_max_files) at %s; the agent left too many files, or raise the bound", errOverBudget, b.maxFiles, rel)
	}
	return nil
}

func (b *budget) add(rel string, n int64) error {
	if b.bytes+n > b.maxBytes {
		return fmt.Errorf("%w: %s (%d bytes) would bring what collect writes to %d bytes, over %d (job bounds.collect_max_bytes); raise the bound if the model really is that large", errOverBudget, rel, n, b.bytes+n, b.maxBytes)
	}
	b.bytes += n
	return nil
}

// sparseNote returns why fi is refused as too sparse, or "".
func sparseNote(fi os.FileInfo) string {
	if alloc := safeio.Allocated(fi); fi.Size()-alloc > sparseSlack {
		return fmt.Sprintf("sparse file: %d bytes apparent, %d allocated", fi.Size(), alloc)
	}
	return ""
}

func (x *run) collect(ctx context.Context) (result.Stage, error) {
	ws := x.dir.Path(rundir.Workspace)
	if err := os.RemoveAll(x.dir.Path(rundir.CollectDir)); err != nil {
		return result.Stage{}, err
	}
	if err := os.MkdirAll(x.dir.Path(rundir.CollectDir), 0o755); err != nil {
		return result.Stage{}, err
	}
	bounds := x.spec.Bounds.WithDefaults()
	bud := &budget{maxBytes: bounds.CollectMaxBytes, maxFiles: bounds.CollectMaxFiles}
	var notes []string
	// final_model, symlinks dereferenced, only within the job's own files.
	src := filepath.Join(ws, "final_model")
	if _, err := os.Stat(src); err == nil {
		allowed := []string{ws, x.dir.Path(rundir.Home)}
		sums, refused, err := copyDeref(ctx, src, x.dir.Path(rundir.FinalModel), allowed, bud)
		if err != nil {
			// No partial model is left for the evaluation.
			os.RemoveAll(x.dir.Path(rundir.FinalModel))
			return result.Stage{}, fmt.Errorf("copy final_model: %w", err)
		}
		var b strings.Builder
		for _, f := range slices.Sorted(maps.Keys(sums)) {
			fmt.Fprintf(&b, "%s  %s\n", sums[f], f)
		}
		if err := fsutil.WriteFileAtomic(x.dir.Path(rundir.FinalModelSum), []byte(b.String()), 0o644); err != nil {
			return result.Stage{}, err
		}
		for _, r := range refused {
			notes = append(notes, "final_model: not copied: "+r)
		}
	} else {
		notes = append(notes, "no final_model in the workspace")
	}
	// Protected files.
	var prot Protected
	if err := x.dir.ReadJSON(rundir.ProtectedFile, &prot); err != nil {
		return result.Stage{}, fmt.Errorf("read protected-file manifest: %w", err)
	}
	changes, err := checkProtected(ws, prot)
	if err != nil {
		return result.Stage{}, err
	}
	if err := x.dir.WriteJSON(rundir.ProtectedCheckFile, rundir.ProtectedCheck{OK: len(changes) == 0, Changes: changes}); err != nil {
		return result.Stage{}, err
	}
	if len(changes) > 0 {
		notes = append(notes, "protected files changed: "+strings.Join(changes, ", "))
	}
	// Workspace snapshot without model weights.
	skipped, err := snapshot(ctx, ws, x.dir.Path(rundir.Snapshot), bud)
	if errors.Is(err, errOverBudget) {
		// The snapshot is a convenience copy (the workspace stays in the run
		// directory): over the bounds it stops, and says so; only
		// final_model going over fails collect.
		skipped = append(skipped, "snapshot stopped: "+err.Error())
		notes = append(notes, "snapshot incomplete: "+err.Error())
	} else if err != nil {
		return result.Stage{}, fmt.Errorf("snapshot workspace: %w", err)
	}
	for _, sk := range skipped {
		if strings.Contains(sk, "sparse file") {
			notes = append(notes, "snapshot: not copied: "+sk)
		}
	}
	if err := fsutil.WriteFileAtomic(x.dir.Path(rundir.SnapshotSkippedFile), []byte(strings.Join(skipped, "\n")+"\n"), 0o644); err != nil {
		return result.Stage{}, err
	}
	return result.Stage{Status: result.StatusDone, Reason: strings.Join(notes, "; ")}, nil
}

// copyDeref copies the tree at src to dst, following symlinks whose
// targets resolve inside one of allowed (a link to /etc/shadow is refused,
// not copied by a harness that may run as root). A directory reached twice
// (a link to "." or to a parent) is refused, and a file reached through
// several links or hard links (the same device and inode) is copied once
// and hard-linked, so links cannot make the copy grow without bound. A
// file with more than sparseSlack bytes of holes is refused. Every entry
// and byte counts against bud. It returns the sha256 of every copied file
// by relative path, and the refused entries.
func copyDeref(ctx context.Context, src, dst string, allowed []string, bud *budget) (map[string]string, []string, error) {
	sums := map[string]string{}
	var refused []string
	var roots []string
	for _, a := range allowed {
		ra, err := filepath.EvalSymlinks(a)
		if err != nil {
			ra = a
		}
		roots = append(roots, ra)
	}
	inside := func(p string) bool {
		for _, ra := range roots {
			if p == ra || strings.HasPrefix(p, ra+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
	dirsSeen := map[safeio.FileID]bool{}
	type copiedFile struct{ path, sum string }
	copied := map[safeio.FileID]copiedFile{}
	var walk func(s, d, rel string) error
	walk = func(s, d, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := "final_model"
		if rel != "" {
			name += "/" + rel
		}
		if err := bud.entry(name); err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(s)
		if err != nil {
			refused = append(refused, rel+" (dangling symlink)")
			return nil
		}
		if !inside(real) {
			refused = append(refused, rel+" (links outside the job: "+real+")")
			return nil
		}
		fi, err := os.Lstat(real)
		if err != nil {
			return err
		}
		id, _ := safeio.ID(fi)
		switch {
		case fi.IsDir():
			if dirsSeen[id] {
				refused = append(refused, rel+" (a directory already copied: a symlink loop or repeat)")
				return nil
			}
			dirsSeen[id] = true
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			ents, err := os.ReadDir(real)
			if err != nil {
				return err
			}
			for _, e := range ents {
				r := e.Name()
				if rel != "" {
					r = rel + "/" + e.Name()
				}
				if err := walk(filepath.Join(s, e.Name()), filepath.Join(d, e.Name()), r); err != nil {
					return err
				}
			}
		case fi.Mode().IsRegular():
			if first, ok := copied[id]; ok {
				if err := os.Link(first.path, d); err != nil {
					return err
				}
				sums[rel] = first.sum
				return nil
			}
			if why := sparseNote(fi); why != "" {
				refused = append(refused, rel+" ("+why+")")
				return nil
			}
			sum, err := copyFile(real, d, func(fi os.FileInfo) error {
				if why := sparseNote(fi); why != "" {
					return errors.New(why)
				}
				return bud.add(name, fi.Size())
			})
			if errors.Is(err, errOverBudget) {
				return err
			}
			if err != nil {
				refused = append(refused, fmt.Sprintf("%s (%v)", rel, err))
				return nil
			}
			copied[id] = copiedFile{d, sum}
			sums[rel] = sum
		default:
			refused = append(refused, rel+" (not a regular file: "+safeio.TypeName(fi.Mode())+")")
		}
		return nil
	}
	return sums, refused, walk(src, dst, "")
}

// copyFile copies the regular file src to dst and returns the sha256 of
// the content. src is opened with safeio (no link, FIFO or device; the type
// is checked after opening); check, if set, sees the opened file's stat
// first and may refuse it. At most the size stat reported is copied.
func copyFile(src, dst string, check func(os.FileInfo) error) (string, error) {
	in, fi, err := safeio.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if check != nil {
		if err := check(fi); err != nil {
			return "", err
		}
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	h := newHash()
	if _, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, fi.Size())); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return h.hex(), nil
}

// snapshot copies the workspace to dst without final_model, weight files,
// files over SnapshotMaxFile and sparse files; symlinks are kept as links,
// hard links (the same device and inode) as hard links. Every entry and
// byte counts against bud. It returns what it left out and why.
func snapshot(ctx context.Context, ws, dst string, bud *budget) ([]string, error) {
	var skipped []string
	copied := map[safeio.FileID]string{}
	err := filepath.WalkDir(ws, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				skipped = append(skipped, p+" (unreadable)")
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(ws, p)
		target := filepath.Join(dst, rel)
		if rel == "final_model" {
			skipped = append(skipped, "final_model/ (copied to collect/final_model)")
			return filepath.SkipDir
		}
		if err := bud.entry("workspace/" + filepath.ToSlash(rel)); err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return nil
			}
			return os.Symlink(l, target)
		case !d.Type().IsRegular():
			skipped = append(skipped, rel+" (not a regular file)")
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if modelExts[strings.ToLower(filepath.Ext(p))] {
			skipped = append(skipped, fmt.Sprintf("%s (model weights, %d bytes)", rel, fi.Size()))
			return nil
		}
		if fi.Size() > SnapshotMaxFile {
			skipped = append(skipped, fmt.Sprintf("%s (%d bytes, over the %d-byte limit)", rel, fi.Size(), SnapshotMaxFile))
			return nil
		}
		if id, ok := safeio.ID(fi); ok {
			if first, ok := copied[id]; ok {
				return os.Link(first, target)
			}
		}
		_, err = copyFile(p, target, func(fi os.FileInfo) error {
			if why := sparseNote(fi); why != "" {
				return errors.New(why)
			}
			return bud.add("workspace/"+filepath.ToSlash(rel), fi.Size())
		})
		if errors.Is(err, errOverBudget) {
			return err
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", rel, err))
			return nil
		}
		if id, ok := safeio.ID(fi); ok {
			copied[id] = target
		}
		return nil
	})
	return skipped, err
}
