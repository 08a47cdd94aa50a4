package trace

import (
	"strings"
	"testing"
	"time"
)

// TestTimestampCacheMatchesParse feeds tsCache a sequence of timestamps (the
// short path taken from the second one on) and checks every result against
// time.Parse's.
func TestTimestampCacheMatchesParse(t *testing.T) {
	seq := []string{
		"2026-11-27T06:46:42.713Z",
		"2026-11-27T06:46:42.715Z",
		"2026-11-27T06:46:42Z",
		"2026-11-27T06:46:42.7Z",
		"2026-11-27T06:46:42.123456789Z",
		"2026-11-27T06:46:42.1234567891Z", // ten digits
		"2026-11-27T06:46:42,5Z",
		"2026-11-27T06:46:42.Z",
		"2026-11-27T06:46:42.1a3Z",
		"2026-11-27T06:46:42.713+02:00",
		"2026-11-27T06:46:43.001Z",
		"2026-11-27T06:46:43.002Z",
		"2026-11-27T06:46:43.002z",
		"2026-11-27T06:46:43",
		"not a time",
		"",
		"2026-11-27T06:46:43.999999999Z",
		"2026-02-30T06:46:43.5Z",
	}
	var c tsCache
	for _, s := range seq {
		got := c.parse(s)
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			want = time.Time{}
		}
		if !got.Equal(want) || got.Location().String() != want.Location().String() ||
			got.Format(time.RFC3339Nano) != want.Format(time.RFC3339Nano) {
			t.Errorf("%q: got %v, want %v", s, got, want)
		}
	}
}

// TestRenderClockAcrossSecondsAndDays checks the Renderer's per-second
// clock cache against time.Format: the same second, the next millisecond,
// the next second, midnight, a step back in time, a non-UTC zone and times
// before 1970.
func TestRenderClockAcrossSecondsAndDays(t *testing.T) {
	base := time.Date(2026, 11, 27, 23, 59, 58, 998e6, time.UTC)
	times := []time.Time{
		base,
		base.Add(time.Millisecond),
		base.Add(2 * time.Millisecond), // the next second
		base.Add(time.Second),
		base.Add(1002 * time.Millisecond), // midnight: a new day
		base.Add(1500 * time.Millisecond),
		base, // back to the day before
		base.In(time.FixedZone("x", 5*3600)).Add(time.Second),
		time.Date(1969, 12, 31, 23, 59, 59, 250e6, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 750e6, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	var out strings.Builder
	r := NewRenderer(&out, RenderOptions{})
	var want strings.Builder
	day := ""
	for _, tm := range times {
		if err := r.Event(&Event{Kind: KindMarker, Type: "m", Time: tm}); err != nil {
			t.Fatal(err)
		}
		u := tm.UTC()
		if d := u.Format("2006-01-02"); d != day {
			day = d
			want.WriteString("--- " + d + " (UTC) ---\n")
		}
		want.WriteString(u.Format("15:04:05.000") + " -- m --\n")
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got, want.String())
	}
}
