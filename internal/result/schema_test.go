package result

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// referenceSchema is schema.json compiled by the jsonschema library, as
// result.json was validated before schema.go (the library stays the
// reference in tests; its package init is why the binary no longer links it).
func referenceSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("result-v1.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("result-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errorLines is an error's text without its first line (which names the
// schema: a file: URL for the library, the $id for ours), one line per
// failure, sorted (the library checks an object's properties in map order),
// with the names in an "additional properties" line sorted likewise.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	lines := strings.Split(err.Error(), "\n")[1:]
	for i, l := range lines {
		if pre, names, ok := strings.Cut(l, ": additional properties "); ok {
			names = strings.TrimSuffix(names, " not allowed")
			ns := strings.Split(names, ", ")
			sort.Strings(ns)
			lines[i] = pre + ": additional properties " + strings.Join(ns, ", ") + " not allowed"
		}
	}
	sort.Strings(lines)
	return lines
}

func TestSchemaCompiles(t *testing.T) {
	if _, err := compileSchema(SchemaJSON); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, schema, want string }{
		{"unknown keyword", `{"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}`, "#/properties/a/pattern: keyword pattern is not supported"},
		{"unknown type", `{"type": "text"}`, "#/type: unknown type"},
		{"other format", `{"type": "string", "format": "uuid"}`, "format uuid is not supported"},
		{"remote ref", `{"$ref": "https://example.com/s.json"}`, "only #/$defs/NAME"},
		{"additional schema", `{"additionalProperties": {"type": "string"}}`, "only false is supported"},
	} {
		_, err := compileSchema([]byte(c.schema))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// The validator gives the library's errors, message for message, on the
// failures the package's tests name.
func TestSchemaErrorsAsTheLibrary(t *testing.T) {
	ref := referenceSchema(t)
	s, err := compileSchema(SchemaJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(*Result)
		want string
	}{
		{"wrong schema", func(r *Result) { r.Schema = "ptb.result/v0" }, "- at '/schema': value must be 'ptb.result/v1'"},
		{"score above 1", func(r *Result) { x := 1.5; r.Score = &x }, "- at '/score': maximum: got 1.5, want 1"},
		{"bad end reason", func(r *Result) { r.Solve.EndReason = "timeout" }, "- at '/solve': 'oneOf' failed, none matched\n" +
			"  - at '/solve': got object, want null\n" +
			"  - at '/solve/end_reason': value must be one of 'exited', 'deadline', 'signal', 'limit', 'harness_error'"},
		{"missing stage", func(r *Result) { delete(r.Stages, StageRecord) }, "- at '/stages': missing property 'record'"},
		{"bad timestamp", func(r *Result) { r.Created = "yesterday" }, "- at '/created_at': 'yesterday' is not valid date-time: less than 20 characters long"},
		{"negative gpu", func(r *Result) { r.Spec.GPUs = []int{-1234567} }, "- at '/spec/gpus/0': minimum: got -1.234567×10⁰⁶, want 0"},
	} {
		r := valid()
		c.mod(r)
		b, _ := json.Marshal(r)
		doc, err := decodeJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		got, want := s.validate(doc), ref.Validate(doc)
		if got == nil {
			t.Errorf("%s: validated", c.name)
			continue
		}
		if g := strings.SplitN(got.Error(), "\n", 2)[1]; g != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, g, c.want)
		}
		if g, w := errorLines(got), errorLines(want); !slices.Equal(g, w) {
			t.Errorf("%s: lines differ from the library's:\ngot  %q\nwant %q", c.name, g, w)
		}
	}
}

// records are valid results of several shapes.
func records() []*Result {
	a := valid()
	b := valid()
	b.Evaluation.Backend = "vllm"
	b.Evaluation.Server = &EvalServer{Backend: "vllm", Executable: "/opt/venv/bin/vllm", Version: "0.10.2", PinnedVersion: "0.11.0",
		Sandbox: "bwrap", GPUs: []int{0}, TrustRemoteCode: true, Warnings: []string{"w"}}
	c := valid()
	c.Evaluation.Programs = &EvalPrograms{Python: "/usr/bin/python3", PythonVersion: "3.11.7", Sandbox: "bwrap", Sandboxes: 2, Warnings: []string{}}
	c.Verdict = VerdictFlagged
	c.Flags = []string{"C", "T"}
	c.Audit = &Audit{Verdict: VerdictFlagged}
	c.Stages[StageAudit] = Stage{Status: StatusDone, StartedAt: "2026-11-27T08:01:02.5+01:00", EndedAt: "2026-11-27T08:01:03Z"}
	c.Sandbox.Limits = []Limit{{Name: "memory", Value: 1, How: "cgroup"}}
	d := valid()
	d.Solve = nil
	d.Score = nil
	d.Evaluation = nil
	return []*Result{a, b, c, d}
}

