package safetensors

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// WriteTensor is one tensor to write: float32 values stored as DType
// (F32, F16 or BF16).
type WriteTensor struct {
	Name   string
	DType  string
	Shape  []int64
	Values []float32
}

// Write writes tensors to path as a safetensors file, in name order.
func Write(path string, tensors []WriteTensor, metadata map[string]string) error {
	ts := append([]WriteTensor{}, tensors...)
	slices.SortFunc(ts, func(a, b WriteTensor) int { return cmp.Compare(a.Name, b.Name) })
	header := map[string]any{}
	if metadata != nil {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range ts {
		sz := DTypeSize(t.DType)
		if sz == 0 || t.DType == "F64" || t.DType[0] != 'F' && t.DType != "BF16" {
			return fmt.Errorf("write %s: dtype %s not supported", t.Name, t.DType)
		}
		n := int64(len(t.Values)) * int64(sz)
		header[t.Name] = headerEntry{DType: t.DType, Shape: t.Shape, Offsets: []int64{off, off + n}}
		off += n
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	binary.Write(w, binary.LittleEndian, uint64(len(hb)))
	w.Write(hb)
	var buf [4]byte
	for _, t := range ts {
		for _, v := range t.Values {
			switch t.DType {
			case "F32":
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
				w.Write(buf[:4])
			case "F16":
				binary.LittleEndian.PutUint16(buf[:], F32ToF16(v))
				w.Write(buf[:2])
			case "BF16":
				binary.LittleEndian.PutUint16(buf[:], F32ToBF16(v))
				w.Write(buf[:2])
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
