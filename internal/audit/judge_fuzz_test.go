package audit

import (
	"strings"
	"testing"
)

// FuzzJudgement feeds arbitrary judgement files to parseJudgement: no
// panic; a vote only for an exact (normalised) first line; otherwise a
// message naming the file and the line. Seeds: testdata/fuzz/FuzzJudgement.
func FuzzJudgement(f *testing.F) {
	f.Add([]byte("no contamination detected\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const clean, detected = "no contamination detected", "contamination detected"
		v, msg := parseJudgement(ContaminationFile, data, clean, detected)
		first := strings.ToLower(strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(data)), "\n", 2)[0]))
		first = strings.Trim(first, "\"'`. ")
		switch {
		case v == -1 && first != clean, v == 1 && first != detected:
			t.Fatalf("vote %d for first line %q", v, first)
		case v == 0 && (!strings.HasPrefix(msg, ContaminationFile) || !(strings.Contains(msg, " line ") || strings.Contains(msg, "empty"))):
			t.Fatalf("no vote, and the message does not name the file and line: %q", msg)
		case v != 0 && msg != "":
			t.Fatalf("vote %d with message %q", v, msg)
		}
	})
}

func TestParseJudgement(t *testing.T) {
	const clean, detected = "no contamination detected", "contamination detected"
	cases := []struct {
		in   string
		want int
		msg  string
	}{
		{"no contamination detected\n", -1, ""},
		{"\n\n  \"Contamination detected.\"  \nbecause ...", 1, ""},
		{"", 0, "contamination_judgement.txt: empty"},
		{"\n\nmaybe\n", 0, `contamination_judgement.txt line 3: unexpected "maybe"`},
		{"contamination detected, probably", 0, "line 1: unexpected"},
	}
	for _, c := range cases {
		v, msg := parseJudgement(ContaminationFile, []byte(c.in), clean, detected)
		if v != c.want || !strings.Contains(msg, c.msg) {
			t.Errorf("%q: got %d %q, want %d %q", c.in, v, msg, c.want, c.msg)
		}
	}
}
