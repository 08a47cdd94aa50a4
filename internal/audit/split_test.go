package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
)

// splitIndex is the GSM8K test index with, for every fifth item, its
// question as a code part too, so both tokenizers run.
func splitIndex(t *testing.T) (*Index, []string) {
	t.Helper()
	data := sharedDatasets(t)
	ts, err := TaskTestSets{Src: dataset.Dir(data)}.TestSet(context.Background(), "gsm8k")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	sub := &TestSet{Task: "gsm8k"}
	for i, it := range ts.Items[:400] {
		it.Parts = slices.Clone(it.Parts)
		if i%5 == 0 {
			it.Parts = append(it.Parts, TestPart{Name: "code", Text: it.Parts[0].Text, Code: true})
		}
		sub.Items = append(sub.Items, it)
		for _, p := range it.Parts {
			texts = append(texts, p.Text)
		}
	}
	ix, err := NewIndex(sub)
	if err != nil {
		t.Fatal(err)
	}
	return ix, texts
}

// splitCorpus mixes test texts as they are, JSON-escaped, \u-escaped,
// UTF-16LE, base64'd (on lines of their own and glued to words), with
// noise: escapes next to spaces, NUL bytes, long runs without a space and
// long runs of spaces without a token (so a part's read past its cut
// crosses whole parts).
func splitCorpus(r *rand.Rand, texts []string, size int) []byte {
	var b bytes.Buffer
	for b.Len() < size {
		s := texts[r.Intn(len(texts))]
		switch r.Intn(10) {
		case 0:
			b.WriteString(s)
		case 1:
			j, _ := json.Marshal(s)
			b.Write(j)
		case 2:
			for _, c := range []byte(s) {
				if r.Intn(4) == 0 {
					fmt.Fprintf(&b, `\u%04x`, c)
				} else {
					b.WriteByte(c)
				}
			}
		case 3:
			for _, c := range []byte(s) {
				b.WriteByte(c)
				b.WriteByte(0)
			}
		case 4:
			b.WriteString("\n" + base64.StdEncoding.EncodeToString([]byte(s)) + "\n")
		case 5:
			b.WriteString(" x" + base64.URLEncoding.EncodeToString([]byte(s+" "+s)) + " ")
		case 6:
			for range r.Intn(40) {
				b.WriteString([]string{`\ `, `\u00 `, `\u004`, `\\ `, "\x00 ", `\n `, `\" `, "_ ", "( "}[r.Intn(9)])
			}
		case 7:
			b.Write(bytes.Repeat([]byte("\xc3\xa9 "), r.Intn(20000))) // no token, many spaces
		case 8:
			b.Write(bytes.Repeat([]byte("ab"), r.Intn(3000))) // one long token
		default:
			n := r.Intn(300)
			for range n {
				b.WriteByte(byte(r.Intn(256)))
			}
		}
		b.WriteByte(" \n\t"[r.Intn(3)])
	}
	return b.Bytes()
}

// scanOnce scans p as one file, in one pass (parts 0) or split: the
// n-grams matched, the items hit, the decoded layers that matched and the
// issues.
func scanOnce(t *testing.T, ix *Index, p []byte, parts int) ([]int32, []hit, []string, []string) {
	t.Helper()
	ctx := context.Background()
	d := newFileDecode(ctx, ix, DefaultScanLimits, int64(len(p)))
	m := ix.newMatcher()
	ra := bytes.NewReader(p)
	if parts == 0 {
		d.decode(m, source{r: bytes.NewReader(p), ra: ra, size: int64(len(p)), where: "f"}, 0)
	} else if !d.splitRaw(ctx, m, ra, int64(len(p)), "f", parts) {
		t.Fatalf("splitRaw refused plain text")
	}
	m.docBreak()
	grams := slices.Clone(m.touched)
	slices.Sort(grams)
	return grams, m.finish(), d.layerList(), slices.Sorted(slices.Values(d.issues))
}

func TestSplitScanMatchesOnePass(t *testing.T) {
	ix, texts := splitIndex(t)
	for seed := int64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewSource(seed))
		p := splitCorpus(r, texts, 64<<10+r.Intn(512<<10))
		wantG, wantH, wantL, wantI := scanOnce(t, ix, p, 0)
		if len(wantG) == 0 || len(wantL) == 0 {
			t.Fatalf("seed %d: corpus matched %d n-grams, %d decoded layers: the test needs both", seed, len(wantG), len(wantL))
		}
		for _, parts := range []int{2, 3, 5, 9, 40} {
			gotG, gotH, gotL, gotI := scanOnce(t, ix, p, parts)
			if !slices.Equal(gotG, wantG) {
				t.Errorf("seed %d, %d parts: %d n-grams matched, one pass %d", seed, parts, len(gotG), len(wantG))
			}
			if !slices.Equal(gotH, wantH) || !slices.Equal(gotL, wantL) || !slices.Equal(gotI, wantI) {
				t.Errorf("seed %d, %d parts:\n got hits %v layers %v issues %v\nwant hits %v layers %v issues %v", seed, parts, gotH, gotL, gotI, wantH, wantL, wantI)
			}
		}
	}
}