// mutate changes one random place in v (a decoded record) and returns it.
// gentle: only a leaf, to a value close to it (the record mostly stays
// valid); else anything anywhere (mostly invalid).
func mutate(rng *rand.Rand, v any, gentle bool) any {
	values := []func() any{
		func() any { return nil },
		func() any { return rng.IntN(2) == 0 },
		func() any { return json.Number(fmt.Sprint(rng.IntN(7) - 3)) },
		func() any {
			return json.Number([]string{"1.5", "-0.5", "0", "1e3", "2.0", "-1234567", "0.0001", "1e400"}[rng.IntN(8)])
		},
		func() any {
			return []string{"", "x", "yesterday", "2026-11-27T08:01:02Z", "2026-11-27t08:01:02z", "2026-13-27T08:01:02Z",
				"2026-11-27T24:01:02Z", "2026-11-27T23:59:60Z", "2026-11-27T08:59:60Z", "2026-11-27T08:01:02.Z",
				"2026-11-27T08:01:02+0100", "2026-11-27T08:01:02*01:00", "2026-11-27T08:01:02+01-00", "2026-11-27T08:01:02+24:00",
				"2026-11-27 08:01:02Z", "2026-11-27T08-01:02Z", "2026-11-27Tab:01:02Z", "2026-11-27T00:00:60+00:01",
				"2026-11-27T23:59:60-00:00", "limit", "memory", "clean", "flagged", "C", "done", "skipped", "host", "vllm", "é", "a'b\"c\n"}[rng.IntN(30)]
		},
		func() any { return []any{} },
		func() any { return []any{"C", "C"} },
		func() any { return []any{json.Number("1"), json.Number("-2"), "x"} },
		func() any {
			// more than 20 items: the library hashes them
			xs := make([]any, 21+rng.IntN(10))
			for i := range xs {
				xs[i] = []any{"C", "M", "T", "A", json.Number("1"), json.Number("1.0"), map[string]any{"a": json.Number("2")}, map[string]any{"a": json.Number("2e0")}, nil, true}[rng.IntN(10)]
				if rng.IntN(3) > 0 {
					xs[i] = fmt.Sprint(i)
				}
			}
			return xs
		},
		func() any { return map[string]any{} },
		func() any { return map[string]any{"status": "done"} },
	}
	random := func() any { return values[rng.IntN(len(values))]() }
	// like returns, half the time, a value close to v that usually keeps
	// the record valid (most places take any string, any count, any
	// fraction, either boolean; date-times keep their format), else any.
	like := func(v any) any {
		if gentle || rng.IntN(2) == 0 {
			switch v := v.(type) {
			case bool:
				return !v
			case json.Number:
				// bounds included: minimum 0, exclusiveMinimum 0, maximum 1
				if rng.IntN(2) == 0 {
					return json.Number([]string{"0", "0.0", "1", "1.0", "1.0000001", "-0.0000001", "0.5e1"}[rng.IntN(7)])
				}
				if strings.Contains(string(v), ".") {
					return json.Number([]string{"0.25", "0.999", "0.5"}[rng.IntN(3)])
				}
				return json.Number(fmt.Sprint(rng.IntN(100000)))
			case string:
				if validateDateTime(v) == nil {
					return []string{"2026-01-02T03:04:05Z", "2026-01-02t03:04:05.123z", "2026-01-02T03:04:05+05:30", "2016-12-31T23:59:60Z"}[rng.IntN(4)]
				}
				return v + "x"
			}
		}
		return random()
	}
	if !gentle && rng.IntN(8) == 0 {
		return like(v)
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		op := rng.IntN(10)
		if gentle {
			op = 2
		}
		switch {
		case len(keys) == 0 && gentle:
			return x
		case op == 0 || len(keys) == 0:
			x[fmt.Sprintf("extra%d", rng.IntN(3))] = random()
		case op == 1:
			delete(x, keys[rng.IntN(len(keys))])
		default:
			k := keys[rng.IntN(len(keys))]
			x[k] = mutate(rng, x[k], gentle)
		}
		return x
	case []any:
		if len(x) == 0 && gentle {
			return x
		}
		if len(x) == 0 || !gentle && rng.IntN(4) == 0 {
			return append(x, random())
		}
		i := rng.IntN(len(x))
		x[i] = mutate(rng, x[i], gentle)
		return x
	}
	return like(v)
}

