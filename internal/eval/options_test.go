package eval

import (
	"reflect"
	"testing"
)

// Every field of Options' parts is reached directly on Options (o.Limit),
// unambiguously: no two parts, and no top-level field, share a name.
func TestOptionsPartsPromoted(t *testing.T) {
	ot := reflect.TypeFor[Options]()
	parts := 0
	for i := range ot.NumField() {
		part := ot.Field(i)
		if !part.Anonymous {
			continue
		}
		parts++
		for j := range part.Type.NumField() {
			name := part.Type.Field(j).Name
			f, ok := ot.FieldByName(name)
			if !ok {
				t.Errorf("%s.%s: not reachable as Options.%s (ambiguous)", part.Name, name, name)
				continue
			}
			if want := []int{i, j}; !reflect.DeepEqual(f.Index, want) {
				t.Errorf("Options.%s is field %v, want %s's (%v)", name, f.Index, part.Name, want)
			}
		}
	}
	if parts != 5 {
		t.Errorf("Options embeds %d parts, want 5 (Target, Data, Requests, Server, Programs)", parts)
	}
}
