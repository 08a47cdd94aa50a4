package trace

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fastjson/fastfloat"
)

// pairDecoders returns agent's decoder as used (scanner first) and the
// fastjson-only decoder it must match, with a count of the lines the
// scanner decoded itself.
func pairDecoders(t testing.TB, agent string) (fast, slow *Decoder, handled *int) {
	t.Helper()
	fast, err := NewDecoder(agent)
	if err != nil {
		t.Fatal(err)
	}
	slow, err = NewDecoder(agent)
	if err != nil {
		t.Fatal(err)
	}
	if fast.fast == nil {
		t.Fatalf("%s decoder has no scanner path", agent)
	}
	slow.fast = nil
	n := 0
	inner := fast.fast
	fast.fast = func(d *Decoder, line []byte) bool {
		ok := inner(d, line)
		if ok {
			n++
		}
		return ok
	}
	return fast, slow, &n
}

// sameEvents decodes line with both decoders and fails on any difference
// in the events (pointed-to values, raw bytes and times included).
func sameEvents(t testing.TB, fast, slow *Decoder, line []byte) {
	t.Helper()
	orig := bytes.Clone(line)
	fe, fok := fast.Decode(line)
	se, sok := slow.Decode(line)
	if !bytes.Equal(line, orig) {
		t.Fatalf("decoding changed the line: %q became %q", orig, line)
	}
	if fok != sok {
		t.Fatalf("line %q: scanner ok=%v, fastjson ok=%v", line, fok, sok)
	}
	if len(fe) != len(se) {
		t.Fatalf("line %q: scanner gave %d events, fastjson %d:\n%s\n%s", line, len(fe), len(se), dump(fe), dump(se))
	}
	for i := range fe {
		if !reflect.DeepEqual(fe[i], se[i]) {
			t.Fatalf("line %q event %d:\nscanner  %s\nfastjson %s", line, i, dump(fe[i:i+1]), dump(se[i:i+1]))
		}
	}
}

