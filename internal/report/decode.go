package report

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/ptb-dev/ptb/internal/result"
)

// decodeResult decodes a result.json the way ptb writes it, without
// reflection: about four times faster than encoding/json, which was the
// largest part of loading 10,000 runs. It accepts only documents whose
// meaning does not depend on encoding/json's lenient corners: every key is a
// field name spelt exactly (no escapes, no case folding, no unknown keys),
// no key appears twice in an object, strings are valid UTF-8 with no
// surrogate escapes, numbers parse as their field's type, arrays hold no
// null, and any value nested under an interface (evaluation metrics, redo
// changes) stays far from encoding/json's depth limit. For those, r ends up
// exactly as json.Unmarshal would leave a zero Result (TestDecodeResultIsUnmarshal,
// FuzzDecodeResult); for anything else it returns false, r is garbage, and
// the caller decodes again with encoding/json, which gives its own result
// or error.
func decodeResult(data []byte, r *result.Result) bool { return decodeResultInterned(data, r, nil) }

// decodeResultInterned is decodeResult taking short strings from strs
// (nil: none), which the loader keeps for all the files one goroutine
// reads: most of a record's strings (statuses, stage reasons, model and
// benchmark names, judge evidence) are the same in every run, and were
// half of the loader's allocations.
func decodeResultInterned(data []byte, r *result.Result, strs *interner) bool {
	d := decoder{b: data, strs: strs}
	d.result(r)
	d.ws()
	return !d.bad && d.i == len(d.b)
}

type decoder struct {
	b    []byte
	i    int
	bad  bool
	buf  []byte    // unescaped string bytes
	strs *interner // nil: every string is a new copy
}

// interner hands out one string for equal short byte strings. It is
// bounded: strings longer than maxInternLen, and any new one once it
// holds maxInterned, are plain copies, so hostile records cannot grow it.
type interner struct{ m map[string]string }

const (
	maxInternLen = 64
	maxInterned  = 4096
)

func (in *interner) str(b []byte) string {
	if in == nil || len(b) > maxInternLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string, 256)
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// maxAnyDepth bounds the nesting of a value decoded through an interface;
// deeper ones go to encoding/json, whose limit (10,000) counts from the
// document's top.
const maxAnyDepth = 1000

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// open consumes c (after whitespace).
func (d *decoder) open(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	d.bad = true
	return false
}

// more reports whether another element follows in an object or array
// closed by end, consuming the comma or the end; n counts the elements.
func (d *decoder) more(end byte, n *int) bool {
	if d.bad {
		return false
	}
	d.ws()
	if d.i >= len(d.b) {
		d.bad = true
		return false
	}
	c := d.b[d.i]
	if c == end {
		d.i++
		return false
	}
	if *n > 0 {
		if c != ',' {
			d.bad = true
			return false
		}
		d.i++
	}
	*n++
	return true
}

// key reads an object key and its colon. Keys with escapes are refused;
// a key is only ever compared with field names, so its bytes are returned
// as they are (a key that is not valid UTF-8 matches none).
func (d *decoder) key() []byte {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.bad = true
		return nil
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			k := d.b[start:j]
			d.i = j + 1
			if !d.open(':') {
				return nil
			}
			return k
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	d.bad = true
	return nil
}

// mapKey reads a map key (escapes allowed) and its colon.
func (d *decoder) mapKey() string {
	d.ws()
	s, ok := d.str()
	if !ok || !d.open(':') {
		d.bad = true
	}
	return s
}

// once marks field bit as seen in an object, refusing a repeated key.
func (d *decoder) once(seen *uint64, bit uint) {
	if *seen&(1<<bit) != 0 {
		d.bad = true
	}
	*seen |= 1 << bit
}

