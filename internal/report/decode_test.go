package report

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/result"
)

// checkDecode decodes data with decodeResult and, when it accepts it,
// requires json.Unmarshal to accept it too and to give the same Result.
// It reports whether decodeResult accepted.
//
// It decodes twice, without interned strings and with strings interned
// across every call (as the loader does across the files it reads), and
// requires the same verdict and Result of both.
func checkDecode(t testing.TB, data []byte) bool {
	t.Helper()
	var got, interned result.Result
	ok := decodeResult(data, &got)
	if okInterned := decodeResultInterned(data, &interned, &testStrs); okInterned != ok {
		t.Fatalf("decodeResult accepted %v, with interned strings %v:\n%s", ok, okInterned, data)
	}
	if !ok {
		return false
	}
	var want result.Result
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("decodeResult accepted what json.Unmarshal refuses (%v):\n%s", err, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeResult differs from json.Unmarshal on\n%s\ngot  %#v\nwant %#v", data, got, want)
	}
	if !reflect.DeepEqual(interned, want) {
		t.Fatalf("decodeResult with interned strings differs from json.Unmarshal on\n%s\ngot  %#v\nwant %#v", data, interned, want)
	}
	return true
}

// testStrs is the interner checkDecode shares between all its calls: it
// fills up (maxInterned) over TestDecodeResultIsUnmarshal.
var testStrs interner

// randString mixes ASCII, characters JSON escapes, control characters and
// non-ASCII text.
func randString(rng *rand.Rand) string {
	pieces := []string{"a", "Qwen/Qwen3-1.7B-Base", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "é", "日本", "😀", "\u2028", "<script>", "&", "\x7f", "C", "judge.model"}
	var sb strings.Builder
	for range rng.IntN(6) {
		sb.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return sb.String()
}

func randStrings(rng *rand.Rand) []string {
	switch rng.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	s := make([]string, 1+rng.IntN(3))
	for i := range s {
		s[i] = randString(rng)
	}
	return s
}

func randInts(rng *rand.Rand) []int {
	switch rng.IntN(3) {
	case 0:
		return nil
	case 1:
		return []int{}
	}
	s := make([]int, 1+rng.IntN(3))
	for i := range s {
		s[i] = rng.IntN(1000) - 10
	}
	return s
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return float64(rng.IntN(100))
	case 3:
		return rng.NormFloat64() * 1e300
	case 4:
		return math.SmallestNonzeroFloat64 * float64(rng.IntN(10))
	}
	return rng.Float64()
}

func randFloatPtr(rng *rand.Rand) *float64 {
	if rng.IntN(3) == 0 {
		return nil
	}
	f := randFloat(rng)
	return &f
}

func randBoolPtr(rng *rand.Rand) *bool {
	if rng.IntN(3) == 0 {
		return nil
	}
	b := rng.IntN(2) == 0
	return &b
}

func randAny(rng *rand.Rand, depth int) any {
	switch rng.IntN(7) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return randFloat(rng)
	case 3:
		return randString(rng)
	case 4:
		if depth > 0 {
			a := make([]any, rng.IntN(3))
			for i := range a {
				a[i] = randAny(rng, depth-1)
			}
			return a
		}
	case 5:
		if depth > 0 {
			m := map[string]any{}
			for range rng.IntN(3) {
				m[randString(rng)] = randAny(rng, depth-1)
			}
			return m
		}
	}
	return float64(rng.IntN(100))
}

