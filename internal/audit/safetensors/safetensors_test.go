package safetensors

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	vals := []float32{0, 1, -2.5, 0.1, 65504, 1e-6, -0.0003}
	for _, dt := range []string{"F32", "F16", "BF16"} {
		t.Run(dt, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "model.safetensors")
			if err := Write(p, []WriteTensor{{Name: "w", DType: dt, Shape: []int64{7}, Values: vals}, {Name: "b", DType: dt, Shape: []int64{1}, Values: []float32{3}}}, nil); err != nil {
				t.Fatal(err)
			}
			m, err := OpenModel(filepath.Dir(p))
			if err != nil {
				t.Fatal(err)
			}
			tt := m.Tensors["w"]
			raw := make([]byte, tt.Size)
			f, _ := os.Open(tt.File)
			defer f.Close()
			f.ReadAt(raw, tt.Offset)
			got := make([]float32, 7)
			if n, err := Decode(dt, raw, got); err != nil || n != 7 {
				t.Fatalf("decode: %d %v", n, err)
			}
			tol := map[string]float64{"F32": 0, "F16": 1e-3, "BF16": 8e-3}[dt]
			for i, v := range vals {
				if d := math.Abs(float64(got[i] - v)); d > tol*math.Max(1, math.Abs(float64(v))) {
					t.Errorf("%s[%d] = %g, want %g", dt, i, got[i], v)
				}
			}
		})
	}
}

func TestBadHeaders(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"short":    {1, 2, 3},
		"huge":     {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"badjson":  append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, '{', 'x'),
		"overflow": append([]byte{58, 0, 0, 0, 0, 0, 0, 0}, []byte(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`+"  ")...),
	}
	for name, b := range cases {
		p := filepath.Join(dir, name+".safetensors")
		os.WriteFile(p, b, 0o644)
		if _, err := ReadHeader(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := OpenModel(t.TempDir()); err == nil {
		t.Error("empty dir: no error")
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, scale float32, rows int64) *Model {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		v := make([]float32, rows*4)
		for i := range v {
			v[i] = float32(i%7) - 3
		}
		v[0] *= scale
		if err := Write(filepath.Join(d, "model.safetensors"), []WriteTensor{{Name: "model.embed.weight", DType: "F32", Shape: []int64{rows, 4}, Values: v}}, nil); err != nil {
			t.Fatal(err)
		}
		m, err := OpenModel(d)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b, c := mk("a", 1, 8), mk("b", 1, 8), mk("c", 2, 10)
	ds, err := Compare(context.Background(), a, []*Model{b, c}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !ds[0].Identical || ds[0].RelDist != 0 {
		t.Errorf("a vs b: %+v", ds[0])
	}
	if ds[1].Identical || ds[1].RelDist == 0 || ds[1].MatchedElems != 32 || ds[1].Coverage != 1 {
		t.Errorf("a vs c (resized rows): %+v", ds[1])
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"model.layers.0.w":                "layers.0.w",
		"model.language_model.layers.0.w": "layers.0.w",
		"language_model.model.layers.0.w": "layers.0.w",
		"lm_head.weight":                  "lm_head.weight",
	} {
		if got := CanonicalName(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