// TestSplitCutsAfterSpaces: the cuts are increasing, inside the file, each
// just after a space; a file without a space is not split.
func TestSplitCutsAfterSpaces(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = "ab \x00\\"[r.Intn(5)]
	}
	for _, parts := range []int{2, 3, 8, 100} {
		cuts := spaceCuts(bytes.NewReader(p), int64(len(p)), parts)
		if len(cuts) != parts-1 {
			t.Errorf("%d parts: %d cuts, want %d", parts, len(cuts), parts-1)
		}
		for i, c := range cuts {
			if c <= 0 || c >= int64(len(p)) || p[c-1] != ' ' || i > 0 && c <= cuts[i-1] {
				t.Errorf("%d parts: cut %d at %d: not increasing, inside and after a space", parts, i, c)
			}
		}
	}
	if cuts := spaceCuts(bytes.NewReader(bytes.Repeat([]byte("a"), 1<<20)), 1<<20, 4); len(cuts) != 0 {
		t.Errorf("no space: cuts %v, want none", cuts)
	}
}

// TestSplitScanFindings: ScanWith on a file large enough to be split
// reports what it reports on the same bytes in files too small to be.
func TestSplitScanFindings(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 40 MB")
	}
	ix, texts := splitIndex(t)
	r := rand.New(rand.NewSource(3))
	body := splitCorpus(r, texts, 256<<10)
	big := t.TempDir()
	var whole []byte
	for len(whole) < 2*splitMin+1000 {
		whole = append(whole, bytes.Repeat([]byte("filler words go here "), 1<<14)...)
		whole = append(whole, body...)
	}
	if err := os.WriteFile(filepath.Join(big, "f"), whole, 0o644); err != nil {
		t.Fatal(err)
	}
	if splitParts(int64(len(whole)), 2) < 2 {
		t.Fatalf("%d bytes not split", len(whole))
	}
	res, err := Scan(context.Background(), ix, []ScanRoot{{Label: "w", Dir: big}})
	if err != nil {
		t.Fatal(err)
	}
	small := t.TempDir()
	if err := os.WriteFile(filepath.Join(small, "f"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := Scan(context.Background(), ix, []ScanRoot{{Label: "w", Dir: small}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || len(want.Hits) != 1 || !slices.Equal(res.Hits[0].Items, want.Hits[0].Items) || len(res.Unreadable) != 0 {
		t.Fatalf("split file: hits %+v unreadable %v\nwant hits %+v", res.Hits, res.Unreadable, want.Hits)
	}
}

// TestSplitPartsGramSets: the parts together emit exactly the n-grams (all
// of them, indexed or not) a single pass emits, in text and code mode: none
// lost at a cut, none made up from a token cut short.
func TestSplitPartsGramSets(t *testing.T) {
	_, texts := splitIndex(t)
	ctx := context.Background()
	for seed := int64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewSource(seed))
		p := splitCorpus(r, texts, 16<<10+r.Intn(256<<10))
		for _, code := range []bool{false, true} {
			want := map[uint64]bool{}
			one := newTokenizer(code, emitFunc(func(h uint64) { want[h] = true }))
			one.Feed(p)
			one.reset()
			for _, parts := range []int{2, 4, 7, 31} {
				got := map[uint64]bool{}
				bounds := append(append([]int64{0}, spaceCuts(bytes.NewReader(p), int64(len(p)), parts)...), int64(len(p)))
				for k := 0; k+1 < len(bounds); k++ {
					fd := &feeder{}
					tk := newTokenizer(code, emitFunc(func(h uint64) { got[h] = true }))
					if code {
						fd.code = tk
					} else {
						fd.text = tk
					}
					if err := scanPart(ctx, fd, fd, bytes.NewReader(p), bounds[k], bounds[k+1], int64(len(p))); err != nil {
						t.Fatal(err)
					}
					fd.reset()
				}
				lost, extra := 0, 0
				for h := range want {
					if !got[h] {
						lost++
					}
				}
				for h := range got {
					if !want[h] {
						extra++
					}
				}
				if lost+extra > 0 || len(want) == 0 {
					t.Errorf("seed %d, code %v, %d parts: %d of %d n-grams lost, %d made up", seed, code, len(bounds)-1, lost, len(want), extra)
				}
			}
		}
	}
}

// TestSplitIssuesMatchOnePass: a file whose base64 runs hold gzip streams,
// whole (test text: a decoded layer that matches) and cut short (an
// issue naming the run), spread over every part, gives the same layers
// and issues, runs numbered as in one pass, split in any number of parts.
func TestSplitIssuesMatchOnePass(t *testing.T) {
	ix, texts := splitIndex(t)
	r := rand.New(rand.NewSource(7))
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	var b bytes.Buffer
	for i := 0; b.Len() < 256<<10; i++ {
		b.WriteString(texts[r.Intn(len(texts))] + " ")
		switch i % 3 {
		case 0:
			z := gz(texts[r.Intn(len(texts))])
			b.WriteString(base64.StdEncoding.EncodeToString(z) + " ")
		case 1:
			z := gz(strings.Repeat(texts[r.Intn(len(texts))]+" ", 4))
			b.WriteString(base64.StdEncoding.EncodeToString(z[:len(z)/2]) + "\n")
		}
	}
	p := b.Bytes()
	_, wantH, wantL, wantI := scanOnce(t, ix, p, 0)
	if len(wantL) < 10 || len(wantI) == 0 || !strings.Contains(wantI[len(wantI)-1], "base64 run") {
		t.Fatalf("one pass: %d layers, issues %q: the test needs both", len(wantL), wantI)
	}
	for _, parts := range []int{2, 3, 5, 9} {
		_, gotH, gotL, gotI := scanOnce(t, ix, p, parts)
		if !slices.Equal(gotH, wantH) || !slices.Equal(gotL, wantL) || !slices.Equal(gotI, wantI) {
			t.Errorf("%d parts:\n got layers %q issues %q\nwant layers %q issues %q", parts, gotL, gotI, wantL, wantI)
		}
	}
}
