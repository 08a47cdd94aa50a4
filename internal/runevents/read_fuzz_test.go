package runevents

import (
	"bytes"
	"testing"
)

// Read never fails on bad input, counts lines in order, and never reports
// more lines than the input has.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"stage_started","stage":"solve"}` + "\n" + `{"type":"heartbeat","segment":2,"remaining_s":90}` + "\n"))
	f.Add([]byte(`{"type":"verdict","flags":["T"]}` + "\n" + `{"type":"hea`))
	f.Add([]byte("\n\n{}\nnot json\n\xff\xfe\n"))
	f.Add(bytes.Repeat([]byte("x"), MaxLine+10))
	f.Fuzz(func(t *testing.T, b []byte) {
		last := 0
		err := Read(bytes.NewReader(b), func(ev Event, line int, lineErr error) error {
			if line != last+1 {
				t.Fatalf("line %d after %d", line, last)
			}
			last = line
			return nil
		})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if max := bytes.Count(b, []byte{'\n'}) + 1; last > max {
			t.Fatalf("%d lines reported from input with at most %d", last, max)
		}
	})
}
