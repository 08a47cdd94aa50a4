package runevents

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type got struct {
	line int
	typ  Type
	seg  int
	err  string
}

func collect(t *testing.T, read func(fn func(Event, int, error) error) error) []got {
	t.Helper()
	var out []got
	err := read(func(ev Event, line int, lineErr error) error {
		g := got{line: line, typ: ev.Type, seg: ev.Segment}
		if lineErr != nil {
			g.err = lineErr.Error()
		}
		out = append(out, g)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRead(t *testing.T) {
	long := `{"type":"heartbeat","reason":"` + strings.Repeat("x", MaxLine) + `"}`
	tests := []struct {
		name string
		in   string
		want []got
	}{
		{"empty", "", nil},
		{"two", `{"type":"stage_started","stage":"solve"}` + "\n" + `{"type":"heartbeat","segment":2}` + "\n",
			[]got{{1, StageStarted, 0, ""}, {2, Heartbeat, 2, ""}}},
		{"no final newline", `{"type":"verdict"}`, []got{{1, Verdict, 0, ""}}},
		{"blank lines skipped", "\n  \n" + `{"type":"verdict"}` + "\n\n", []got{{1, Verdict, 0, ""}}},
		{"cut short by a crash", `{"type":"verdict"}` + "\n" + `{"type":"hea`, []got{{1, Verdict, 0, ""}, {2, "", 0, "line 2: unexpected end of JSON input"}}},
		{"over MaxLine skipped, stream goes on", long + "\n" + `{"type":"verdict"}` + "\n",
			[]got{{1, "", 0, ErrLineTooLong.Error()}, {2, Verdict, 0, ""}}},
		{"exactly MaxLine", `{"type":"heartbeat","reason":"` + strings.Repeat("y", MaxLine-len(`{"type":"heartbeat","reason":""}`)) + `"}` + "\n",
			[]got{{1, Heartbeat, 0, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := collect(t, func(fn func(Event, int, error) error) error { return Read(strings.NewReader(tt.in), fn) })
			if fmt.Sprint(g) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", g, tt.want)
			}
		})
	}
}

func TestReadStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Read(strings.NewReader("{}\n{}\n{}\n"), func(Event, int, error) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d events, want stop after 1", err, n)
	}
}

func TestWriterAppendsTypedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	left, code := 90.0, 0
	evs := []Event{
		{Type: StageStarted, Stage: "solve", Time: at},
		{Type: SegmentStarted, Segment: 1, Kind: "start", GPUs: []int{0, 1}, RemainingS: &left, Time: at},
		{Type: SegmentEnded, Segment: 1, EndReason: "exited", ExitCode: &code, Time: at},
	}
	for _, ev := range evs {
		if err := w.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Event(evs[0]); err == nil {
		t.Error("a closed writer accepted an event")
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	want := []string{
		`{"v":1,"time":"2026-01-02T02:04:05Z","type":"stage_started","stage":"solve"}`,
		`{"v":1,"time":"2026-01-02T02:04:05Z","type":"segment_started","segment":1,"kind":"start","gpus":[0,1],"remaining_s":90}`,
		`{"v":1,"time":"2026-01-02T02:04:05Z","type":"segment_ended","segment":1,"end_reason":"exited","exit_code":0}`,
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("file\n got %q\nwant %q", lines, want)
	}
}

// A crash mid-line leaves a fragment; the next writer starts a new line,
// so only the fragment is lost.
func TestWriterEndsACutLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(`{"type":"verdict"}`+"\n"+`{"type":"heartb`), 0o644)
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Event(Event{Type: StageEnded, Stage: "solve"})
	w.Close()
	g := collect(t, func(fn func(Event, int, error) error) error { return ReadFile(path, fn) })
	want := []got{{1, Verdict, 0, ""}, {2, "", 0, "line 2: unexpected end of JSON input"}, {3, StageEnded, 0, ""}}
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", g, want)
	}
}

// Lines of concurrent writers (two ptb processes would be a bug, but the
// heartbeat and the stage loop share one writer) never interleave.
func TestWriterConcurrentLinesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	w1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := w1
			if i%2 == 1 {
				w = w2
			}
			for j := range 200 {
				if err := w.Event(Event{Type: Heartbeat, Segment: i*1000 + j, Reason: strings.Repeat("r", 3000)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	w1.Close()
	w2.Close()
	seen := map[int]bool{}
	err = ReadFile(path, func(ev Event, line int, lineErr error) error {
		if lineErr != nil {
			return lineErr
		}
		seen[ev.Segment] = true
		return nil
	})
	if err != nil || len(seen) != 1600 {
		t.Errorf("read %d distinct events, err %v; want 1600, nil", len(seen), err)
	}
}

func TestOpenRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("keep\n"), 0o644)
	link := filepath.Join(dir, "events.jsonl")
	os.Symlink(target, link)
	if _, err := Open(link); err == nil {
		t.Error("Open followed a link")
	}
	if err := ReadFile(link, func(Event, int, error) error { return nil }); err == nil {
		t.Error("ReadFile followed a link")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("target written through the link: %q", b)
	}
	if err := ReadFile(filepath.Join(dir, "none"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestReadTail(t *testing.T) {
	l1 := `{"type":"stage_started","segment":1}` + "\n"
	l2 := `{"type":"heartbeat","segment":2}` + "\n"
	l3 := `{"type":"limit_hit","segment":3}` + "\n"
	file := l1 + l2 + l3
	tests := []struct {
		name string
		max  int64
		want []got
	}{
		{"all", -1, []got{{1, StageStarted, 1, ""}, {2, Heartbeat, 2, ""}, {3, LimitHit, 3, ""}}},
		{"larger than the file", 1 << 20, []got{{1, StageStarted, 1, ""}, {2, Heartbeat, 2, ""}, {3, LimitHit, 3, ""}}},
		{"on a line boundary", int64(len(l2 + l3)), []got{{1, Heartbeat, 2, ""}, {2, LimitHit, 3, ""}}},
		{"mid-line: the partial line is skipped", int64(len(l2+l3)) - 1, []got{{1, LimitHit, 3, ""}}},
		{"inside the last line", 5, nil},
		{"zero", 0, nil},
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(file), 0o644)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := collect(t, func(fn func(Event, int, error) error) error { return ReadTail(path, tt.max, fn) })
			if fmt.Sprint(g) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", g, tt.want)
			}
		})
	}
}

func TestMulti(t *testing.T) {
	var a, b []Type
	bad := errors.New("full")
	h := Multi(HandlerFunc(func(ev Event) error { a = append(a, ev.Type); return bad }), nil,
		HandlerFunc(func(ev Event) error { b = append(b, ev.Type); return nil }))
	if err := h.Event(Event{Type: Verdict}); !errors.Is(err, bad) {
		t.Errorf("err %v, want the first handler's", err)
	}
	if len(a) != 1 || len(b) != 1 {
		t.Errorf("handlers got %v and %v; want one event each (an error does not stop the others)", a, b)
	}
}

func TestDurable(t *testing.T) {
	for typ, want := range map[Type]bool{StageStarted: false, StageEnded: true, SegmentStarted: false, SegmentEnded: true,
		Heartbeat: false, LimitHit: true, Reprompt: false, Verdict: true, ResultRecorded: true} {
		if got := typ.Durable(); got != want {
			t.Errorf("%s.Durable() = %v, want %v", typ, got, want)
		}
	}
}