// randResult fills every field of a Result at random, nil and empty
// included.
func randResult(rng *rand.Rand) *result.Result {
	one := func() bool { return rng.IntN(2) == 0 }
	r := &result.Result{
		Schema: result.Schema, RunID: randString(rng),
		Spec: result.Spec{Agent: randString(rng), AgentModel: randString(rng), BaseModel: randString(rng),
			Benchmark: randString(rng), Hours: randFloat(rng), GPUs: randInts(rng), Seed: rng.IntN(5) - 1,
			Label: randString(rng), Network: randString(rng), SandboxName: randString(rng), EvalBackend: randString(rng)},
		Score: randFloatPtr(rng), Verdict: randString(rng), Flags: randStrings(rng),
		Versions: result.Versions{PTB: randString(rng), AgentCLI: randString(rng), Scorer: randString(rng)},
		Host:     result.Host{Hostname: randString(rng), OS: randString(rng), Arch: randString(rng), CPUs: rng.IntN(300), GPUs: randStrings(rng)},
		Sandbox:  result.Sandbox{Backend: randString(rng), Unsandboxed: one(), Network: randString(rng)},
		Warnings: randStrings(rng), Created: randString(rng), Finished: randString(rng),
	}
	if one() {
		r.Stages = map[string]result.Stage{}
		for range rng.IntN(4) {
			r.Stages[randString(rng)] = result.Stage{Status: randString(rng), StartedAt: randString(rng), EndedAt: randString(rng), Error: randString(rng), Reason: randString(rng)}
		}
	}
	if one() {
		r.Solve = &result.Solve{TimeTakenS: randFloat(rng), BudgetS: randFloat(rng), EndReason: randString(rng),
			Signal: randString(rng), Segments: rng.IntN(4), Deadline: randString(rng), FinalModel: one(),
			TraceBytes: rng.Int64(), ProtectedOK: randBoolPtr(rng), Limit: randString(rng), Error: randString(rng), TraceTruncated: one()}
		if one() {
			c := rng.IntN(300) - 150
			r.Solve.ExitCode = &c
		}
	}
	if one() {
		e := &result.Evaluation{Task: randString(rng), Version: randString(rng), Backend: randString(rng),
			Accuracy: randFloatPtr(rng), Stderr: randFloatPtr(rng), Samples: rng.IntN(2000), Missing: rng.IntN(3), Coverage: randFloatPtr(rng)}
		if one() {
			e.Metrics = map[string]any{}
			for range rng.IntN(4) {
				e.Metrics[randString(rng)] = randAny(rng, 3)
			}
		}
		if one() {
			e.Server = &result.EvalServer{Backend: randString(rng), Executable: randString(rng), Version: randString(rng),
				PinnedVersion: randString(rng), Sandbox: randString(rng), Unsandboxed: one(), GPUs: randInts(rng),
				TrustRemoteCode: one(), Warnings: randStrings(rng)}
		}
		if one() {
			e.Programs = &result.EvalPrograms{Python: randString(rng), PythonVersion: randString(rng), Sandbox: randString(rng),
				Unsandboxed: one(), Sandboxes: rng.IntN(3), Warnings: randStrings(rng)}
		}
		r.Evaluation = e
	}
	if one() {
		a := &result.Audit{Verdict: randString(rng), Flags: randStrings(rng)}
		if one() {
			a.Findings = []result.Finding{}
			for range rng.IntN(4) {
				a.Findings = append(a.Findings, result.Finding{Check: randString(rng), Status: randString(rng), Kind: randString(rng), Evidence: randStrings(rng)})
			}
		}
		r.Audit = a
	}
	if one() {
		r.Usage = &result.Usage{InputTokens: rng.Int64(), OutputTokens: -rng.Int64N(10), CachedInputTokens: rng.Int64N(10),
			ReasoningTokens: rng.Int64N(10), CostUSD: randFloatPtr(rng), CLICostUSD: randFloatPtr(rng), PriceTable: randString(rng), Source: randString(rng)}
	}
	if one() {
		for range rng.IntN(3) {
			r.Sandbox.Limits = append(r.Sandbox.Limits, result.Limit{Name: randString(rng), Value: randFloat(rng), Enforced: one(), How: randString(rng)})
		}
		for range rng.IntN(3) {
			r.Sandbox.GPUs = append(r.Sandbox.GPUs, result.GPU{Index: rng.IntN(8), Device: randString(rng), UUID: randString(rng)})
		}
	}
	if one() {
		for range rng.IntN(3) {
			rd := result.Redo{At: randString(rng), Stages: randStrings(rng)}
			for range rng.IntN(3) {
				rd.Changes = append(rd.Changes, result.Change{Field: randString(rng), Old: randAny(rng, 2), New: randAny(rng, 2)})
			}
			r.Redos = append(r.Redos, rd)
		}
	}
	if one() {
		r.Monitor = &result.Monitor{Samples: rng.IntN(100), IntervalS: randFloat(rng), GPUMemPeakMiB: randFloatPtr(rng),
			GPUUtilMean: randFloatPtr(rng), GPUIdleFraction: randFloatPtr(rng), Note: randString(rng)}
	}
	return r
}