// The validator and the library agree on valid records and on random
// mutations of them: the same verdict and the same error lines.
func TestSchemaMatchesJSONSchemaLibrary(t *testing.T) {
	ref := referenceSchema(t)
	s, err := compileSchema(SchemaJSON)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 3))
	n := 6000
	if testing.Short() {
		n = 1000
	}
	rejected := 0
	for i := 0; i < n; i++ {
		recs := records()
		r := recs[i%len(recs)]
		b, _ := json.Marshal(r)
		doc, err := decodeJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(recs) {
			for k := rng.IntN(4) / 3; k >= 0; k-- {
				doc = mutate(rng, doc, i%2 == 0)
			}
		}
		got, want := s.validate(doc), ref.Validate(doc)
		if (got == nil) != (want == nil) {
			mb, _ := json.Marshal(doc)
			t.Fatalf("case %d: ours %v, library %v\n%s", i, got, want, mb)
		}
		if got != nil {
			rejected++
		}
		if g, w := errorLines(got), errorLines(want); !slices.Equal(g, w) {
			mb, _ := json.Marshal(doc)
			t.Fatalf("case %d: error lines differ\nours    %q\nlibrary %q\n%s", i, g, w, mb)
		}
	}
	t.Logf("%d of %d records rejected", rejected, n)
	if rejected < n/5 || rejected > n-n/5 {
		t.Errorf("%d of %d records were rejected: want both verdicts often", rejected, n)
	}
}

// Date-times: the library's verdict and reason for each, valid or not.
func TestSchemaDateTimesAsTheLibrary(t *testing.T) {
	ref := referenceSchema(t)
	s, err := compileSchema(SchemaJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []string{"", "yesterday", "2026-11-27T08:01:02Z", "2026-11-27t08:01:02z", "2026-11-27T08:01:02.123456+05:30",
		"2026-13-27T08:01:02Z", "2026-02-30T08:01:02Z", "2026-11-27T24:01:02Z", "2026-11-27T08:60:02Z", "2026-11-27T08:01:61Z",
		"2016-12-31T23:59:60Z", "2026-11-27T23:59:60Z", "2026-11-27T08:59:60Z", "2026-11-28T00:29:60+00:30", "2026-11-27T23:29:60-00:30",
		"2026-11-27T08:01:02.Z", "2026-11-27T08:01:02+0100", "2026-11-27T08:01:02*01:00", "2026-11-27T08:01:02+01-00",
		"2026-11-27T08:01:02+24:00", "2026-11-27T08:01:02+01:60", "2026-11-27T08:01:02+ab:00", "2026-11-27T08:01:02+-1:00",
		"2026-11-27 08:01:02Z", "2026-11-27T08-01:02Z", "2026-11-27Tab:01:02Z", "2026-11-27T-1:01:02Z", "2026-11-27T08:01:02",
		"2026-11-27T08:01:02ZZ", "２026-11-27T08:01:02Z"} {
		r := valid()
		r.Created = dt
		b, _ := json.Marshal(r)
		doc, err := decodeJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		got, want := s.validate(doc), ref.Validate(doc)
		if (got == nil) != (want == nil) {
			t.Errorf("%q: ours %v, library %v", dt, got, want)
			continue
		}
		if g, w := errorLines(got), errorLines(want); !slices.Equal(g, w) {
			t.Errorf("%q:\nours    %q\nlibrary %q", dt, g, w)
		}
	}
}

// FuzzSchemaMatchesJSONSchemaLibrary: any JSON document gets the library's
// verdict and error lines.
//
//	go test ./internal/result -run '^$' -fuzz FuzzSchemaMatchesJSONSchemaLibrary -fuzztime 1m
func FuzzSchemaMatchesJSONSchemaLibrary(f *testing.F) {
	ref := referenceSchema(f)
	s, err := compileSchema(SchemaJSON)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range records() {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"schema": "ptb.result/v1", "spec": {"hours": 0, "gpus": [-1, 1.5]}, "flags": ["C", "C"], "extra": null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := decodeJSON(b)
		if err != nil || hugeExponent(doc) {
			return
		}
		got, want := s.validate(doc), ref.Validate(doc)
		if (got == nil) != (want == nil) {
			t.Fatalf("ours %v, library %v", got, want)
		}
		if g, w := errorLines(got), errorLines(want); !slices.Equal(g, w) {
			t.Fatalf("error lines differ\nours    %q\nlibrary %q", g, w)
		}
	})
}

// hugeExponent reports a number with an exponent past float64's range
// (1e999999999): big.Rat expands it, in the library as in ours, taking
// minutes. result.json is ptb's own output (encoding/json writes no such
// number), so the fuzz leaves those out.
func hugeExponent(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if hugeExponent(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hugeExponent(x) {
				return true
			}
		}
	case json.Number:
		if i := strings.IndexAny(string(v), "eE"); i >= 0 {
			return len(strings.TrimLeft(string(v)[i+1:], "+-0")) > 3
		}
	}
	return false
}