func dump(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%+v", e)
		if e.Session != nil {
			fmt.Fprintf(&b, " session=%+v", *e.Session)
		}
		if e.Tool != nil {
			fmt.Fprintf(&b, " tool=%+v input=%s", *e.Tool, e.Tool.Input)
		}
		if e.Result != nil {
			fmt.Fprintf(&b, " result=%+v", *e.Result)
			if e.Result.ExitCode != nil {
				fmt.Fprintf(&b, " exit=%d", *e.Result.ExitCode)
			}
		}
		if e.Usage != nil {
			fmt.Fprintf(&b, " usage=%+v", *e.Usage)
		}
		if e.CLICostUSD != nil {
			fmt.Fprintf(&b, " cost=%v", *e.CLICostUSD)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// scanCases are lines made to hit the corners where a skipping scanner
// could part from fastjson: duplicate and escaped keys, mistyped fields,
// NaN and Inf, escapes, whitespace, depth, truncation.
var scanCases = map[string][]string{
	AgentGemini: {
		`{"type":"init","timestamp":"2026-11-27T06:46:42.713Z","session_id":"a","model":"m"}`,
		`{"type":"init","session_id":"a","session_id":"b","model":1}`,
		`{"t\u0079pe":"init","type":"message","role":"assistant","content":"x"}`,
		`{"type":"message","r\u006fle":"assistant","role":"user","content":"x"}`,
		`{"type":"message","role":"assistant","content":"a\nb\u00e9\ud83d\ude00\ud83d\u0041\uzzzz\q\u12","delta":true}`,
		`{"type":"message","role":"assistant","content":"c","delta":true}`,
		`{"type":"message","role":"assistant","content":"d","delta":false}`,
		`{"type":"result","status":"success","stats":{"input_tokens":NaN,"output_tokens":-Inf,"cached":1e3}}`,
		`{"type":"result","status":"success","stats":{"input_tokens":1.5e400,"output_tokens":"7","cached":-0}}`,
		`{"type":"result","status":"failed","error":{"message":"boom"},"stats":[1]}`,
		`{"type":"result","status":"failed","error":"boom"}`,
		`{"type":"result","stats":null}`,
		`{"type":"tool_use","tool_id":"t","tool_name":"n","parameters": { "a" : [1, 2 ,{"b" :"c d\"" } ] , "e":nan }}`,
		`{"type":"tool_use","tool_id":"t","parameters":"a b\"\\"}`,
		`{"type":"tool_use","tool_id":"t","parameters":{"k\u0061":"\t"}}`,
		`{"type":"tool_result","tool_id":"t","status":"error","error":{"message":"bad"},"output":""}`,
		`{"type":"error","message":"m","severity":"error"}`,
		"  {\"type\" :\t\"error\" , \"message\" : \"m\" }\r ",
		`{"type":"error","message":"m"} x`,
		`{"type":"error","message":"m"`,
		`{"type":"error","message":"m\"}`,
		`{"type":"error","message":tru}`,
		`{"type":"error","message":+inf}`,
		`{"type":"error","message":--1}`,
		`{"type":"error","message":"m",}`,
		`{"type":"error","message":"\u0000\x01"}`,
		"{\"type\":\"error\",\"message\":\"raw\x01ctl\xff\"}",
		`{"type":"error","message":"m","x":` + strings.Repeat("[", 298) + strings.Repeat("]", 298) + `}`,
		`{"type":"error","message":"m","x":` + strings.Repeat("[", 299) + strings.Repeat("]", 299) + `}`,
		`{"type":"error","message":"m","x":` + strings.Repeat("[", 298) + "1" + strings.Repeat("]", 298) + `}`,
		`{"type":"error","message":"m","x":` + strings.Repeat("[", 299) + "1" + strings.Repeat("]", 299) + `}`,
		`{"type":"weird","timestamp":"2026-11-27T06:46:42Z"}`,
		`{}`, `[]`, `"x"`, `1`, ``, `{"type":"init"}{}`,
	},
	AgentOpenCode: {
		`{"type":"step_start","timestamp":1795762108962,"part":{}}`,
		`{"type":"text","timestamp":-5,"part":{"text":"hi\n"}}`,
		`{"type":"text","part":"str","part":{"text":"no"}}`,
		`{"type":"text","part":{"text":"a","text":"b"}}`,
		`{"type":"text","p\u0061rt":{"text":"a"},"part":{"text":"b"}}`,
		`{"type":"tool_use","part":{"callID":"c","tool":"bash","state":{"status":"completed","input":{"command":"echo  hi", "x" : [ true,false,null ]},"output":"o","metadata":{"exit":2},"time":{"start":1,"end":2}}}}`,
		`{"type":"tool_use","part":{"callID":"c","tool":"bash","state":{"status":"error","error":"e","metadata":{"exit":"0"},"time":{"start":"1","end":1e12}}}}`,
		`{"type":"tool_use","part":{"callID":"c","state":{"status":"running","input":"s"}}}`,
		`{"type":"tool_use","part":{"callID":"c","state":{"st\u0061tus":"error","status":"completed"}}}`,
		`{"type":"tool_use","part":{"callID":"c","state":[]}}`,
		`{"type":"tool_use","part":7}`,
		`{"type":"tool_use"}`,
		`{"type":"step_finish","part":{"reason":"stop","tokens":{"input":1,"output":2,"reasoning":3,"cache":{"read":4,"write":5}},"cost":0.5}}`,
		`{"type":"step_finish","part":{"reason":"stop","tokens":{"input":NAN,"cache":{"read":-inf}},"cost":"1"}}`,
		`{"type":"step_finish","part":{"tokens":null,"cost":1}}`,
		`{"type":"error","error":{"name":"E","data":{"message":"m"}}}`,
		`{"type":"error","error":{"name":"","data":{"message":""},"k\u0061":1}}`,
		`{"type":"error","error":{"n\tame":1}}`,
		`{"type":"error"}`,
		`{"type":"\u0074ext","part":{"text":"esc type"}}`,
		`{"type":"text","part":{"text":"a"}} `,
		`{"type":"text","part":{"text":"a"}`,
		`{"type":"text","part":{"text":"a"}}}`,
		`{"type":"text","timestamp":0123,"part":{"text":"z"}}`,
		`{"type":"step_finish","part":{"tokens":{"input":12345678901234567,"output":007,"reasoning":99999999999999999999}}}`,
		`{}`, `null`, `nan`,
	},
}

// TestScanMatchesFastJSON runs the scanner decoders and the fastjson ones
// side by side, as one stream each, on the real traces, on lines made for
// the corner cases and on many random mutations of both: same events, and
// the real traces' lines (but opencode errors) are decoded by the scanner.
func TestScanMatchesFastJSON(t *testing.T) {
	for _, agent := range []string{AgentGemini, AgentOpenCode} {
		t.Run(agent, func(t *testing.T) {
			real := bytes.Split(bytes.TrimSpace(realTrace(t, agent)), []byte("\n"))
			fast, slow, handled := pairDecoders(t, agent)
			for _, l := range real {
				sameEvents(t, fast, slow, l)
			}
			if *handled != len(real) {
				t.Errorf("scanner decoded %d of the %d real lines, want all", *handled, len(real))
			}
			var lines [][]byte
			for _, c := range scanCases[agent] {
				lines = append(lines, []byte(c))
			}
			lines = append(lines, real...)
			for _, l := range lines {
				sameEvents(t, fast, slow, l)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			n := 5000
			if testing.Short() {
				n = 500
			}
			for range n {
				sameEvents(t, fast, slow, mutate(rng, lines[rng.IntN(len(lines))]))
			}
			t.Logf("%s: scanner decoded %d lines; %d mutated lines compared", agent, *handled, n)
		})
	}
}

// mutate returns a copy of line with a few random edits made of the bytes
// that matter to JSON.
func mutate(rng *rand.Rand, line []byte) []byte {
	const alphabet = "{}[]\",:\\ \t\r\n0123456789.eE+-nulltruefalseNaNInfu\x00\x1f\x7f\xc3\xa9"
	pieces := []string{`"type"`, `"part"`, `"state"`, `"tokens"`, `"text"`, `"status"`, `"stats"`, `"cache"`,
		`"time"`, `"input"`, `"exit"`, `\u0041`, `\"`, `\\`, `null`, `NaN`, `-Inf`, `{}`, `[]`, `{"a":1}`, `1e999`,
		`"t\u0079pe"`, `"completed"`, `"error"`, `"assistant"`, `true`, `,`, `:`}
	out := bytes.Clone(line)
	for range 1 + rng.IntN(3) {
		pos := 0
		if len(out) > 0 {
			pos = rng.IntN(len(out) + 1)
		}
		switch rng.IntN(5) {
		case 0: // insert a byte
			out = append(out[:pos], append([]byte{alphabet[rng.IntN(len(alphabet))]}, out[pos:]...)...)
		case 1: // delete a run
			if pos < len(out) {
				end := min(len(out), pos+1+rng.IntN(4))
				out = append(out[:pos], out[end:]...)
			}
		case 2: // replace a byte
			if pos < len(out) {
				out[pos] = alphabet[rng.IntN(len(alphabet))]
			}
		case 3: // insert a piece
			p := pieces[rng.IntN(len(pieces))]
			out = append(out[:pos], append([]byte(p), out[pos:]...)...)
		case 4: // duplicate a run (keys and values twice)
			if pos < len(out) {
				end := min(len(out), pos+1+rng.IntN(40))
				run := bytes.Clone(out[pos:end])
				out = append(out[:end], append(run, out[end:]...)...)
			}
		}
	}
	return out
}

// FuzzScanMatchesFastJSON: any input, as a stream of lines, decodes to the
// same events with the scanner as with fastjson.
func FuzzScanMatchesFastJSON(f *testing.F) {
	for _, agent := range []string{AgentGemini, AgentOpenCode} {
		for _, c := range scanCases[agent] {
			f.Add(agent == AgentGemini, []byte(c))
		}
		if b, err := readShared(f, agent); err == nil {
			f.Add(agent == AgentGemini, b)
		}
	}
	f.Fuzz(func(t *testing.T, gemini bool, data []byte) {
		agent := AgentOpenCode
		if gemini {
			agent = AgentGemini
		}
		fast, slow, _ := pairDecoders(t, agent)
		for _, l := range bytes.Split(data, []byte("\n")) {
			sameEvents(t, fast, slow, l)
		}
	})
}

func readShared(tb testing.TB, agent string) ([]byte, error) {
	return os.ReadFile(filepath.Join(sharedDir(tb), "fixtures", "traces", agent+".jsonl"))
}

// TestSmallIntMatchesFloatParse: the integer shortcut gives what the float
// parse it skips gives, and declines what it cannot parse exactly.
func TestSmallIntMatchesFloatParse(t *testing.T) {
	for _, s := range []string{"0", "7", "1795762108962", "999999999999999", "1000000000000000", "0123", "00", "-1", "1e3", "1.0", "", "12a"} {
		n, ok := smallInt([]byte(s))
		if !ok {
			continue
		}
		f, err := fastfloat.Parse(s)
		if err != nil || int64(f) != n {
			t.Errorf("smallInt(%q) = %d, fastfloat gives %v (%v)", s, n, int64(f), err)
		}
		if len(s) > 15 || len(s) > 1 && s[0] == '0' {
			t.Errorf("smallInt(%q) accepted a number it should leave to the float parse", s)
		}
	}
	if _, ok := smallInt([]byte("1795762108962")); !ok {
		t.Error("smallInt declined a millisecond timestamp")
	}
}
