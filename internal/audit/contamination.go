package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/ptb-dev/ptb/internal/safeio"
)

// FileHits is the contamination scan's result for one file.
type FileHits struct {
	Path  string   `json:"path"` // relative to its scan root, prefixed by the root's label
	Bytes int64    `json:"bytes"`
	Items []string `json:"items"` // ids of the test items found and counted
	Parts []string `json:"parts"` // for each item, the part matched and its fraction
	// Noted are items found in an agent CLI's own state (its session
	// transcript) that ptb's raw trace shows the agent displayed: reported,
	// not counted.
	Noted []string `json:"noted,omitempty"`
	// Decoded names the decoded streams in which test n-grams matched
	// (e.g. "workspace/a.tgz > gzip > tar:x.txt > base64 run 1").
	Decoded []string `json:"decoded,omitempty"`
}

// ScanResult is the contamination scan's result over all roots.
type ScanResult struct {
	Task       string
	Files      int
	Bytes      int64
	Hits       []FileHits // files with at least one item, by path
	Unreadable []string   // files (or parts of them) that could not be read or decoded
	Exempt     []string   // files ptb wrote, unchanged since (not scanned)
	Notes      []string   // how files were read where it matters (eval samples)
	ItemsHit   int        // distinct items counted
	Measurable int
}

// ScanRoot is a directory tree to scan. Every file in it is read, whatever
// its name or directory, except Exempt ones.
type ScanRoot struct {
	Label string // shown before relative paths, e.g. "workspace"
	Dir   string
	// CLIState marks a HOME: test items in the agent CLIs' own state there
	// (session transcripts) are noted, not counted, when ptb's raw trace
	// shows the agent displayed them (ScanOptions.Displayed).
	CLIState bool
	// Exempt are files ptb wrote itself, by slash path relative to Dir,
	// with the sha256 (hex) ptb recorded: skipped while the hash matches.
	Exempt map[string]string
}

// ScanOptions tune Scan.
type ScanOptions struct {
	Limits ScanLimits // zero: DefaultScanLimits
	// Displayed are the ids of the test items ptb's raw trace of the agent
	// shows: their copies in CLI state are transcripts, not data.
	Displayed map[string]bool
}

type scanFile struct {
	root ScanRoot
	path string
	rel  string // relative to the root
	size int64
	cli  bool // in an agent CLI's own state
	// parts: how many cores tokenise the file at once when it is plain
	// (splitRaw); 1 unless it alone is more than a core's share of the
	// scan, when splitting it keeps cores busy that would otherwise idle.
	parts int
}

type fileKey struct{ dev, ino uint64 }

// Scan walks roots and matches every file against ix with GOMAXPROCS
// workers (ScanWith with default options).
func Scan(ctx context.Context, ix *Index, roots []ScanRoot) (*ScanResult, error) {
	return ScanWith(ctx, ix, roots, ScanOptions{})
}

