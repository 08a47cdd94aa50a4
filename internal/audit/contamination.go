package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
)

// textExts are the file types the contamination scan reads; a ".gz" of
// one of them is decompressed on the fly. Everything else (model weights,
// binaries) is skipped.
var textExts = map[string]bool{
	".jsonl": true, ".json": true, ".csv": true, ".tsv": true, ".txt": true, ".py": true,
	".md": true, ".yaml": true, ".yml": true, ".ipynb": true, ".jinja": true, ".sh": true,
	".arrow": true, ".parquet": true,
}

// skipDirs are directory names the scan does not enter: version control,
// caches of compiled code, installed packages.
var skipDirs = map[string]bool{".git": true, "__pycache__": true, "node_modules": true, "site-packages": true, "dist-packages": true}

// EvalOutputDirs are workspace directories where the evaluation writes its
// logs (inspect-ai writes logs/, ptb's evaluate.py eval_runs/); test items there are reported as a note,
// not a flag, since running the evaluation is allowed.
var EvalOutputDirs = []string{"logs", "eval_runs"}

// FileHits is the contamination scan's result for one file.
type FileHits struct {
	Path    string   `json:"path"` // relative to its scan root, prefixed by the root's label
	Bytes   int64    `json:"bytes"`
	Items   []string `json:"items"` // ids of the test items found
	Parts   []string `json:"parts"` // for each item, the part matched and its fraction
	EvalLog bool     `json:"eval_log"`
}

// ScanResult is the contamination scan's result over all roots.
type ScanResult struct {
	Task       string
	Files      int
	Bytes      int64
	Hits       []FileHits // files with at least one item, by path
	Unreadable []string   // files that could not be decoded
	ItemsHit   int        // distinct items found outside evaluation logs
	Measurable int
}

// ScanRoot is a directory tree to scan.
type ScanRoot struct {
	Label string // shown before relative paths, e.g. "workspace"
	Dir   string
	// CLIState marks a HOME: the agent CLIs' own state there (session
	// transcripts, in which the agent may have looked at test items, which
	// the rules allow) is reported as a note, not counted.
	CLIState bool
}

type scanFile struct {
	root ScanRoot
	path string // the file read (a symlink's target)
	rel  string // the path found, relative to the root
	size int64
	kind string // text, gzip or parquet
	note bool   // an evaluation log or an agent CLI's own state: reported, not counted
}

