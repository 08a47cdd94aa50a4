package audit

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/ulikunitz/xz"
)

// Encoders for the red-team cases: each turns plain bytes into one of the
// forms an agent could hide a test set in.

// fullJSONL is the whole of rows as JSONL (question and answer per line).
func fullJSONL(rows []map[string]string) []byte {
	var b bytes.Buffer
	for _, r := range rows {
		j, _ := json.Marshal(map[string]string{"question": r["question"], "answer": r["answer"]})
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func encGzip(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encXZ(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encZstd(t testing.TB, p []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(p, nil)
}

// encBzip2 runs the bzip2 program (Go's standard library only decodes).
func encBzip2(t testing.TB, p []byte) []byte {
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(p)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2 (apt-get install bzip2): %v", err)
	}
	return out
}

// encBase64 wraps at 76 columns, as base64(1) does.
func encBase64(p []byte) []byte {
	s := base64.StdEncoding.EncodeToString(p)
	var b bytes.Buffer
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteByte('\n')
		s = s[76:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.Bytes()
}

func encZip(t testing.TB, files map[string][]byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for name, p := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encTar(t testing.TB, files map[string][]byte) []byte {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for name, p := range files {
		if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(p)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		w.Write(p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encUTF16 encodes p (UTF-8) as UTF-16 with a byte order mark.
func encUTF16(p []byte, big bool) []byte {
	u := utf16.Encode([]rune(string(p)))
	var b bytes.Buffer
	var order binary.ByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	binary.Write(&b, order, uint16(0xFEFF))
	binary.Write(&b, order, u)
	return b.Bytes()
}

// encUTF32LE encodes p as UTF-32 little-endian with a byte order mark.
func encUTF32LE(p []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(0xFEFF))
	for _, r := range string(p) {
		binary.Write(&b, binary.LittleEndian, uint32(r))
	}
	return b.Bytes()
}

// encParquet stores rows as a parquet file with question and answer columns.
func encParquet(t testing.TB, rows []map[string]string) []byte {
	type row struct {
		Question string `parquet:"question"`
		Answer   string `parquet:"answer"`
	}
	var rs []row
	for _, r := range rows {
		rs = append(rs, row{r["question"], r["answer"]})
	}
	var b bytes.Buffer
	if err := parquet.Write(&b, rs, parquet.Compression(&parquet.Zstd)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encArrowStream lays rows out as an Arrow IPC stream holds a string column,
// as Hugging Face datasets caches them: a schema message, then a record
// batch whose body is the value offsets followed by the UTF-8 values back to
// back. The flatbuffer metadata is reduced to opaque bytes of the right
// length: the scan reads the body, not the metadata.
func encArrowStream(rows []map[string]string) []byte {
	var b bytes.Buffer
	msg := func(meta []byte) {
		binary.Write(&b, binary.LittleEndian, uint32(0xFFFFFFFF))
		binary.Write(&b, binary.LittleEndian, uint32(len(meta)))
		b.Write(meta)
	}
	msg(bytes.Repeat([]byte{0x10}, 200))
	msg(bytes.Repeat([]byte{0x20}, 136))
	var off []byte
	var vals bytes.Buffer
	for _, r := range rows {
		off = binary.LittleEndian.AppendUint32(off, uint32(vals.Len()))
		vals.WriteString(r["question"])
		vals.WriteString(r["answer"])
	}
	off = binary.LittleEndian.AppendUint32(off, uint32(vals.Len()))
	b.Write(off)
	b.Write(vals.Bytes())
	return b.Bytes()
}

// randomText is n bytes of lower-case words that match nothing.
func randomText(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	var b bytes.Buffer
	for b.Len() < n {
		for i := 0; i < 3+r.Intn(8); i++ {
			b.WriteByte(byte('a' + r.Intn(26)))
		}
		b.WriteByte(" \n"[r.Intn(2)])
	}
	return b.Bytes()
}

// randomBytes is n bytes that are not text.
func randomBytes(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	p := make([]byte, n)
	r.Read(p)
	return p
}

// pythonPackage is a small made-up Python package as a tar.gz.
func pythonPackage(t testing.TB) []byte {
	files := map[string][]byte{}
	for i := 0; i < 20; i++ {
		var sb strings.Builder
		sb.WriteString("\"\"\"Utilities for batching training examples.\"\"\"\nimport math\n\n")
		for j := 0; j < 30; j++ {
			sb.WriteString("def chunk_" + string(rune('a'+j%26)) + "(items, size):\n    out = []\n    for k in range(0, len(items), size):\n        out.append(items[k:k + size])\n    return out\n\n")
		}
		files["pkg/module_"+string(rune('a'+i))+".py"] = []byte(sb.String())
	}
	return encGzip(t, encTar(t, files))
}

// gitCommit commits name=data in a new repository at dir, removes the file
// and, when pack is set, packs the objects: the data then lives only in
// .git/, zlib-compressed (loose) or inside a pack file.
func gitCommit(t testing.TB, dir, name string, data []byte, pack bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@b", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@b", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", name)
	run("commit", "-q", "-m", "data")
	run("rm", "-q", name)
	run("commit", "-q", "-m", "remove")
	if pack {
		run("gc", "-q", "--aggressive")
	}
}
