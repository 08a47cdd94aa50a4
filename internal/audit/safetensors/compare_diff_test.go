package safetensors

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestCompareMatchesReference: the overlapped, fused comparison gives
// exactly (bit for bit) the distances of the one it replaced, for every
// pairing of dtypes, tensors longer than a chunk, a reference with a
// resized first dimension (vocabulary), and a tensor missing from one
// reference.
func TestCompareMatchesReference(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewSource(2))
	vals := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale)
		}
		return v
	}
	const cols = 512
	rows := chunkElems/cols*2 + 37 // more than two chunks
	write := func(name, dtype string, vocab int, drop bool) *Model {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		ts := []WriteTensor{
			{Name: "model.embed_tokens.weight", DType: dtype, Shape: []int64{int64(vocab), cols}, Values: vals(vocab*cols, 0.02)},
			{Name: "model.layers.0.w", DType: dtype, Shape: []int64{int64(rows), cols}, Values: vals(rows*cols, 0.02)},
			{Name: "model.norm.weight", DType: dtype, Shape: []int64{cols}, Values: vals(cols, 1)},
		}
		if drop {
			ts = ts[:2]
		}
		if err := Write(filepath.Join(d, "model.safetensors"), ts, nil); err != nil {
			t.Fatal(err)
		}
		m, err := OpenModel(d)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, mt := range []string{"BF16", "F16", "F32"} {
		model := write("m-"+mt, mt, 1000, false)
		var refs []*Model
		for i, rt := range []string{"BF16", "F16", "F32", "BF16"} {
			refs = append(refs, write(fmt.Sprintf("r%d-%s-%s", i, mt, rt), rt, 1000+i*7, i == 3))
		}
		want, err := compare(context.Background(), model, refs, 0.5, refCompareGroup, newRefChunkBufs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Compare(context.Background(), model, refs, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("model %s, ref %d: got %+v, want %+v", mt, i, got[i], want[i])
			}
		}
	}
}