// null consumes a null literal if one comes next.
func (d *decoder) null() bool {
	d.ws()
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// str reads a string value.
func (d *decoder) str() (string, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	j := start
	for j < len(d.b) {
		c := d.b[j]
		if c == '"' {
			s := d.b[start:j]
			d.i = j + 1
			if !utf8.Valid(s) {
				return "", false
			}
			return d.strs.str(s), true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", false
		}
		j++
	}
	// Escapes: unescape into d.buf.
	d.buf = append(d.buf[:0], d.b[start:j]...)
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			if !utf8.Valid(d.buf) {
				return "", false
			}
			return d.strs.str(d.buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			d.buf = append(d.buf, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		e := d.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			d.buf = append(d.buf, e)
		case 'b':
			d.buf = append(d.buf, '\b')
		case 'f':
			d.buf = append(d.buf, '\f')
		case 'n':
			d.buf = append(d.buf, '\n')
		case 'r':
			d.buf = append(d.buf, '\r')
		case 't':
			d.buf = append(d.buf, '\t')
		case 'u':
			if j+4 > len(d.b) {
				return "", false
			}
			v, err := strconv.ParseUint(string(d.b[j:j+4]), 16, 16)
			if err != nil || (v >= 0xd800 && v < 0xe000) {
				// Surrogates (pairs or not) are left to encoding/json.
				return "", false
			}
			d.buf = utf8.AppendRune(d.buf, rune(v))
			j += 4
		default:
			return "", false
		}
	}
	return "", false
}

// number returns the bytes of a JSON number.
func (d *decoder) number() ([]byte, bool) {
	d.ws()
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		k := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == k {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		k := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == k {
			return nil, false
		}
	}
	n := b[d.i:i]
	d.i = i
	return n, true
}

// The setters below decode one value into a field; null leaves the field
// as it is (zero), as encoding/json does for a field not yet set.

func (d *decoder) setString(p *string) {
	if d.null() {
		return
	}
	s, ok := d.str()
	if !ok {
		d.bad = true
	}
	*p = s
}

func (d *decoder) float() (float64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

func (d *decoder) setFloat(p *float64) {
	if d.null() {
		return
	}
	f, ok := d.float()
	if !ok {
		d.bad = true
	}
	*p = f
}

func (d *decoder) setFloatPtr(p **float64) {
	if d.null() {
		return
	}
	f, ok := d.float()
	if !ok {
		d.bad = true
	}
	*p = &f
}

func (d *decoder) int64() (int64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	return v, err == nil
}

func (d *decoder) setInt64(p *int64) {
	if d.null() {
		return
	}
	v, ok := d.int64()
	if !ok {
		d.bad = true
	}
	*p = v
}

func (d *decoder) setInt(p *int) {
	if d.null() {
		return
	}
	v, ok := d.int64()
	if !ok || int64(int(v)) != v {
		d.bad = true
	}
	*p = int(v)
}

func (d *decoder) setIntPtr(p **int) {
	if d.null() {
		return
	}
	v := new(int)
	d.setInt(v)
	*p = v
}

func (d *decoder) bool() (bool, bool) {
	d.ws()
	switch {
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
		return true, true
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

func (d *decoder) setBool(p *bool) {
	if d.null() {
		return
	}
	v, ok := d.bool()
	if !ok {
		d.bad = true
	}
	*p = v
}

func (d *decoder) setBoolPtr(p **bool) {
	if d.null() {
		return
	}
	v, ok := d.bool()
	if !ok {
		d.bad = true
	}
	*p = &v
}

// setStrings decodes an array of strings; [] is an empty, non-nil slice.
func (d *decoder) setStrings(p *[]string) {
	if d.null() {
		return
	}
	if !d.open('[') {
		return
	}
	s := []string{}
	for n := 0; d.more(']', &n); {
		v, ok := d.str()
		if !ok {
			d.bad = true
			return
		}
		s = append(s, v)
	}
	*p = s
}

func (d *decoder) setInts(p *[]int) {
	if d.null() {
		return
	}
	if !d.open('[') {
		return
	}
	s := []int{}
	for n := 0; d.more(']', &n); {
		if d.null() {
			d.bad = true
			return
		}
		var v int
		d.setInt(&v)
		s = append(s, v)
	}
	*p = s
}

// setMetrics decodes evaluation metrics: a flat object of numbers,
// strings, booleans and nulls (what scorers write) here, as encoding/json
// decodes it into a nil map[string]any (a new map, numbers as float64, the
// last of a repeated key); anything else (null, nesting, a number out of
// float64's range) with setAny from the start.
func (d *decoder) setMetrics(p *map[string]any) {
	start, bad := d.i, d.bad
	if m, ok := d.flatObject(); ok {
		*p = m
		return
	}
	d.i, d.bad = start, bad
	d.setAny(p)
}

// flatObject reads an object whose values are all scalars; false, with d
// anywhere, for anything else.
func (d *decoder) flatObject() (map[string]any, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, false
	}
	d.i++
	m := map[string]any{}
	for n := 0; d.more('}', &n); {
		k := d.mapKey()
		if d.bad {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		var v any
		switch c := d.b[d.i]; {
		case c == '"':
			s, ok := d.str()
			if !ok {
				return nil, false
			}
			v = s
		case c == 't' || c == 'f':
			b, ok := d.bool()
			if !ok {
				return nil, false
			}
			v = b
		case c == 'n':
			if !d.null() {
				return nil, false
			}
		default:
			f, ok := d.float()
			if !ok {
				return nil, false
			}
			v = f
		}
		m[k] = v
	}
	return m, !d.bad
}

// setAny decodes one value of any shape into p (an interface or a map of
// interfaces) with encoding/json: its extent is found here, and the value
// is decoded alone, which gives what decoding it in place gives.
func (d *decoder) setAny(p any) {
	d.ws()
	start := d.i
	depth, maxDepth := 0, 0
scan:
	for d.i < len(d.b) {
		switch c := d.b[d.i]; c {
		case '"':
			j := d.i + 1
			for j < len(d.b) && d.b[j] != '"' {
				if d.b[j] == '\\' {
					j++
				}
				j++
			}
			d.i = j + 1
			if depth == 0 {
				break scan
			}
		case '{', '[':
			depth++
			maxDepth = max(maxDepth, depth)
			d.i++
		case '}', ']':
			if depth == 0 {
				break scan
			}
			depth--
			d.i++
			if depth == 0 {
				break scan
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				break scan
			}
			d.i++
		default:
			d.i++
		}
	}
	if d.i > len(d.b) || depth != 0 || maxDepth > maxAnyDepth || json.Unmarshal(d.b[start:d.i], p) != nil {
		d.i = min(d.i, len(d.b))
		d.bad = true
	}
}

func (d *decoder) result(r *result.Result) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "schema":
			d.once(&seen, 0)
			d.setString(&r.Schema)
		case "run_id":
			d.once(&seen, 1)
			d.setString(&r.RunID)
		case "spec":
			d.once(&seen, 2)
			d.spec(&r.Spec)
		case "stages":
			d.once(&seen, 3)
			d.stages(&r.Stages)
		case "solve":
			d.once(&seen, 4)
			if !d.null() {
				r.Solve = new(result.Solve)
				d.solve(r.Solve)
			}
		case "evaluation":
			d.once(&seen, 5)
			if !d.null() {
				r.Evaluation = new(result.Evaluation)
				d.evaluation(r.Evaluation)
			}
		case "score":
			d.once(&seen, 6)
			d.setFloatPtr(&r.Score)
		case "verdict":
			d.once(&seen, 7)
			d.setString(&r.Verdict)
		case "flags":
			d.once(&seen, 8)
			d.setStrings(&r.Flags)
		case "audit":
			d.once(&seen, 9)
			if !d.null() {
				r.Audit = new(result.Audit)
				d.audit(r.Audit)
			}
		case "usage":
			d.once(&seen, 10)
			if !d.null() {
				r.Usage = new(result.Usage)
				d.usage(r.Usage)
			}
		case "versions":
			d.once(&seen, 11)
			d.versions(&r.Versions)
		case "host":
			d.once(&seen, 12)
			d.host(&r.Host)
		case "sandbox":
			d.once(&seen, 13)
			d.sandbox(&r.Sandbox)
		case "warnings":
			d.once(&seen, 14)
			d.setStrings(&r.Warnings)
		case "created_at":
			d.once(&seen, 15)
			d.setString(&r.Created)
		case "finished_at":
			d.once(&seen, 16)
			d.setString(&r.Finished)
		case "redos":
			d.once(&seen, 17)
			d.redos(&r.Redos)
		case "monitor":
			d.once(&seen, 18)
			if !d.null() {
				r.Monitor = new(result.Monitor)
				d.monitor(r.Monitor)
			}
		default:
			d.bad = true
		}
	}
}

func (d *decoder) spec(s *result.Spec) {
	if d.null() || !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "agent":
			d.once(&seen, 0)
			d.setString(&s.Agent)
		case "agent_model":
			d.once(&seen, 1)
			d.setString(&s.AgentModel)
		case "base_model":
			d.once(&seen, 2)
			d.setString(&s.BaseModel)
		case "benchmark":
			d.once(&seen, 3)
			d.setString(&s.Benchmark)
		case "hours":
			d.once(&seen, 4)
			d.setFloat(&s.Hours)
		case "gpus":
			d.once(&seen, 5)
			d.setInts(&s.GPUs)
		case "seed":
			d.once(&seen, 6)
			d.setInt(&s.Seed)
		case "label":
			d.once(&seen, 7)
			d.setString(&s.Label)
		case "network":
			d.once(&seen, 8)
			d.setString(&s.Network)
		case "sandbox":
			d.once(&seen, 9)
			d.setString(&s.SandboxName)
		case "eval_backend":
			d.once(&seen, 10)
			d.setString(&s.EvalBackend)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) stages(p *map[string]result.Stage) {
	if d.null() || !d.open('{') {
		return
	}
	m := map[string]result.Stage{}
	for n := 0; d.more('}', &n); {
		k := d.mapKey()
		if _, dup := m[k]; dup {
			d.bad = true
			return
		}
		var st result.Stage
		d.stage(&st)
		m[k] = st
	}
	*p = m
}

func (d *decoder) stage(s *result.Stage) {
	if d.null() {
		d.bad = true // a null map value: left to encoding/json
		return
	}
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "status":
			d.once(&seen, 0)
			d.setString(&s.Status)
		case "started_at":
			d.once(&seen, 1)
			d.setString(&s.StartedAt)
		case "ended_at":
			d.once(&seen, 2)
			d.setString(&s.EndedAt)
		case "error":
			d.once(&seen, 3)
			d.setString(&s.Error)
		case "reason":
			d.once(&seen, 4)
			d.setString(&s.Reason)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) solve(s *result.Solve) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "time_taken_s":
			d.once(&seen, 0)
			d.setFloat(&s.TimeTakenS)
		case "budget_s":
			d.once(&seen, 1)
			d.setFloat(&s.BudgetS)
		case "end_reason":
			d.once(&seen, 2)
			d.setString(&s.EndReason)
		case "exit_code":
			d.once(&seen, 3)
			d.setIntPtr(&s.ExitCode)
		case "signal":
			d.once(&seen, 4)
			d.setString(&s.Signal)
		case "segments":
			d.once(&seen, 5)
			d.setInt(&s.Segments)
		case "deadline":
			d.once(&seen, 6)
			d.setString(&s.Deadline)
		case "final_model":
			d.once(&seen, 7)
			d.setBool(&s.FinalModel)
		case "trace_bytes":
			d.once(&seen, 8)
			d.setInt64(&s.TraceBytes)
		case "protected_ok":
			d.once(&seen, 9)
			d.setBoolPtr(&s.ProtectedOK)
		case "limit":
			d.once(&seen, 10)
			d.setString(&s.Limit)
		case "error":
			d.once(&seen, 11)
			d.setString(&s.Error)
		case "trace_truncated":
			d.once(&seen, 12)
			d.setBool(&s.TraceTruncated)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) evaluation(e *result.Evaluation) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "task":
			d.once(&seen, 0)
			d.setString(&e.Task)
		case "version":
			d.once(&seen, 1)
			d.setString(&e.Version)
		case "backend":
			d.once(&seen, 2)
			d.setString(&e.Backend)
		case "metrics":
			d.once(&seen, 3)
			d.setMetrics(&e.Metrics)
		case "accuracy":
			d.once(&seen, 4)
			d.setFloatPtr(&e.Accuracy)
		case "stderr":
			d.once(&seen, 5)
			d.setFloatPtr(&e.Stderr)
		case "samples":
			d.once(&seen, 6)
			d.setInt(&e.Samples)
		case "missing":
			d.once(&seen, 7)
			d.setInt(&e.Missing)
		case "coverage":
			d.once(&seen, 8)
			d.setFloatPtr(&e.Coverage)
		case "server":
			d.once(&seen, 9)
			if !d.null() {
				e.Server = new(result.EvalServer)
				d.evalServer(e.Server)
			}
		case "programs":
			d.once(&seen, 10)
			if !d.null() {
				e.Programs = new(result.EvalPrograms)
				d.evalPrograms(e.Programs)
			}
		default:
			d.bad = true
		}
	}
}

