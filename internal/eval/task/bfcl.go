package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
	"go.yaml.in/yaml/v3"
)

// BFCLFile is BFCL v3 exec_simple at the original's pinned hub revision.
var BFCLFile = dataset.File{Repo: "gorilla-llm/Berkeley-Function-Calling-Leaderboard", Revision: "1bf8bbc3c0e35d04d00339c223a3fd653aa195ac",
	Path: "BFCL_v3_exec_simple.jsonl", Local: "bfcl/BFCL_v3_exec_simple.json"}

// oobj is a JSON object that remembers its key order.
type oobj struct {
	keys []string
	vals map[string]any
}

func (o *oobj) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// parseOrdered decodes JSON keeping object key order: *oobj, []any, string,
// json.Number, bool, nil.
func parseOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return orderedValue(dec)
}

func orderedValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := t.(type) {
	case json.Delim:
		switch d {
		case '{':
			o := &oobj{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
		return nil, fmt.Errorf("unexpected %v", d)
	}
	return t, nil
}

// unionOrder records, per schema path, the property names in order of first
// appearance across the file (how pyarrow infers one struct per column).
type unionOrder map[string][]string

func (u unionOrder) add(path string, props *oobj) {
	have := map[string]bool{}
	for _, k := range u[path] {
		have[k] = true
	}
	for _, k := range props.keys {
		if !have[k] {
			u[path] = append(u[path], k)
			have[k] = true
		}
		if p, ok := props.vals[k].(*oobj); ok {
			u.addProp(path+"/"+k, p)
		}
	}
}

func (u unionOrder) addProp(path string, p *oobj) {
	if it, ok := p.vals["items"].(*oobj); ok {
		u.addProp(path+"/items", it)
	}
	if ps, ok := p.vals["properties"].(*oobj); ok {
		u.add(path+"/properties", ps)
	}
}

// inspect's ToolParam field order.
var toolParamKeys = []string{"type", "format", "description", "default", "enum", "items", "properties", "additionalProperties", "anyOf", "required"}

func mapType(t any) any {
	if s, ok := t.(string); ok {
		switch s {
		case "dict":
			return "object"
		case "float":
			return "number"
		case "tuple":
			return "array"
		}
	}
	return t
}

type jw struct{ b bytes.Buffer }

func (w *jw) str(s string) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	w.b.Write(bytes.TrimRight(buf.Bytes(), "\n"))
}

func (w *jw) raw(s string) { w.b.WriteString(s) }

// value writes an ordered value as JSON.
func (w *jw) value(v any) {
	switch x := v.(type) {
	case nil:
		w.raw("null")
	case bool:
		if x {
			w.raw("true")
		} else {
			w.raw("false")
		}
	case json.Number:
		w.raw(string(x))
	case string:
		w.str(x)
	case []any:
		w.raw("[")
		for i, e := range x {
			if i > 0 {
				w.raw(",")
			}
			w.value(e)
		}
		w.raw("]")
	case *oobj:
		w.raw("{")
		for i, k := range x.keys {
			if i > 0 {
				w.raw(",")
			}
			w.str(k)
			w.raw(":")
			w.value(x.vals[k])
		}
		w.raw("}")
	}
}

// param writes a property schema in inspect's key order.
func (w *jw) param(p *oobj, path string, u unionOrder) {
	w.raw("{")
	first := true
	sep := func(k string) {
		if !first {
			w.raw(",")
		}
		first = false
		w.str(k)
		w.raw(":")
	}
	for _, k := range toolParamKeys {
		v, ok := p.get(k)
		if !ok || v == nil {
			continue
		}
		sep(k)
		switch k {
		case "type":
			w.value(mapType(v))
		case "items":
			if it, ok := v.(*oobj); ok {
				w.param(it, path+"/items", u)
			} else {
				w.value(v)
			}
		case "properties":
			if ps, ok := v.(*oobj); ok {
				w.props(ps, path+"/properties", u)
			} else {
				w.value(v)
			}
		default:
			w.value(v)
		}
	}
	w.raw("}")
}

func (w *jw) props(ps *oobj, path string, u unionOrder) {
	w.raw("{")
	first := true
	for _, k := range u[path] {
		v, ok := ps.vals[k]
		if !ok {
			continue
		}
		if !first {
			w.raw(",")
		}
		first = false
		w.str(k)
		w.raw(":")
		if p, ok := v.(*oobj); ok {
			w.param(p, path+"/"+k, u)
		} else {
			w.value(v)
		}
	}
	w.raw("}")
}

type bfclTarget struct {
	Function  string
	Arguments map[string]any
	FirstProp map[string]string // tool name -> first property name (YAML fallback)
}

func init() {
	Register(Registration{Name: "bfcl", Files: []dataset.File{BFCLFile},
		New: func(strict bool, _ Config) Task { return &bfcl{strict: strict} }})
}

type bfcl struct{ strict bool }

func (b *bfcl) Info() Info {
	return Info{Name: "bfcl", Version: version(b.strict), MaxTokens: [3]int{16000, 12000, 8000}, Attempts: [3]int{4, 3, 2},
		Concurrency: 6, Style: StyleInspect, GPUMemory: "0.8", Tools: true}
}