// mutate makes one small random edit of a JSON document: the edits that
// reach encoding/json's corners (case, duplicates, nulls, escapes, numbers).
func mutate(rng *rand.Rand, data []byte) []byte {
	s := string(data)
	edits := []string{"null", "\"", "\\", "\\u", "\\ud83d", "\\ud83d\\ude00", "\\u00e9", "\xff", "\xe2\x80", ",", ":", "{", "}", "[", "]",
		"1", "1.5", "-0", "1e400", "01", "1e3", " ", "\t", "true", "false", "\"Score\":1,", "\"SCHEMA\":\"x\",", "\"score\":2,", "\"x\":1,", "[null]", "{}", "[]"}
	switch rng.IntN(4) {
	case 0: // insert
		i := rng.IntN(len(s) + 1)
		return []byte(s[:i] + edits[rng.IntN(len(edits))] + s[i:])
	case 1: // delete
		if len(s) == 0 {
			return data
		}
		i := rng.IntN(len(s))
		j := min(len(s), i+1+rng.IntN(8))
		return []byte(s[:i] + s[j:])
	case 2: // replace a byte
		if len(s) == 0 {
			return data
		}
		i := rng.IntN(len(s))
		return []byte(s[:i] + edits[rng.IntN(len(edits))] + s[i+1:])
	}
	// duplicate a member after the opening brace of the document
	i := strings.Index(s, ",\"")
	if i < 0 || len(s) < 2 {
		return data
	}
	j := strings.Index(s[i+1:], ",\"")
	if j < 0 {
		return data
	}
	return []byte("{" + s[i+1:i+1+j] + "," + s[1:])
}

// TestDecodeResultIsUnmarshal: on random results (every field, nil and
// empty values, escapes, non-ASCII, extreme floats, values of any shape)
// written as ptb writes them (json.Marshal and MarshalIndent),
// decodeResult accepts and gives exactly json.Unmarshal's Result; on
// thousands of random edits of them, and on hand-made corner cases, it
// either refuses or gives exactly what json.Unmarshal gives.
func TestDecodeResultIsUnmarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	accepted, mutants := 0, 0
	for i := range 2000 {
		r := randResult(rng)
		compact, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		indented, _ := json.MarshalIndent(r, "", "  ")
		for _, data := range [][]byte{compact, indented} {
			if !checkDecode(t, data) {
				t.Fatalf("result %d: decodeResult refused what ptb writes:\n%s", i, data)
			}
		}
		m := compact
		for range 10 {
			m = mutate(rng, m)
			if checkDecode(t, m) {
				mutants++
			}
		}
		accepted++
	}
	t.Logf("%d results accepted, %d of 20000 mutants accepted", accepted, mutants)

	// Corner cases: refused (left to encoding/json) or decoded alike.
	for _, tc := range []struct {
		doc    string
		accept bool
	}{
		{`{"schema":"ptb.result/v1"}`, true},
		{` {"schema" : "ptb.result/v1" , "score" : null } ` + "\n", true},
		{`{"schema":"ptb.result/v1","Score":1}`, false},     // case folding
		{`{"schema":"ptb.result/v1","ſchema":"x"}`, false},  // Unicode folding
		{`{"schema":"a","schema":"b"}`, false},              // duplicate key
		{`{"stages":{"a":{},"a":{"status":"x"}}}`, false},   // duplicate map key
		{`{"stages":{"a":null}}`, false},                    // null map value
		{`{"flags":["C",null]}`, false},                     // null in an array
		{`{"flags":[]}`, true},                              // empty, non-nil
		{`{"flags":null,"stages":null,"solve":null}`, true}, // nulls leave zero values
		{`{"spec":null,"host":null}`, true},                 // null into a struct
		{`{"spec":{"seed":1.0}}`, false},                    // not an int
		{`{"spec":{"seed":1e2}}`, false},                    // not an int
		{`{"spec":{"seed":99999999999999999999}}`, false},   // overflow
		{`{"score":1e400}`, false},                          // float overflow
		{`{"score":-0}`, true},                              // negative zero
		{`{"score":01}`, false},                             // leading zero
		{`{"run_id":"\ud83d\ude00"}`, false},                // surrogate pair
		{`{"run_id":"\ud83d"}`, false},                      // lone surrogate
		{"{\"run_id\":\"\xff\"}", false},                    // invalid UTF-8
		{`{"run_id":"a\u00e9\n\"\\\/\b\f\r\t"}`, true},      // escapes
		{"{\"run_id\":\"a\x01\"}", false},                   // control character
		{`{"run_id":"a"} x`, false},                         // trailing data
		{`{"run_id":"a"}{}`, false},                         // two documents
		{`{"x":1}`, false},                                  // unknown key
		{`{"run\u005fid":"a"}`, false},                      // escaped key
		{`null`, false},                                     // not an object
		{``, false},                                         // empty
		{`{"evaluation":{"metrics":{"a":[1,{"b":"}"}],"c":"]"}}}`, true},
		{`{"evaluation":{"metrics":null}}`, true},
		{`{"evaluation":{"metrics":{}}}`, true},
		{`{"evaluation":{"metrics":{"a":1,"a":"x"}}}`, true}, // the last counts
		{`{"evaluation":{"metrics":{"a":null,"b":true,"c":false,"d":"s","e":-0,"f":1e-400,"g":0.1}}}`, true},
		{`{"evaluation":{"metrics":{"a\u00e9\"":1, "b" : 2 }}}`, true},
		{`{"evaluation":{"metrics":{"a":1,"b":[2],"c":3}}}`, true}, // nested: encoding/json
		{`{"evaluation":{"metrics":{"\ud83d\ude00":1}}}`, true},    // surrogates: encoding/json
		{`{"evaluation":{"metrics":{"a":"\ud83d"}}}`, true},        // lone surrogate: U+FFFD
		{"{\"evaluation\":{\"metrics\":{\"\xff\":1}}}", true},      // invalid UTF-8: U+FFFD
		{`{"evaluation":{"metrics":{"a":1e400}}}`, false},
		{`{"evaluation":{"metrics":{"a":1,}}}`, false},
		{`{"evaluation":{"metrics":{"a":nul}}}`, false},
		{`{"evaluation":{"metrics":{"a":tru}}}`, false},
		{`{"evaluation":{"metrics":{"a" 1}}}`, false},
		{`{"evaluation":{"metrics":{"a":01}}}`, false},
		{`{"evaluation":{"metrics":{"a":1}`, false},
		{`{"evaluation":{"metrics":{"a":1}}}}`, false}, // extra brace
		{`{"evaluation":{"metrics":{"a":1},"metrics":{}}}`, false},
		{`{"evaluation":{"metrics":"x"}}`, false}, // wrong type
		{`{"redos":[{"changes":[{"field":"f","old":null,"new":[1,"a",{"b":true}]}]}]}`, true},
		{`{"redos":[{"changes":[{"old":1 2}]}]}`, false},
		{`{"evaluation":{"metrics":{"a":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}}}`, false},
		{`{"solve":{"exit_code":-1,"protected_ok":false,"trace_bytes":9007199254740993}}`, true},
		{`{"solve":{"final_model":tru}}`, false},
		{`{"sandbox":{"gpus":[{"index":0,"device":"/dev/nvidia0"}],"limits":[]}}`, true},
		{`{"spec":{"gpus":[0,1,]}}`, false},
		{`{"spec":{"gpus":[,0]}}`, false},
		{`{,"schema":"x"}`, false},
		{`{"schema":"x",}`, false},
	} {
		if got := checkDecode(t, []byte(tc.doc)); got != tc.accept {
			t.Errorf("%s: accepted %v, want %v", tc.doc, got, tc.accept)
		}
	}
}

