package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ptb-dev/ptb/internal/eval/task"
)

// maxSampleLine bounds one line of an evaluation samples file.
const maxSampleLine = 16 << 20

// errNotSamples: the file is not entirely `ptb eval` samples.
var errNotSamples = errors.New("not ptb eval samples")

// evalSamples reads a file that starts like `ptb eval`'s samples.jsonl (an
// `evaluate` output): when every line is a sample record (task.Scored, no
// other field) whose target, if any, is exactly a part of the test item the
// sample's id names, the file is scanned without its targets. A target is
// the test answer by design (BFCL's ground-truth call), so the evaluation
// output an honest run leaves would otherwise match; everything else in
// the file (completions, ...) is scanned. Any other file, and any line that
// does not fit, returns errNotSamples and the caller scans the file whole.
func evalSamples(ix *Index, r io.Reader, scan func(line []byte)) (targets int, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var lines [][]byte
	for n := 1; ; n++ {
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			return 0, errNotSamples // long lines: not worth the special case
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			dec := json.NewDecoder(bytes.NewReader(t))
			dec.DisallowUnknownFields()
			var sc task.Scored
			if dec.Decode(&sc) != nil || dec.More() || sc.ID == "" {
				return 0, errNotSamples
			}
			if sc.Target != "" {
				if !slices.Contains(ix.texts[sc.ID], sc.Target) {
					return 0, errNotSamples
				}
				targets++
				sc.Target = ""
			}
			b, err := json.Marshal(sc)
			if err != nil {
				return 0, fmt.Errorf("line %d: %w", n, err)
			}
			lines = append(lines, b)
			if len(lines) > 1<<20 {
				return 0, errNotSamples
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	if targets == 0 {
		return 0, errNotSamples // nothing to leave out: scan it as it is
	}
	for _, l := range lines {
		scan(l)
	}
	return targets, nil
}
