package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// decodeParquet reads every row of a parquet file (the format of most hub
// datasets, e.g. openai/gsm8k and openai/openai_humaneval) as a JSON object
// keyed by column name. Byte-array columns with a string logical type come
// out as strings.
func decodeParquet(b []byte) ([]json.RawMessage, error) {
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	out := make([]json.RawMessage, 0, f.NumRows())
	for {
		row := map[string]any{}
		if err := r.Read(&row); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("parquet row %d: %w", len(out), err)
		}
		j, err := json.Marshal(row)
		if err != nil {
			return nil, fmt.Errorf("parquet row %d: %w", len(out), err)
		}
		out = append(out, j)
	}
}
