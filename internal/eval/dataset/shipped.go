package dataset

import (
	"context"
	"embed"
	"fmt"
	"io"
	"os"
)

// shippedFS holds the files ptb ships because the original vendors them
// (shipped/README.md).
//
//go:embed shipped/*.jsonl.gz
var shippedFS embed.FS

// Shipped is a Source that opens files ptb ships from the binary and
// everything else from Src.
type Shipped struct{ Src Source }

// Open implements Source.
func (s Shipped) Open(ctx context.Context, f File) (io.ReadCloser, string, error) {
	if f.Shipped == "" {
		if s.Src == nil {
			return nil, "", fmt.Errorf("open %s: not shipped with ptb: %w", f.Name(), os.ErrNotExist)
		}
		return s.Src.Open(ctx, f)
	}
	rc, err := shippedFS.Open("shipped/" + f.Shipped)
	if err != nil {
		return nil, "", fmt.Errorf("open shipped %s: %w", f.Shipped, err)
	}
	return rc, f.Shipped, nil
}

// ShippedSHA256 is the sha256 of each shipped file once decompressed: the
// digest of the file as published upstream (gsm8k_test: openai/grade-school-math
// grade_school_math/data/test.jsonl, the source of the hub's openai/gsm8k
// test split, 1,319 rows).
var ShippedSHA256 = map[string]string{
	"gsm8k_test.jsonl.gz": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
}
