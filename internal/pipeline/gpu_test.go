package pipeline_test

import (
	"testing"

	"github.com/ptb-dev/ptb/internal/pipeline"
)

func TestParseGPUUUIDs(t *testing.T) {
	out := "0, GPU-1b2c3d4e-0000-1111-2222-333344445555\n1, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n\n"
	got := pipeline.ParseGPUUUIDs(out)
	if got["0"] != "GPU-1b2c3d4e-0000-1111-2222-333344445555" || got["1"] != "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}
