package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadHeader feeds arbitrary files to ReadHeader: it never panics, an
// error names the file and where in it (a byte offset or the tensor), and
// what it accepts is consistent (data inside the file, sizes that match
// dtype and shape, no negative dimension). Seeds: testdata/fuzz/FuzzReadHeader.
func FuzzReadHeader(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := Write(good, []WriteTensor{{Name: "a", DType: "F32", Shape: []int64{2, 2}, Values: []float32{1, 2, 3, 4}}, {Name: "b", DType: "BF16", Shape: []int64{3}, Values: []float32{1, 2, 3}}}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "model.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ts, err := ReadHeader(p)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, p) || !(strings.Contains(msg, "byte ") || strings.Contains(msg, "tensor ")) {
				t.Fatalf("error does not name the file and a place in it: %v", err)
			}
			return
		}
		var n uint64
		if len(data) >= 8 {
			n = binary.LittleEndian.Uint64(data)
		}
		for _, x := range ts {
			if x.Offset < 8+int64(n) || x.Size < 0 || x.Offset+x.Size > int64(len(data)) {
				t.Fatalf("tensor %q at [%d, +%d) outside the data of a %d-byte file", x.Name, x.Offset, x.Size, len(data))
			}
			for _, d := range x.Shape {
				if d < 0 {
					t.Fatalf("tensor %q: negative dimension accepted: %v", x.Name, x.Shape)
				}
			}
			if sz := DTypeSize(x.DType); sz > 0 && x.Elems()*int64(sz) != x.Size {
				t.Fatalf("tensor %q: %s%v in %d bytes", x.Name, x.DType, x.Shape, x.Size)
			}
		}
	})
}

// TestReadHeaderErrors: each malformed header is refused with the file and
// the place in it.
func TestReadHeaderErrors(t *testing.T) {
	hdr := func(j string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(j)))
		return append(append(b, j...), make([]byte, 64)...)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"short", []byte{1, 2}, "byte 0: header length"},
		{"length past the end", binary.LittleEndian.AppendUint64(nil, 1<<40), "byte 0: header length 1099511627776 out of range"},
		{"bad json", hdr("{\"a\": {\"dtype\": \"F32\",, }}"), "header: line 1, column 23 (byte 30): invalid character ','"},
		{"negative dims", hdr(`{"a": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}`), `tensor "a": shape [-2 -2]: negative dimension`},
		{"overflowing dims", hdr(`{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 0]}}`), "more than 2^56 elements"},
		{"offsets past the data", hdr(`{"a": {"dtype": "U8", "shape": [100], "data_offsets": [0, 100]}}`), `tensor "a": data_offsets [0 100]`},
		{"size mismatch", hdr(`{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}`), "hold 8 bytes, F32[3] needs 12"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "m.safetensors")
		os.WriteFile(p, c.data, 0o644)
		_, err := ReadHeader(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an error naming %s and containing %q", c.name, err, p, c.want)
		}
	}
}
