package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// decodeParquet reads the first n rows (n <= 0: all) of a parquet file
// (the format of most hub datasets, e.g. openai/gsm8k and
// openai/openai_humaneval) as JSON objects keyed by column name. Byte-array
// columns with a string logical type come out as strings.
func decodeParquet(ra io.ReaderAt, size int64, n int) ([]json.RawMessage, error) {
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	rows := f.NumRows()
	if n > 0 {
		rows = min(rows, int64(n))
	}
	out := make([]json.RawMessage, 0, rows)
	for n <= 0 || len(out) < n {
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
	return out, nil
}
