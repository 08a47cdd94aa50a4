package jsonpos

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestError(t *testing.T) {
	cases := []struct {
		name, data string
		want       string
	}{
		{"syntax on line 3", "{\n \"a\": 1,\n \"b\": ]\n}", "f.json: line 3, column 7 (byte 17): invalid character ']'"},
		{"type", `{"a": "x"}`, "f.json: line 1, column 9 (byte 8): json: cannot unmarshal string"},
		{"empty", "", "f.json: empty: want a JSON value"},
		{"truncated", `{"a": `, "f.json: line 1, column 6 (byte 5): unexpected end of JSON input"},
	}
	for _, c := range cases {
		var v struct{ A int }
		err := json.Unmarshal([]byte(c.data), &v)
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		got := Error("f.json", []byte(c.data), 0, err).Error()
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want prefix %q", c.name, got, c.want)
		}
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\ncd\n")
	for _, c := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {1, 1, 2}, {2, 1, 3}, {3, 2, 1}, {4, 2, 2}, {100, 3, 1}, {-1, 1, 1}} {
		if l, cl := LineCol(data, c.off); l != c.line || cl != c.col {
			t.Errorf("LineCol(%d) = %d,%d, want %d,%d", c.off, l, cl, c.line, c.col)
		}
	}
}