// ScanWith walks roots and matches every regular file against ix. Files are
// classified by content: compressed streams, archives, parquet and base64
// runs are decoded (nested, within o.Limits); everything else is read as
// raw bytes. Symbolic links are not followed (what they point to inside a
// root is scanned where it lies); a file reached through several hard links
// is read once. Directories that cannot be read are reported in Unreadable.
func ScanWith(ctx context.Context, ix *Index, roots []ScanRoot, o ScanOptions) (*ScanResult, error) {
	lim := o.Limits
	if lim == (ScanLimits{}) {
		lim = DefaultScanLimits
	}
	res := &ScanResult{Task: ix.Task, Measurable: ix.Measurable}
	var files []scanFile
	seen := map[fileKey]bool{}
	for _, r := range roots {
		err := filepath.WalkDir(r.Dir, func(p string, d fs.DirEntry, err error) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, _ := filepath.Rel(r.Dir, p)
			rel = filepath.ToSlash(rel)
			if err != nil {
				if p == r.Dir && errors.Is(err, fs.ErrNotExist) {
					return nil // an absent root has nothing to scan
				}
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", r.Label, rel, err))
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil // directories are walked; links, FIFOs, sockets, devices hold nothing to read
			}
			info, err := d.Info()
			if err != nil {
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", r.Label, rel, err))
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				k := fileKey{uint64(st.Dev), st.Ino}
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			if want, ok := r.Exempt[rel]; ok {
				if got, err := hashAgentFile(p); err == nil && got == want {
					res.Exempt = append(res.Exempt, r.Label+"/"+rel)
					return nil
				}
			}
			files = append(files, scanFile{root: r, path: p, rel: rel, size: info.Size(), cli: r.CLIState && isCLIState(rel)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", r.Dir, err)
		}
	}
	slices.SortFunc(files, func(a, b scanFile) int { return cmp.Compare(b.size, a.size) }) // big first: better balance
	var all int64
	for _, f := range files {
		all += f.size
	}
	procs := runtime.GOMAXPROCS(0)
	for i, f := range files {
		files[i].parts = 1
		if f.size*int64(procs) > all {
			files[i].parts = splitParts(f.size, procs)
		}
	}
	var mu sync.Mutex
	ch := make(chan scanFile)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := ix.newMatcher()
			for f := range ch {
				if ctx.Err() != nil {
					continue
				}
				name := f.root.Label + "/" + f.rel
				dec, err := scanFileAt(ctx, m, lim, f.path, name, f.parts)
				hits := m.finish()
				mu.Lock()
				res.Files++
				res.Bytes += f.size
				if err != nil {
					res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s: %v", name, err))
				}
				if dec != nil {
					res.Unreadable = append(res.Unreadable, dec.issues...)
					if dec.note != "" {
						res.Notes = append(res.Notes, dec.note)
					}
				}
				if len(hits) > 0 {
					fh := FileHits{Path: name, Bytes: f.size}
					if dec != nil {
						fh.Decoded = dec.layerList()
					}
					for _, h := range hits {
						id := ix.ids[h.item]
						if f.cli && o.Displayed[id] {
							fh.Noted = append(fh.Noted, id)
							continue
						}
						fh.Items = append(fh.Items, id)
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
	slices.SortFunc(res.Hits, func(a, b FileHits) int { return cmp.Compare(a.Path, b.Path) })
	slices.Sort(res.Unreadable)
	slices.Sort(res.Exempt)
	union := map[string]bool{}
	for _, h := range res.Hits {
		for _, id := range h.Items {
			union[id] = true
		}
	}
	res.ItemsHit = len(union)
	return res, nil
}

// scanFileAt opens one file the agent could have written (safeio: no link
// followed, no FIFO waited on, the type checked after opening) and decodes
// it into m; a plain file is tokenised in parts parts at once (splitRaw). A sparse file is read extent by extent (SEEK_DATA/SEEK_HOLE),
// never through its holes, and never past the bytes it occupies on disk.
func scanFileAt(ctx context.Context, m *matcher, lim ScanLimits, path, name string, parts int) (*fileDecode, error) {
	f, fi, err := safeio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := newFileDecode(ctx, m.ix, lim, safeio.ReadBound(fi))
	if fi.Size() <= maxSamplesFile && !safeio.Sparse(fi) && startsLikeSample(f) {
		rs := d.newRawScanner(m, 0, name)
		n, err := evalSamples(m.ix, io.NewSectionReader(f, 0, fi.Size()), func(line []byte) {
			rs.feed(line)
			rs.feed([]byte{'\n'})
		})
		rs.end()
		switch {
		case err == nil:
			d.note = fmt.Sprintf("%s: read as ptb eval samples; %d targets (the test answers the samples are scored against) left out", name, n)
			return d, ctx.Err()
		case !errors.Is(err, errNotSamples):
			return d, err
		}
	}
	if parts > 1 && !safeio.Sparse(fi) && d.splitRaw(ctx, m, f, fi.Size(), name, parts) {
		return d, ctx.Err()
	}
	src := source{r: &ctxReader{ctx: ctx, r: f}, ra: f, size: fi.Size(), where: name}
	if safeio.Sparse(fi) {
		src = source{r: &ctxReader{ctx: ctx, r: &extentReader{f: f, size: fi.Size(), left: safeio.ReadBound(fi)}}, where: name + " (sparse: data extents only)"}
	}
	d.decode(m, src, 0)
	return d, ctx.Err()
}

// maxSamplesFile bounds the files tried as ptb eval samples.
const maxSamplesFile = 256 << 20

// startsLikeSample reports whether f's first bytes open a JSON object, as
// each line of `ptb eval`'s samples does (evalSamples decides).
func startsLikeSample(f io.ReaderAt) bool {
	h := make([]byte, 64)
	n, _ := f.ReadAt(h, 0)
	return bytes.HasPrefix(bytes.TrimLeft(h[:n], " \t\r\n"), []byte(`{`))
}

// extentReader reads a sparse file's data extents back to back, skipping
// holes (their zeros would be skipped by the tokenizer anyway), and stops
// after left bytes: a file system without SEEK_DATA cannot make it read
// more than the file occupies.
type extentReader struct {
	f    *os.File
	size int64
	off  int64 // next offset to read
	end  int64 // end of the current data extent
	left int64
}

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

func (e *extentReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if e.off >= e.end {
		start, err := e.f.Seek(e.off, seekData)
		if err != nil || start >= e.size {
			return 0, io.EOF // ENXIO: no data after off
		}
		end, err := e.f.Seek(start, seekHole)
		if err != nil {
			return 0, err
		}
		e.off, e.end = start, end
	}
	n := int64(len(p))
	n = min(n, e.end-e.off, e.left)
	k, err := e.f.ReadAt(p[:n], e.off)
	e.off += int64(k)
	e.left -= int64(k)
	if errors.Is(err, io.EOF) && k > 0 {
		err = nil
	}
	return k, err
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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

// checkContamination runs the scan over roots for task. trace is ptb's raw
// trace of the agent ("" if none): the test items it shows are those the
// agent displayed, whose copies in its CLI's session state are noted.
func checkContamination(ctx context.Context, sets TestSets, task string, roots []ScanRoot, trace string) Finding {
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
	var ev []string
	displayed := map[string]bool{}
	if trace != "" {
		items, err := traceItems(ctx, ix, trace)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			ev = append(ev, fmt.Sprintf("trace %s not read (%v): test items in agent CLI state all count", trace, err))
		default:
			displayed = items
		}
	}
	res, err := ScanWith(ctx, ix, live, ScanOptions{Displayed: displayed})
	if err != nil {
		return unverified(check, KindContamination, err.Error())
	}
	ev = append([]string{fmt.Sprintf("scanned %d files, %d bytes against %s (%d items, %d measurable, %d n-grams)", res.Files, res.Bytes, ts.Source, len(ts.Items), ix.Measurable, ix.Grams)}, ev...)
	if len(res.Exempt) > 0 {
		ev = append(ev, fmt.Sprintf("not scanned: %d files ptb wrote, unchanged (%s)", len(res.Exempt), strings.Join(res.Exempt, ", ")))
	}
	for _, h := range res.Hits {
		if len(h.Items) > 0 {
			ev = append(ev, fmt.Sprintf("%s: %d test items (%.1f%% of measurable): %s%s", h.Path, len(h.Items), 100*float64(len(h.Items))/float64(ix.Measurable), firstIDs(h.Items), decodedNote(h.Decoded)))
		}
		if len(h.Noted) > 0 {
			ev = append(ev, fmt.Sprintf("note (agent CLI state, items the trace shows the agent displayed; not counted): %s: %d test items: %s", h.Path, len(h.Noted), firstIDs(h.Noted)))
		}
	}
	slices.Sort(res.Notes)
	for _, n := range res.Notes {
		ev = append(ev, "note: "+n)
	}
	for _, u := range res.Unreadable {
		ev = append(ev, "unverified: "+u)
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

func firstIDs(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + fmt.Sprintf(" and %d more", len(ids)-5)
	}
	return strings.Join(ids, ", ")
}

func decodedNote(ds []string) string {
	if len(ds) == 0 {
		return ""
	}
	if len(ds) > 3 {
		ds = append(ds[:3:3], fmt.Sprintf("%d more", len(ds)-3))
	}
	return " (decoded: " + strings.Join(ds, "; ") + ")"
}

// traceItems returns the ids of the test items in ptb's raw trace.
func traceItems(ctx context.Context, ix *Index, path string) (map[string]bool, error) {
	if _, err := os.Lstat(path); err != nil {
		return nil, err
	}
	m := ix.newMatcher()
	// Parts of the trace that could not be decoded only leave items out
	// of the set: their copies in CLI state then count (fails closed).
	_, err := scanFileAt(ctx, m, DefaultScanLimits, path, path, 1)
	hits := m.finish()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range hits {
		out[ix.ids[h.item]] = true
	}
	return out, nil
}

// exemptProtected marks the files ptb wrote into the workspace at prepare
// (evaluate.py, the templates), whose hashes protected.json records, as
// exempt from the workspace root's scan while they are unchanged.
func exemptProtected(roots []ScanRoot, manifest string) []ScanRoot {
	if manifest == "" {
		return roots
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		return roots
	}
	var m ProtectedManifest
	if json.Unmarshal(b, &m) != nil || len(m.Files) == 0 {
		return roots
	}
	out := slices.Clone(roots)
	for i, r := range out {
		if r.Label == "workspace" {
			out[i].Exempt = m.Files
		}
	}
	return out
}