// BuildBFCLSamples turns BFCL records into samples whose Tools are serialised
// exactly as inspect sends them.
func BuildBFCLSamples(recs []json.RawMessage) ([]Sample, error) {
	type rec struct {
		id     string
		msgs   []Message
		fn     *oobj
		target bfclTarget
		gt     string
	}
	u := unionOrder{}
	var rs []rec
	for i, raw := range recs {
		v, err := parseOrdered(raw)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("bfcl row %d: %w", i, err)
		}
		o, ok := v.(*oobj)
		if !ok {
			return nil, fmt.Errorf("bfcl row %d: not an object", i)
		}
		var r struct {
			ID          string        `json:"id"`
			Question    [][]Message   `json:"question"`
			GroundTruth []string      `json:"ground_truth"`
			Function    []interface{} `json:"function"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("bfcl row %d: %w", i, err)
		}
		fns, _ := o.vals["function"].([]any)
		if len(fns) == 0 || len(r.Question) == 0 || len(r.GroundTruth) == 0 {
			return nil, fmt.Errorf("bfcl row %d (%s): want function, question and ground_truth", i, r.ID)
		}
		fn := fns[0].(*oobj)
		params, _ := fn.vals["parameters"].(*oobj)
		if params != nil {
			if ps, ok := params.vals["properties"].(*oobj); ok {
				u.add("", ps)
			}
		}
		name, args, err := parsePyCall(r.GroundTruth[0])
		if err != nil {
			return nil, fmt.Errorf("bfcl row %d (%s) ground truth: %w", i, r.ID, err)
		}
		rs = append(rs, rec{id: r.ID, msgs: r.Question[0], fn: fn, target: bfclTarget{Function: name, Arguments: args}, gt: r.GroundTruth[0]})
	}
	out := make([]Sample, 0, len(rs))
	for _, r := range rs {
		var w jw
		w.raw(`[{"type":"function","function":{"name":`)
		name, _ := r.fn.vals["name"].(string)
		w.str(name)
		w.raw(`,"description":`)
		desc, _ := r.fn.vals["description"].(string)
		w.str(desc)
		w.raw(`,"parameters":{"type":"object","properties":`)
		params, _ := r.fn.vals["parameters"].(*oobj)
		first := ""
		if ps, ok := params.vals["properties"].(*oobj); ok && params != nil {
			w.props(ps, "", u)
			for _, k := range u[""] {
				if _, ok := ps.vals[k]; ok {
					first = k
					break
				}
			}
		} else {
			w.raw("{}")
		}
		w.raw(`,"required":`)
		if req, ok := params.vals["required"]; ok && req != nil {
			w.value(req)
		} else {
			w.raw("[]")
		}
		w.raw(`,"additionalProperties":false}}}]`)
		t := r.target
		t.FirstProp = map[string]string{name: first}
		out = append(out, Sample{ID: r.id, Messages: r.msgs, Tools: json.RawMessage(w.b.Bytes()), Target: r.gt, data: t})
	}
	return out, nil
}

func (b *bfcl) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	recs, err := dataset.Records(ctx, src, BFCLFile)
	if err != nil {
		return nil, err
	}
	return BuildBFCLSamples(recs)
}

// parseToolArguments is inspect's parsing of a tool call's arguments string.
func parseToolArguments(args, fn string, firstProp map[string]string) map[string]any {
	s := pytext.Strip(args)
	if strings.HasPrefix(s, "{") {
		v, err := decodeJSONPy(s)
		if m, ok := v.(map[string]any); ok && err == nil {
			return m
		}
		return map[string]any{}
	}
	if p := firstProp[fn]; p != "" {
		var y any
		if err := yaml.Unmarshal([]byte(args), &y); err == nil {
			return map[string]any{p: fromYAML(y)}
		}
	}
	return map[string]any{}
}

func (b *bfcl) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	t, ok := s.data.(bfclTarget)
	if !ok {
		return Scored{}, fmt.Errorf("bfcl sample %s was not loaded by this task", s.ID)
	}
	sc := Scored{ID: s.ID, Completion: pytext.StripThinkInspect(out.Content), Target: s.Target}
	var calls []string
	for _, c := range out.ToolCalls {
		calls = append(calls, c.Function.Name+"("+c.Function.Arguments+")")
	}
	sc.Extracted = strings.Join(calls, "; ")
	if len(out.ToolCalls) != 1 {
		return sc, nil
	}
	c := out.ToolCalls[0]
	args := parseToolArguments(c.Function.Arguments, c.Function.Name, t.FirstProp)
	sc.Score = boolScore(c.Function.Name == t.Function && pyEqual(map[string]any(args), map[string]any(t.Arguments), b.strict))
	return sc, nil
}

func (b *bfcl) Metrics(scored []Scored) map[string]any {
	m, _ := MeanStderr(scores(scored))
	return map[string]any{"accuracy": m}
}

// TargetArguments returns the parsed ground-truth call of a BFCL sample as
// JSON (for tests and replay files).
func TargetArguments(s Sample) (string, string, bool) {
	t, ok := s.data.(bfclTarget)
	if !ok {
		return "", "", false
	}
	return t.Function, pyJSON(t.Arguments), true
}
