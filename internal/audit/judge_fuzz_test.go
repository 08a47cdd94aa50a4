package audit

import (
	"strings"
	"testing"
)

// FuzzJudgement feeds arbitrary final messages of the judge to vote: no
// panic; a vote only when the last "NAME:" line says exactly (normalised)
// one of the two judgements; otherwise a message naming the judgement and,
// when there was one, the line. Seeds: testdata/fuzz/FuzzJudgement.
func FuzzJudgement(f *testing.F) {
	f.Add([]byte("Done.\ncontamination_judgement.txt: no contamination detected\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const clean, detected = "no contamination detected", "contamination detected"
		v, msg := vote(string(data), ContaminationFile, clean, detected)
		switch {
		case v != 0 && msg != "":
			t.Fatalf("vote %d with message %q", v, msg)
		case v == 0 && !strings.HasPrefix(msg, ContaminationFile+":"):
			t.Fatalf("no vote, and the message does not name the judgement: %q", msg)
		case v == 0 && strings.Contains(msg, "unexpected") && !strings.Contains(msg, ", line "):
			t.Fatalf("an unreadable judgement without its line: %q", msg)
		case v == 0:
			return
		}
		// A vote: the last line naming the file carries it.
		var last string
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(strings.Trim(strings.TrimSpace(l), "*`-> "))
			if len(l) >= len(ContaminationFile) && strings.EqualFold(l[:len(ContaminationFile)], ContaminationFile) {
				if rest := strings.TrimSpace(l[len(ContaminationFile):]); strings.HasPrefix(rest, ":") {
					last = rest
				}
			}
		}
		if !strings.Contains(strings.ToLower(last), map[int]string{-1: clean, 1: detected}[v]) {
			t.Fatalf("vote %d, but the last judgement line is %q", v, last)
		}
	})
}

func TestVoteNamesLine(t *testing.T) {
	const clean, detected = "no contamination detected", "contamination detected"
	v, msg := vote("ok\n\ncontamination_judgement.txt: maybe\n", ContaminationFile, clean, detected)
	if v != 0 || !strings.Contains(msg, `unexpected "maybe" in the judge's final message, line 3`) {
		t.Errorf("got %d %q", v, msg)
	}
}