func (d *decoder) evalServer(s *result.EvalServer) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "backend":
			d.once(&seen, 0)
			d.setString(&s.Backend)
		case "executable":
			d.once(&seen, 1)
			d.setString(&s.Executable)
		case "version":
			d.once(&seen, 2)
			d.setString(&s.Version)
		case "pinned_version":
			d.once(&seen, 3)
			d.setString(&s.PinnedVersion)
		case "sandbox":
			d.once(&seen, 4)
			d.setString(&s.Sandbox)
		case "unsandboxed":
			d.once(&seen, 5)
			d.setBool(&s.Unsandboxed)
		case "gpus":
			d.once(&seen, 6)
			d.setInts(&s.GPUs)
		case "trust_remote_code":
			d.once(&seen, 7)
			d.setBool(&s.TrustRemoteCode)
		case "warnings":
			d.once(&seen, 8)
			d.setStrings(&s.Warnings)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) evalPrograms(p *result.EvalPrograms) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "python":
			d.once(&seen, 0)
			d.setString(&p.Python)
		case "python_version":
			d.once(&seen, 1)
			d.setString(&p.PythonVersion)
		case "sandbox":
			d.once(&seen, 2)
			d.setString(&p.Sandbox)
		case "unsandboxed":
			d.once(&seen, 3)
			d.setBool(&p.Unsandboxed)
		case "sandboxes":
			d.once(&seen, 4)
			d.setInt(&p.Sandboxes)
		case "warnings":
			d.once(&seen, 5)
			d.setStrings(&p.Warnings)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) audit(a *result.Audit) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "verdict":
			d.once(&seen, 0)
			d.setString(&a.Verdict)
		case "flags":
			d.once(&seen, 1)
			d.setStrings(&a.Flags)
		case "findings":
			d.once(&seen, 2)
			if d.null() || !d.open('[') {
				continue
			}
			fs := []result.Finding{}
			for m := 0; d.more(']', &m); {
				if d.null() {
					d.bad = true
					break
				}
				fs = append(fs, result.Finding{})
				d.finding(&fs[len(fs)-1])
			}
			a.Findings = fs
		default:
			d.bad = true
		}
	}
}

