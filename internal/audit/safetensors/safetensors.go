// Package safetensors reads Hugging Face safetensors checkpoints (one file
// or shards listed in model.safetensors.index.json) tensor by tensor,
// without loading a whole file, and writes small ones for tests.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data; offsets are relative to the end of the header.
package safetensors

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// MaxHeader bounds the JSON header size (the format's own limit is 100 MB).
const MaxHeader = 100 << 20

// Tensor locates one tensor's data in a file.
type Tensor struct {
	Name   string
	DType  string // F32, F16, BF16, F64, I64, ...
	Shape  []int64
	File   string // absolute path of the file holding it
	Offset int64  // absolute byte offset of the data in File
	Size   int64  // bytes
}

// Elems returns the number of elements.
func (t Tensor) Elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// DTypeSize returns the size in bytes of one element of dtype, or 0 if unknown.
func DTypeSize(dtype string) int {
	switch dtype {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2":
		return 1
	}
	return 0
}

// ErrNoWeights is returned by OpenModel when a directory holds no safetensors file.
var ErrNoWeights = errors.New("no safetensors weights")

// ErrSparse is returned for a weights file with holes (a sparse file).
var ErrSparse = errors.New("sparse file refused")

// ErrOutside is returned by OpenModelIn for a file that resolves outside
// the allowed root.
var ErrOutside = errors.New("resolves outside the allowed directory")

// MaxIndex bounds model.safetensors.index.json.
const MaxIndex = 64 << 20

type headerEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// ReadHeader parses the header of the safetensors file at path and returns
// its tensors sorted by offset. It checks that offsets lie inside the file and
// agree with dtype and shape.
//
// The file is opened with safeio.Open: a symlink, FIFO or device is refused
// without blocking. A sparse file (apparent size beyond its allocated
// blocks) is refused with ErrSparse: real checkpoints have no holes, and
// reading the holes of a planted one would take as long as its apparent
// size says.
func ReadHeader(path string) ([]Tensor, error) {
	f, st, err := safeio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if safeio.Sparse(st) {
		return nil, fmt.Errorf("%s: %w: %d bytes apparent, %d allocated", path, ErrSparse, st.Size(), safeio.Allocated(st))
	}
	var lenb [8]byte
	if _, err := io.ReadFull(f, lenb[:]); err != nil {
		return nil, fmt.Errorf("%s: byte 0: header length: %w (a safetensors file starts with an 8-byte length)", path, err)
	}
	n := binary.LittleEndian.Uint64(lenb[:])
	if n > MaxHeader || int64(n)+8 > st.Size() {
		return nil, fmt.Errorf("%s: byte 0: header length %d out of range (file of %d bytes, at most %d)", path, n, st.Size(), MaxHeader)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, fmt.Errorf("%s: byte 8: header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, jsonpos.Error(path+": header", hb, 8, err)
	}
	base := 8 + int64(n)
	abs, _ := filepath.Abs(path)
	var ts []Tensor
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: header: tensor %q: %w", path, name, err)
		}
		if err := checkShape(e.Shape); err != nil {
			return nil, fmt.Errorf("%s: header: tensor %q: %w", path, name, err)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || base+e.Offsets[1] > st.Size() {
			return nil, fmt.Errorf("%s: header: tensor %q: data_offsets %v: want [begin, end] with 0 <= begin <= end <= %d (the data's size)", path, name, e.Offsets, st.Size()-base)
		}
		t := Tensor{Name: name, DType: e.DType, Shape: e.Shape, File: abs, Offset: base + e.Offsets[0], Size: e.Offsets[1] - e.Offsets[0]}
		if sz := DTypeSize(e.DType); sz > 0 && t.Elems()*int64(sz) != t.Size {
			return nil, fmt.Errorf("%s: header: tensor %q: data_offsets %v hold %d bytes, %s%v needs %d", path, name, e.Offsets, t.Size, e.DType, e.Shape, t.Elems()*int64(sz))
		}
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b Tensor) int { return cmp.Compare(a.Offset, b.Offset) })
	return ts, nil
}

// maxElems bounds a tensor's element count so that sizes never overflow.
const maxElems = 1 << 56

// checkShape refuses negative dimensions and element counts that would
// overflow a byte size.
func checkShape(shape []int64) error {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape %v: negative dimension", shape)
		}
		if d > 0 && n > maxElems/d {
			return fmt.Errorf("shape %v: more than 2^56 elements", shape)
		}
		n *= d
	}
	return nil
}

// Model is a checkpoint directory's tensors.
type Model struct {
	Dir     string
	Files   []string // absolute paths, in read order
	Tensors map[string]Tensor
	Names   []string // sorted by (file, offset): the order that reads sequentially
}

