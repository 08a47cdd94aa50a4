package trace

import (
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