// FuzzDecodeResult: for any bytes, decodeResult refuses or agrees with
// json.Unmarshal.
func FuzzDecodeResult(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		data, _ := json.Marshal(randResult(rng))
		f.Add(data)
	}
	f.Add([]byte(`{"stages":{"a":{}},"evaluation":{"metrics":{"a":[1]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
	})
}

// BenchmarkDecodeResult: decodeResult against json.Unmarshal on the
// report benchmark's records and on random ones (every field, values of
// any shape under the metrics).
func BenchmarkDecodeResult(b *testing.B) {
	var synth, random [][]byte
	for _, r := range synthRuns(4, 1, 9) {
		data, _ := json.Marshal(r.Result)
		synth = append(synth, data)
	}
	rng := rand.New(rand.NewPCG(15, 3))
	for range 28 {
		data, _ := json.Marshal(randResult(rng))
		random = append(random, data)
	}
	for _, set := range []struct {
		name string
		docs [][]byte
	}{{"synth", synth}, {"random", random}} {
		for _, dec := range []string{"decodeResult", "json.Unmarshal"} {
			b.Run(set.name+"/"+dec, func(b *testing.B) {
				n := 0
				for _, d := range set.docs {
					n += len(d)
				}
				b.SetBytes(int64(n))
				for b.Loop() {
					for _, d := range set.docs {
						var r result.Result
						if dec == "decodeResult" {
							if !decodeResult(d, &r) {
								b.Fatalf("refused %s", d)
							}
						} else if err := json.Unmarshal(d, &r); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// TestWriteIndentedIsIndent: writeIndented writes what json.Indent (and so
// json.MarshalIndent) writes, plus a newline, for reports and for random
// values: empty objects and arrays, deep nesting, strings ending in
// escaped backslashes and holding brackets, commas, colons and quotes.
func TestWriteIndentedIsIndent(t *testing.T) {
	var docs [][]byte
	rep, err := Build(synthRuns(6, 3, 4), Options{Bootstrap: 50, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	docs = append(docs, b)
	rng := rand.New(rand.NewPCG(7, 7))
	for range 3000 {
		b, _ := json.Marshal(randAny(rng, 6))
		docs = append(docs, b)
		b, _ = json.Marshal(randResult(rng))
		docs = append(docs, b)
	}
	for _, s := range []string{`{}`, `[]`, `[{}]`, `{"a":[]}`, `"a\\"`, `["\\\\\"]"]`, `{"\\\\":"\\\",:{["}`, `[[[[[]]]]]`, `0`, `null`, `""`, `[1,[2,{"x":{}}],3]`} {
		docs = append(docs, []byte(s))
	}
	for _, doc := range docs {
		var want bytes.Buffer
		if err := json.Indent(&want, doc, "", "  "); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		want.WriteByte('\n')
		var got bytes.Buffer
		if err := writeIndented(&got, doc); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s:\ngot  %q\nwant %q", doc, got.Bytes(), want.Bytes())
		}
		// The same cut into pieces anywhere (within strings, between a
		// backslash and what it escapes, between brackets): the
		// indenter keeps its state from piece to piece.
		for range 3 {
			got.Reset()
			ind := newIndenter(&got)
			for rest := doc; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(1+len(rest)/(1+rng.IntN(8))))
				if err := ind.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if err := ind.finish(); err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%s in pieces:\ngot  %q\nwant %q", doc, got.Bytes(), want.Bytes())
			}
		}
	}
}

// TestWriteJSONIsMarshalIndent: WriteJSON, which encodes the methods one
// by one into the indenter, writes the bytes of json.MarshalIndent of the
// whole report (plus a newline): for reports with and without methods,
// comparisons and warnings, with names that look like the member it
// splits the document at.
func TestWriteJSONIsMarshalIndent(t *testing.T) {
	odd := synthRuns(3, 2, 5)
	for i := range odd {
		odd[i].Result.Spec.Label = []string{`"methods":null`, `x","methods":null,"y":"`, "\\", `<&>`}[i%4]
	}
	var reps []*Report
	for _, runs := range [][]Run{synthRuns(6, 3, 4), synthRuns(1, 1, 1), odd, nil} {
		rep, err := Build(runs, Options{Bootstrap: 50, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	reps = append(reps, sampleReport(t), &Report{}, &Report{Methods: []*Method{}}, &Report{Methods: []*Method{nil, {Method: "m"}}},
		&Report{Methods: []*Method{{Method: "methods"}}, Warnings: []string{`"methods":null`}})
	for i, rep := range reps {
		want, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := WriteJSON(&got, rep); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("report %d:\ngot  %s\nwant %s", i, got.Bytes(), want)
		}
	}
	for _, tc := range []struct {
		doc, before, after string
	}{
		{`{"a":{"methods":null},"methods":null,"b":1}`, `{"a":{"methods":null},"methods":null`, `,"b":1}`},
		{`{"x":"\",\"methods\":null","methods":null}`, `{"x":"\",\"methods\":null","methods":null`, `}`},
		{`{"methods":null}`, `{"methods":null`, `}`},
		{`{"methods":[]}`, "", ""},
		{`{"a":["methods",null]}`, "", ""},
	} {
		before, after, ok := splitNullMember([]byte(tc.doc), "methods")
		if ok != (tc.before != "") || string(before) != strings.TrimSuffix(tc.before, "null") || string(after) != tc.after {
			t.Errorf("%s: got %q %q %v, want %q %q", tc.doc, before, after, ok, tc.before, tc.after)
		}
	}
}

// BenchmarkIndent: writeIndented against json.Indent on a report of 120
// methods.
func BenchmarkIndent(b *testing.B) {
	rep, err := Build(synthRuns(120, 3, 9), Options{Bootstrap: 20, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	doc, _ := json.Marshal(rep)
	b.SetBytes(int64(len(doc)))
	b.Run("writeIndented", func(b *testing.B) {
		for b.Loop() {
			writeIndented(io.Discard, doc)
		}
	})
	b.Run("json.Indent", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			json.Indent(&buf, doc, "", "  ")
		}
	})
}