// OpenModel finds the weights in dir: the shards named by
// model.safetensors.index.json if present, else every *.safetensors file
// except PEFT adapters (adapter_model*.safetensors).
// It returns an error wrapping ErrNoWeights when there are none. No link is
// followed: use OpenModelIn for a Hugging Face cache snapshot, whose files
// are links into its blobs.
func OpenModel(dir string) (*Model, error) {
	return OpenModelIn(dir, "")
}

// OpenModelIn is OpenModel for a directory whose files may be symlinks
// (a hub cache snapshot): each file's link is resolved and must stay inside
// root, else the error wraps ErrOutside. root "" follows no link at all.
func OpenModelIn(dir, root string) (*Model, error) {
	resolve := func(p string) (string, error) { return p, nil }
	if root != "" {
		rr, err := filepath.EvalSymlinks(root)
		if err != nil {
			return nil, err
		}
		resolve = func(p string) (string, error) {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", err
			}
			if real != rr && !strings.HasPrefix(real, rr+string(filepath.Separator)) {
				return "", fmt.Errorf("%s: %w %s (-> %s)", p, ErrOutside, root, real)
			}
			return real, nil
		}
	}
	var files []string
	idx := filepath.Join(dir, "model.safetensors.index.json")
	ridx, err := resolve(idx)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if b, err := safeio.ReadFile(ridx, MaxIndex); err == nil {
		var ix struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &ix); err != nil {
			return nil, fmt.Errorf("%s: %w", idx, err)
		}
		seen := map[string]bool{}
		for _, f := range ix.WeightMap {
			if strings.Contains(f, "/") || strings.Contains(f, `\`) || f == ".." {
				return nil, fmt.Errorf("%s: shard %q outside the directory", idx, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else {
		m, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			if !strings.HasPrefix(filepath.Base(f), "adapter_model") {
				files = append(files, f)
			}
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoWeights)
	}
	m := &Model{Dir: dir, Tensors: map[string]Tensor{}}
	for _, f := range files {
		rf, err := resolve(f)
		if err != nil {
			return nil, err
		}
		ts, err := ReadHeader(rf)
		if err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(rf)
		m.Files = append(m.Files, abs)
		for _, t := range ts {
			if _, dup := m.Tensors[t.Name]; dup {
				return nil, fmt.Errorf("%s: tensor %s in two shards", dir, t.Name)
			}
			m.Tensors[t.Name] = t
			m.Names = append(m.Names, t.Name)
		}
	}
	return m, nil
}

// Params returns the total number of elements.
func (m *Model) Params() int64 {
	var n int64
	for _, t := range m.Tensors {
		n += t.Elems()
	}
	return n
}

// Bytes returns the total size of the tensor data.
func (m *Model) Bytes() int64 {
	var n int64
	for _, t := range m.Tensors {
		n += t.Size
	}
	return n
}

// Decode converts src, raw little-endian elements of dtype, to float32 in
// dst and returns the number converted (min of both lengths). It returns an
// error for a dtype it cannot convert.
func Decode(dtype string, src []byte, dst []float32) (int, error) {
	switch dtype {
	case "BF16":
		n := min(len(src)/2, len(dst))
		if nativeLE && n > 0 {
			u := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(src))), n)
			d := dst[:n]
			for i, x := range u {
				d[i] = math.Float32frombits(uint32(x) << 16)
			}
			return n, nil
		}
		for i := 0; i < n; i++ {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
		return n, nil
	case "F16":
		n := min(len(src)/2, len(dst))
		for i := 0; i < n; i++ {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return n, nil
	case "F32":
		n := min(len(src)/4, len(dst))
		for i := 0; i < n; i++ {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
		return n, nil
	case "F64":
		n := min(len(src)/8, len(dst))
		for i := 0; i < n; i++ {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
		return n, nil
	}
	return 0, fmt.Errorf("dtype %s: not a float type", dtype)
}

// F16ToF32 converts an IEEE half to float32.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(frac) / 1024 / 16384
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// F32ToF16 converts float32 to IEEE half (round to nearest even; overflow to Inf).
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	frac := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000:
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		frac |= 0x800000
		shift := uint32(14 - exp)
		half := uint32(1) << (shift - 1)
		v := frac >> shift
		if r := frac & (1<<shift - 1); r > half || (r == half && v&1 == 1) {
			v++
		}
		return sign | uint16(v)
	}
	v := uint32(exp)<<10 | frac>>13
	if r := frac & 0x1fff; r > 0x1000 || (r == 0x1000 && v&1 == 1) {
		v++
	}
	return sign | uint16(v)
}

// F32ToBF16 converts float32 to bfloat16 (round to nearest even).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