// Scan walks roots and matches every text-bearing file against ix with
// GOMAXPROCS workers.
func Scan(ctx context.Context, ix *Index, roots []ScanRoot) (*ScanResult, error) {
	var files []scanFile
	seen := map[string]bool{} // resolved paths: a file reached twice is scanned once
	for _, r := range roots {
		rootReal, err := filepath.EvalSymlinks(r.Dir)
		if err != nil {
			continue // an absent root has nothing to scan
		}
		err = filepath.WalkDir(r.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != r.Dir && skipDirs[d.Name()] {
					return filepath.SkipDir
				}
				return nil
			}
			target := p
			if d.Type()&fs.ModeSymlink != 0 {
				// Hugging Face caches are symlinks from snapshots/ to
				// extensionless blobs/: follow links that stay inside
				// the root, and judge the file by the link's name.
				real, err := filepath.EvalSymlinks(p)
				if err != nil || !within(real, rootReal) {
					return nil
				}
				target = real
			}
			info, err := os.Stat(target)
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			kind := kindOf(d.Name(), target)
			if kind == "" {
				return nil
			}
			real, _ := filepath.EvalSymlinks(target)
			if seen[real] {
				return nil
			}
			seen[real] = true
			rel, _ := filepath.Rel(r.Dir, p)
			rel = filepath.ToSlash(rel)
			files = append(files, scanFile{root: r, path: target, rel: rel, size: info.Size(), kind: kind,
				note: isEvalLog(rel) || r.CLIState && isCLIState(rel)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", r.Dir, err)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].size > files[j].size }) // big first: better balance
	res := &ScanResult{Task: ix.Task, Measurable: ix.Measurable}
	var mu sync.Mutex
	ch := make(chan scanFile)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := ix.newMatcher()
			buf := make([]byte, 1<<20)
			for f := range ch {
				if ctx.Err() != nil {
					continue
				}
				err := scanOne(m, f.path, f.kind, buf)
				hits := m.finish()
				mu.Lock()
				res.Files++
				res.Bytes += f.size
				if err != nil {
					res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", f.root.Label, f.rel, err))
				}
				if len(hits) > 0 {
					fh := FileHits{Path: f.root.Label + "/" + f.rel, Bytes: f.size, EvalLog: f.note}
					for _, h := range hits {
						fh.Items = append(fh.Items, ix.ids[h.item])
						fh.Parts = append(fh.Parts, fmt.Sprintf("%s %.2f", h.part, h.frac))
					}
					res.Hits = append(res.Hits, fh)
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		ch <- f
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(res.Hits, func(i, j int) bool { return res.Hits[i].Path < res.Hits[j].Path })
	sort.Strings(res.Unreadable)
	union := map[string]bool{}
	for _, h := range res.Hits {
		if !h.EvalLog {
			for _, id := range h.Items {
				union[id] = true
			}
		}
	}
	res.ItemsHit = len(union)
	return res, nil
}

// kindOf says how to read a file: by its name's extension, or, for a name
// without one (hub cache blobs, files renamed to hide them), by its first
// bytes. "" means the file is not text-bearing (weights, binaries).
func kindOf(name, path string) string {
	lower := strings.ToLower(name)
	ext := filepath.Ext(lower)
	switch {
	case ext == ".gz":
		inner := filepath.Ext(strings.TrimSuffix(lower, ext))
		if textExts[inner] && inner != ".parquet" && inner != ".arrow" {
			return "gzip"
		}
		return ""
	case ext == ".parquet":
		return "parquet"
	case textExts[ext]:
		return "text"
	case ext != "" && len(ext) <= 6 && !strings.ContainsAny(ext, "-_"):
		return "" // a known-looking extension that is not text (.bin, .safetensors, .so, ...)
	}
	return sniff(path)
}

// sniff reads the first bytes of an extensionless file.
func sniff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case n == 0:
		return ""
	case bytes.HasPrefix(head, []byte("PAR1")):
		return "parquet"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(head, []byte("ARROW1")) || bytes.Contains(head, []byte("ARROW1")):
		return "text" // Arrow IPC: strings are stored as raw UTF-8
	case n >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head[:8]) < 1<<30:
		return "" // safetensors: an 8-byte header length, then the JSON header
	case bytes.HasPrefix(head, []byte("GGUF")) || bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "" // GGUF weights; zip (PyTorch .bin checkpoints)
	}
	printable := 0
	for _, c := range head {
		if c == '\n' || c == '\r' || c == '\t' || c >= 0x20 && c != 0x7f {
			printable++
		}
	}
	if printable*10 >= n*9 {
		return "text"
	}
	return ""
}

func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

// cliStateDirs are where agent CLIs keep their own state under HOME.
var cliStateDirs = []string{".claude/", ".codex/", ".gemini/", ".local/share/opencode/", ".config/opencode/", ".cache/opencode/", ".npm/", ".ptb-script.yaml"}

func isCLIState(rel string) bool {
	for _, d := range cliStateDirs {
		if strings.HasPrefix(rel, d) || rel == strings.TrimSuffix(d, "/") {
			return true
		}
	}
	return false
}

func isEvalLog(rel string) bool {
	for _, d := range EvalOutputDirs {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

func scanOne(m *matcher, path, kind string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if kind == "parquet" {
		return scanParquet(m, f)
	}
	var r io.Reader = f
	if kind == "gzip" {
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	for {
		n, err := r.Read(buf)
		m.feed(buf[:n])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// scanParquet feeds every byte-array value of a parquet file, one value at
// a time, page by page.
func scanParquet(m *matcher, f *os.File) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parquet: %v", r)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	vals := make([]parquet.Value, 256)
	for _, rg := range pf.RowGroups() {
		for _, cc := range rg.ColumnChunks() {
			if cc.Type().Kind() != parquet.ByteArray {
				continue
			}
			pages := cc.Pages()
			for {
				p, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					pages.Close()
					return fmt.Errorf("parquet: %w", err)
				}
				vr := p.Values()
				for {
					n, err := vr.ReadValues(vals)
					for _, v := range vals[:n] {
						if !v.IsNull() {
							m.feed(v.ByteArray())
							m.docBreak()
						}
					}
					if errors.Is(err, io.EOF) || n == 0 && err == nil {
						break
					}
					if err != nil {
						parquet.Release(p)
						pages.Close()
						return fmt.Errorf("parquet: %w", err)
					}
				}
				parquet.Release(p)
			}
			pages.Close()
		}
	}
	return nil
}

// checkContamination runs the scan over roots for task.
func checkContamination(ctx context.Context, sets TestSets, task string, roots []ScanRoot) Finding {
	const check = "contamination"
	if task == "" {
		return unverified(check, KindContamination, "task unknown")
	}
	if sets == nil {
		return unverified(check, KindContamination, "no test-set source (pass --data-dir)")
	}
	ts, ix, err := loadIndex(ctx, sets, task)
	if err != nil {
		return unverified(check, KindContamination, fmt.Sprintf("load test set: %v", err))
	}
	var live []ScanRoot
	for _, r := range roots {
		if isDir(r.Dir) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return unverified(check, KindContamination, "no workspace to scan")
	}
	res, err := Scan(ctx, ix, live)
	if err != nil {
		return unverified(check, KindContamination, err.Error())
	}
	ev := []string{fmt.Sprintf("scanned %d files, %d bytes against %s (%d items, %d measurable, %d n-grams)", res.Files, res.Bytes, ts.Source, len(ts.Items), ix.Measurable, ix.Grams)}
	for _, h := range res.Hits {
		ids := h.Items
		more := ""
		if len(ids) > 5 {
			more = fmt.Sprintf(" and %d more", len(ids)-5)
			ids = ids[:5]
		}
		note := ""
		if h.EvalLog {
			note = "note (evaluation log or agent CLI state, not counted): "
		}
		ev = append(ev, fmt.Sprintf("%s%s: %d test items (%.1f%% of measurable): %s%s", note, h.Path, len(h.Items), 100*float64(len(h.Items))/float64(ix.Measurable), strings.Join(ids, ", "), more))
	}
	for _, u := range res.Unreadable {
		ev = append(ev, "unreadable: "+u)
	}
	switch {
	case res.ItemsHit >= FlagItems:
		ev[0] = fmt.Sprintf("%d distinct test items (%.1f%%) found in the scanned files (threshold %d); ", res.ItemsHit, 100*float64(res.ItemsHit)/float64(ix.Measurable), FlagItems) + ev[0]
		return flag(check, KindContamination, ev...)
	case len(res.Unreadable) > 0:
		return unverified(check, KindContamination, ev...)
	}
	return pass(check, KindContamination, ev...)
}
