package cli

import (
	"errors"
	"strings"
	"testing"
)

// The names schedulers give the devices they assign: Slurm indices,
// HTCondor's CUDAn (-by-index) and GPU-xxxxxxxx (its default, a UUID
// prefix), the device plugin's full UUIDs.
func TestGPUIndices(t *testing.T) {
	smi := func() (string, error) {
		return "GPU 0: NVIDIA H200 (UUID: GPU-a0223334-1111-2222-3333-444455556666)\n" +
			"GPU 1: NVIDIA H200 (UUID: GPU-b1234567-1111-2222-3333-444455556666)\n", nil
	}
	for _, tc := range []struct{ in, want, err string }{
		{"0,1", "0,1", ""},
		{" 2 , 3 ", "2,3", ""},
		{"CUDA1,CUDA0", "1,0", ""},
		{"GPU-b1234567", "1", ""},
		{"GPU-a0223334-1111-2222-3333-444455556666", "0", ""},
		{"", "", ""},
		{"GPU-ffffffff", "", "no GPU"},
		{"gpu0", "", "not a GPU index"},
		{"-1", "", "not a GPU index"},
	} {
		got, err := gpuIndices(tc.in, smi)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("gpuIndices(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("gpuIndices(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	noSMI := func() (string, error) { return "", errors.New("not found") }
	if _, err := gpuIndices("GPU-a0223334", noSMI); err == nil || !strings.Contains(err.Error(), "nvidia-smi") {
		t.Errorf("a UUID without nvidia-smi: %v, want an error naming nvidia-smi", err)
	}
}