func (d *decoder) finding(f *result.Finding) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "check":
			d.once(&seen, 0)
			d.setString(&f.Check)
		case "status":
			d.once(&seen, 1)
			d.setString(&f.Status)
		case "kind":
			d.once(&seen, 2)
			d.setString(&f.Kind)
		case "evidence":
			d.once(&seen, 3)
			d.setStrings(&f.Evidence)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) usage(u *result.Usage) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "input_tokens":
			d.once(&seen, 0)
			d.setInt64(&u.InputTokens)
		case "output_tokens":
			d.once(&seen, 1)
			d.setInt64(&u.OutputTokens)
		case "cached_input_tokens":
			d.once(&seen, 2)
			d.setInt64(&u.CachedInputTokens)
		case "reasoning_tokens":
			d.once(&seen, 3)
			d.setInt64(&u.ReasoningTokens)
		case "cost_usd":
			d.once(&seen, 4)
			d.setFloatPtr(&u.CostUSD)
		case "cli_cost_usd":
			d.once(&seen, 5)
			d.setFloatPtr(&u.CLICostUSD)
		case "price_table":
			d.once(&seen, 6)
			d.setString(&u.PriceTable)
		case "source":
			d.once(&seen, 7)
			d.setString(&u.Source)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) versions(v *result.Versions) {
	if d.null() || !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "ptb":
			d.once(&seen, 0)
			d.setString(&v.PTB)
		case "agent_cli":
			d.once(&seen, 1)
			d.setString(&v.AgentCLI)
		case "scorer":
			d.once(&seen, 2)
			d.setString(&v.Scorer)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) host(h *result.Host) {
	if d.null() || !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "hostname":
			d.once(&seen, 0)
			d.setString(&h.Hostname)
		case "os":
			d.once(&seen, 1)
			d.setString(&h.OS)
		case "arch":
			d.once(&seen, 2)
			d.setString(&h.Arch)
		case "cpus":
			d.once(&seen, 3)
			d.setInt(&h.CPUs)
		case "gpus":
			d.once(&seen, 4)
			d.setStrings(&h.GPUs)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) sandbox(s *result.Sandbox) {
	if d.null() || !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "backend":
			d.once(&seen, 0)
			d.setString(&s.Backend)
		case "unsandboxed":
			d.once(&seen, 1)
			d.setBool(&s.Unsandboxed)
		case "network":
			d.once(&seen, 2)
			d.setString(&s.Network)
		case "limits":
			d.once(&seen, 3)
			if d.null() || !d.open('[') {
				continue
			}
			ls := []result.Limit{}
			for m := 0; d.more(']', &m); {
				if d.null() {
					d.bad = true
					break
				}
				ls = append(ls, result.Limit{})
				d.limit(&ls[len(ls)-1])
			}
			s.Limits = ls
		case "gpus":
			d.once(&seen, 4)
			if d.null() || !d.open('[') {
				continue
			}
			gs := []result.GPU{}
			for m := 0; d.more(']', &m); {
				if d.null() {
					d.bad = true
					break
				}
				gs = append(gs, result.GPU{})
				d.gpu(&gs[len(gs)-1])
			}
			s.GPUs = gs
		default:
			d.bad = true
		}
	}
}

