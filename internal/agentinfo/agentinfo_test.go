package agentinfo

import (
	"slices"
	"testing"
)

func TestRegisterLookupNames(t *testing.T) {
	Register(Info{Name: "zz-b", Display: "B CLI", Trace: "claude"})
	Register(Info{Name: "zz-a"})
	for _, c := range []struct {
		name, label, format string
		ok                  bool
	}{
		{"zz-a", "zz-a", "zz-a", true},
		{"zz-b", "B CLI", "claude", true},
		{"zz-c", "", "", false},
	} {
		i, ok := Lookup(c.name)
		if ok != c.ok {
			t.Errorf("Lookup(%q) ok = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := i.Label(); got != c.label {
			t.Errorf("%s: Label() = %q, want %q", c.name, got, c.label)
		}
		if got := i.TraceFormat(); got != c.format {
			t.Errorf("%s: TraceFormat() = %q, want %q", c.name, got, c.format)
		}
		if got := i.Keys("m"); got != nil {
			t.Errorf("%s: Keys without KeyEnv = %v, want nil", c.name, got)
		}
	}
	names := Names()
	if !slices.IsSorted(names) || !slices.Contains(names, "zz-a") || !slices.Contains(names, "zz-b") {
		t.Errorf("Names() = %v, want sorted with zz-a and zz-b", names)
	}
	all := All()
	if len(all) != len(names) {
		t.Fatalf("All() has %d entries, Names() %d", len(all), len(names))
	}
	for k, i := range all {
		if i.Name != names[k] {
			t.Errorf("All()[%d] = %q, want %q", k, i.Name, names[k])
		}
	}
}

func TestRegisterRefusesEmptyAndDuplicate(t *testing.T) {
	Register(Info{Name: "zz-dup"})
	for _, c := range []struct {
		name string
		info Info
	}{
		{"empty name", Info{}},
		{"duplicate", Info{Name: "zz-dup"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", c.info)
				}
			}()
			Register(c.info)
		})
	}
}
