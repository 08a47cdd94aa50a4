// Package dataset fetches and decodes benchmark data: from a local directory
// laid out like shared/datasets, or from the Hugging Face hub at pinned
// revisions into a checksummed cache (HF_ENDPOINT and HF_TOKEN honoured).
// Records come back as raw JSON objects so that key order survives (BFCL's
// tool schemas depend on it).
package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File is one data file of a benchmark.
type File struct {
	Repo     string // hub dataset repo ("openai/gsm8k"); "" when not on the hub
	Revision string // pinned revision (commit) on the hub, or "main" where the original pins none
	Path     string // path inside the repo
	URL      string // direct download URL for files that are not on the hub
	SHA256   string // expected digest; "" = not pinned (recorded on first download)
	Local    string // path under a local data root laid out like shared/datasets
	Shipped  string // name of the copy embedded in ptb (shipped/), for files the original vendors
	Gated    bool   // needs HF_TOKEN (GPQA)
}

// Name is a short human name for f.
func (f File) Name() string {
	if f.Repo != "" {
		return f.Repo + "/" + f.Path
	}
	if f.URL != "" {
		return f.URL
	}
	if f.Shipped != "" {
		return "shipped/" + f.Shipped
	}
	return f.Local
}

// Source opens data files. Open returns the raw bytes of f and the file name
// whose extension says how to decode them (.jsonl, .jsonl.gz, .json, .csv,
// .parquet). It returns an error wrapping os.ErrNotExist when f is absent.
type Source interface {
	Open(ctx context.Context, f File) (rc io.ReadCloser, name string, err error)
}

// Dir is a Source over a local directory laid out like shared/datasets.
type Dir string

// Open implements Source.
func (d Dir) Open(ctx context.Context, f File) (io.ReadCloser, string, error) {
	if f.Local == "" {
		return nil, "", fmt.Errorf("open %s: no local path known: %w", f.Name(), os.ErrNotExist)
	}
	p := filepath.Join(string(d), f.Local)
	rc, err := os.Open(p)
	if err != nil {
		return nil, "", fmt.Errorf("open dataset file %s (set --data-dir to a directory laid out like shared/datasets, or leave it empty to use the hub cache): %w", p, err)
	}
	return rc, p, nil
}

// Records reads every record of f from src as raw JSON objects, in file order.
func Records(ctx context.Context, src Source, f File) ([]json.RawMessage, error) {
	return RecordsN(ctx, src, f, 0)
}

// RecordsN reads the first n records of f (all when n <= 0): JSON Lines and
// CSV are read no further than the nth record, parquet rows are decoded no
// further (a local parquet file is read in place, not into memory), so the
// cost follows n, not the size of the split. A JSON array is read whole.
func RecordsN(ctx context.Context, src Source, f File, n int) ([]json.RawMessage, error) {
	rc, name, err := src.Open(ctx, f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	recs, err := DecodeN(rc, name, n)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return recs, nil
}

// ReadAll reads f from src as bytes.
func ReadAll(ctx context.Context, src Source, f File) ([]byte, error) {
	rc, name, err := src.Open(ctx, f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// Decode decodes r by the extension of name into raw JSON records.
func Decode(r io.Reader, name string) ([]json.RawMessage, error) {
	return DecodeN(r, name, 0)
}

// DecodeN is Decode of the first n records only (all when n <= 0).
func DecodeN(r io.Reader, name string, n int) ([]json.RawMessage, error) {
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r, name = zr, strings.TrimSuffix(name, ".gz")
	}
	switch filepath.Ext(name) {
	case ".jsonl", ".json":
		return decodeJSONLines(r, n)
	case ".csv":
		return decodeCSV(r, n)
	case ".parquet":
		if f, ok := r.(*os.File); ok {
			st, err := f.Stat()
			if err != nil {
				return nil, err
			}
			return decodeParquet(f, st.Size(), n)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return decodeParquet(bytes.NewReader(b), int64(len(b)), n)
	}
	return nil, fmt.Errorf("unknown data format %q", filepath.Ext(name))
}

// decodeJSONLines reads JSON values one after another (JSON Lines, or a JSON
// array of objects), up to n records (n <= 0: all).
func decodeJSONLines(r io.Reader, n int) ([]json.RawMessage, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	dec := json.NewDecoder(br)
	var out []json.RawMessage
	for n <= 0 || len(out) < n {
		var m json.RawMessage
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(out)+1, err)
		}
		if len(out) == 0 && bytes.HasPrefix(bytes.TrimSpace(m), []byte("[")) {
			var arr []json.RawMessage
			if err := json.Unmarshal(m, &arr); err != nil {
				return nil, err
			}
			out = append(out, arr...)
			continue
		}
		out = append(out, m)
	}
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// decodeCSV turns rows into objects keyed by the header, values as strings
// in header order, up to n rows (n <= 0: all).
func decodeCSV(r io.Reader, n int) ([]json.RawMessage, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for n <= 0 || len(out) < n {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteByte('{')
		for i, h := range head {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(h)
			v := ""
			if i < len(row) {
				v = row[i]
			}
			vb, _ := json.Marshal(v)
			b.Write(k)
			b.WriteByte(':')
			b.Write(vb)
		}
		b.WriteByte('}')
		out = append(out, json.RawMessage(b.Bytes()))
	}
	return out, nil
}