func (d *decoder) limit(l *result.Limit) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "name":
			d.once(&seen, 0)
			d.setString(&l.Name)
		case "value":
			d.once(&seen, 1)
			d.setFloat(&l.Value)
		case "enforced":
			d.once(&seen, 2)
			d.setBool(&l.Enforced)
		case "how":
			d.once(&seen, 3)
			d.setString(&l.How)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) gpu(g *result.GPU) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "index":
			d.once(&seen, 0)
			d.setInt(&g.Index)
		case "device":
			d.once(&seen, 1)
			d.setString(&g.Device)
		case "uuid":
			d.once(&seen, 2)
			d.setString(&g.UUID)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) redos(p *[]result.Redo) {
	if d.null() || !d.open('[') {
		return
	}
	rs := []result.Redo{}
	for n := 0; d.more(']', &n); {
		if d.null() {
			d.bad = true
			return
		}
		rs = append(rs, result.Redo{})
		rd := &rs[len(rs)-1]
		if !d.open('{') {
			return
		}
		var seen uint64
		for m := 0; d.more('}', &m); {
			switch string(d.key()) {
			case "at":
				d.once(&seen, 0)
				d.setString(&rd.At)
			case "stages":
				d.once(&seen, 1)
				d.setStrings(&rd.Stages)
			case "changes":
				d.once(&seen, 2)
				if d.null() || !d.open('[') {
					continue
				}
				cs := []result.Change{}
				for k := 0; d.more(']', &k); {
					if d.null() {
						d.bad = true
						break
					}
					cs = append(cs, result.Change{})
					d.change(&cs[len(cs)-1])
				}
				rd.Changes = cs
			default:
				d.bad = true
			}
		}
	}
	*p = rs
}

func (d *decoder) change(c *result.Change) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "field":
			d.once(&seen, 0)
			d.setString(&c.Field)
		case "old":
			d.once(&seen, 1)
			d.setAny(&c.Old)
		case "new":
			d.once(&seen, 2)
			d.setAny(&c.New)
		default:
			d.bad = true
		}
	}
}

func (d *decoder) monitor(m *result.Monitor) {
	if !d.open('{') {
		return
	}
	var seen uint64
	for n := 0; d.more('}', &n); {
		switch string(d.key()) {
		case "samples":
			d.once(&seen, 0)
			d.setInt(&m.Samples)
		case "interval_s":
			d.once(&seen, 1)
			d.setFloat(&m.IntervalS)
		case "gpu_mem_peak_mib":
			d.once(&seen, 2)
			d.setFloatPtr(&m.GPUMemPeakMiB)
		case "gpu_util_mean":
			d.once(&seen, 3)
			d.setFloatPtr(&m.GPUUtilMean)
		case "gpu_idle_fraction":
			d.once(&seen, 4)
			d.setFloatPtr(&m.GPUIdleFraction)
		case "note":
			d.once(&seen, 5)
			d.setString(&m.Note)
		default:
			d.bad = true
		}
	}
}
