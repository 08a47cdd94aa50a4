package result

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// A validator for result.json's JSON Schema (draft 2020-12), limited to the
// keywords schema.json uses. It replaces santhosh-tekuri/jsonschema in the
// binary: that library compiles the metaschemas of five drafts in its
// package init (~13 ms CPU, 21,000 allocations, 1.7 MB and ~530 page faults
// at the start of every ptb command, whether or not it validates). The
// library remains the reference: TestSchemaMatchesJSONSchemaLibrary runs
// both on valid records and on thousands of random mutations and requires
// the same verdict and the same error lines.
//
// Semantics and messages follow the library's (v6) validator: the order of
// the checks (type, const, enum and format end the checks of a value;
// $ref, then the checks by type, then oneOf), the error tree (several
// errors of one value grouped under "validation failed", a $ref with one
// cause shown as its cause) and each message, numbers printed by an English
// message.Printer. Two differences, neither in a verdict: the first line
// names the schema by its $id instead of a file: URL made from the working
// directory, and an object's properties are checked in sorted order (the
// library's order is a map's, so its order of sibling errors varies).
// A keyword the validator does not know is an error when the schema is
// compiled (TestSchemaCompiles), so schema.json cannot silently outgrow it.

// schemaNode is one compiled (sub)schema.
type schemaNode struct {
	types       jsonTypes
	constVal    any
	hasConst    bool
	enum        []any
	enumTypes   jsonTypes
	format      string
	ref         string
	refNode     *schemaNode
	required    []string
	props       map[string]*schemaNode
	patterns    []patternProp
	noAdditions bool
	items       *schemaNode
	minItems    *int
	unique      bool
	minLength   *int
	minimum     *big.Rat
	maximum     *big.Rat
	exclMinimum *big.Rat
	oneOf       []*schemaNode
}

type patternProp struct {
	re   *regexp.Regexp
	node *schemaNode
}

// jsonTypes is a set of JSON types, in the library's order.
type jsonTypes uint8

const (
	tNull jsonTypes = 1 << iota
	tBoolean
	tNumber
	tInteger
	tString
	tArray
	tObject
)

var typeNames = []string{"null", "boolean", "number", "integer", "string", "array", "object"}

func typeOfName(s string) jsonTypes {
	for i, n := range typeNames {
		if n == s {
			return 1 << i
		}
	}
	return 0
}

func (t jsonTypes) names() []string {
	var out []string
	for i, n := range typeNames {
		if t&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// typeOf is the JSON type of a decoded value (numbers are json.Number).
func typeOf(v any) jsonTypes {
	switch v.(type) {
	case nil:
		return tNull
	case bool:
		return tBoolean
	case json.Number:
		return tNumber
	case string:
		return tString
	case []any:
		return tArray
	case map[string]any:
		return tObject
	}
	return 0
}

// schemaDoc is a compiled schema with its $id.
type schemaDoc struct {
	id   string
	root *schemaNode
}

// decodeJSON decodes one JSON document, numbers as json.Number, and
// nothing after it (as the library's UnmarshalJSON).
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid character after top-level value")
	}
	return v, nil
}

// compileSchema compiles a schema document.
func compileSchema(b []byte) (*schemaDoc, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the schema is not an object")
	}
	c := &schemaCompiler{top: top, refs: map[string]*schemaNode{}}
	root, err := c.node(top, "#")
	if err != nil {
		return nil, err
	}
	id, _ := top["$id"].(string)
	return &schemaDoc{id: id, root: root}, nil
}

type schemaCompiler struct {
	top  map[string]any
	refs map[string]*schemaNode
}

func (c *schemaCompiler) node(v any, at string) (*schemaNode, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: a schema must be an object", at)
	}
	n := &schemaNode{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv := m[k]
		loc := at + "/" + k
		var err error
		switch k {
		case "$schema", "$id", "title", "description":
			if at != "#" && k != "title" && k != "description" {
				err = fmt.Errorf("%s: only the root may have %s", loc, k)
			}
		case "$defs":
			if at != "#" {
				err = fmt.Errorf("%s: $defs only at the root", loc)
			}
		case "type":
			switch t := kv.(type) {
			case string:
				n.types = typeOfName(t)
			case []any:
				for _, x := range t {
					s, _ := x.(string)
					n.types |= typeOfName(s)
				}
			}
			if n.types == 0 {
				err = fmt.Errorf("%s: unknown type %v", loc, kv)
			}
		case "const":
			n.constVal, n.hasConst = kv, true
		case "enum":
			xs, ok := kv.([]any)
			if !ok {
				err = fmt.Errorf("%s: want an array", loc)
			}
			n.enum = xs
			for _, x := range xs {
				n.enumTypes |= typeOf(x)
			}
		case "format":
			n.format, _ = kv.(string)
			if n.format != "date-time" {
				err = fmt.Errorf("%s: format %v is not supported (only date-time)", loc, kv)
			}
		case "$ref":
			n.ref, _ = kv.(string)
			n.refNode, err = c.resolve(n.ref)
		case "required":
			xs, _ := kv.([]any)
			for _, x := range xs {
				s, ok := x.(string)
				if !ok {
					err = fmt.Errorf("%s: want strings", loc)
				}
				n.required = append(n.required, s)
			}
		case "properties", "patternProperties":
			pm, ok := kv.(map[string]any)
			if !ok {
				err = fmt.Errorf("%s: want an object", loc)
				break
			}
			names := make([]string, 0, len(pm))
			for p := range pm {
				names = append(names, p)
			}
			slices.Sort(names)
			for _, p := range names {
				sub, e := c.node(pm[p], loc+"/"+p)
				if e != nil {
					return nil, e
				}
				if k == "properties" {
					if n.props == nil {
						n.props = map[string]*schemaNode{}
					}
					n.props[p] = sub
					continue
				}
				re, e := regexp.Compile(p)
				if e != nil {
					return nil, fmt.Errorf("%s: %w", loc, e)
				}
				n.patterns = append(n.patterns, patternProp{re: re, node: sub})
			}
		case "additionalProperties":
			if b, ok := kv.(bool); !ok || b {
				err = fmt.Errorf("%s: only false is supported", loc)
			}
			n.noAdditions = true
		case "items":
			n.items, err = c.node(kv, loc)
		case "minItems":
			n.minItems, err = schemaInt(kv, loc)
		case "minLength":
			n.minLength, err = schemaInt(kv, loc)
		case "uniqueItems":
			n.unique, _ = kv.(bool)
		case "minimum":
			n.minimum, err = schemaRat(kv, loc)
		case "maximum":
			n.maximum, err = schemaRat(kv, loc)
		case "exclusiveMinimum":
			n.exclMinimum, err = schemaRat(kv, loc)
		case "oneOf":
			xs, _ := kv.([]any)
			for i, x := range xs {
				sub, e := c.node(x, loc+"/"+strconv.Itoa(i))
				if e != nil {
					return nil, e
				}
				n.oneOf = append(n.oneOf, sub)
			}
		default:
			err = fmt.Errorf("%s: keyword %s is not supported by ptb's result validator (internal/result/schema.go)", loc, k)
		}
		if err != nil {
			return nil, err
		}
	}
	return n, nil
}

// resolve compiles the target of a local $ref ("#/$defs/NAME").
func (c *schemaCompiler) resolve(ref string) (*schemaNode, error) {
	if n, ok := c.refs[ref]; ok {
		return n, nil
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	defs, _ := c.top["$defs"].(map[string]any)
	if !ok || defs[name] == nil {
		return nil, fmt.Errorf("$ref %q: only #/$defs/NAME of this schema is supported", ref)
	}
	n, err := c.node(defs[name], ref)
	if err != nil {
		return nil, err
	}
	c.refs[ref] = n
	return n, nil
}

func schemaInt(v any, loc string) (*int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, fmt.Errorf("%s: want an integer", loc)
	}
	i, err := strconv.Atoi(string(n))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	return &i, nil
}

func schemaRat(v any, loc string) (*big.Rat, error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, fmt.Errorf("%s: want a number", loc)
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return nil, fmt.Errorf("%s: bad number %s", loc, n)
	}
	return r, nil
}

// SchemaError is a value that does not validate: the tree of what failed,
// printed as the jsonschema library prints its ValidationError.
type SchemaError struct {
	// Schema is the schema's $id.
	Schema string
	Causes []*SchemaCause
}

// SchemaCause is one failure at an instance location.
type SchemaCause struct {
	Location []string // JSON pointer tokens, unescaped
	Message  string
	Causes   []*SchemaCause
	group    bool // several errors of one value (validation failed)
	ref      bool // a $ref's failure; shown as its cause when it has one
}

func (e *SchemaError) Error() string {
	var sb strings.Builder
	sb.WriteString("jsonschema validation failed with ")
	sb.WriteString(quote(e.Schema + "#"))
	for _, c := range e.Causes {
		c.display(&sb, 1)
	}
	return sb.String()
}

func (c *SchemaCause) display(sb *strings.Builder, indent int) {
	if !(c.ref && len(c.Causes) == 1) {
		sb.WriteByte('\n')
		for i := 0; i < indent-1; i++ {
			sb.WriteString("  ")
		}
		sb.WriteString("- at ")
		sb.WriteString(quote(jsonPointer(c.Location)))
		sb.WriteString(": ")
		sb.WriteString(c.Message)
		indent++
	}
	for _, x := range c.Causes {
		x.display(sb, indent)
	}
}

func jsonPointer(toks []string) string {
	var sb strings.Builder
	for _, t := range toks {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}

// quote single-quotes s as the library does.
func quote(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

// display shows a primitive value in a message.
func display(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case []any, map[string]any:
		return "value"
	}
	return fmt.Sprintf("%v", v)
}

// validate checks v against the compiled schema.
func (d *schemaDoc) validate(v any) error {
	vd := schemaValidator{p: message.NewPrinter(language.English)}
	err := vd.check(d.root, v, nil, false)
	if err == nil {
		return nil
	}
	causes := []*SchemaCause{err}
	if err.group {
		causes = err.Causes
	}
	return &SchemaError{Schema: d.id, Causes: causes}
}

type schemaValidator struct {
	p *message.Printer
}

// check validates v at loc against n and returns its error: nil, one
// failure, or several grouped. quiet: only whether it fails matters.
func (vd *schemaValidator) check(n *schemaNode, v any, loc []string, quiet bool) *SchemaCause {
	at := func(msg string, causes ...*SchemaCause) *SchemaCause {
		return &SchemaCause{Location: slices.Clone(loc), Message: msg, Causes: causes}
	}
	t := typeOf(v)
	if n.types != 0 {
		ok := n.types&t != 0 || n.types&tInteger != 0 && t == tNumber && isInteger(v)
		if !ok {
			return at(vd.p.Sprintf("got %s, want %s", t.names()[0], strings.Join(n.types.names(), " or ")))
		}
	}
	if n.hasConst && !jsonEqual(v, n.constVal) {
		switch n.constVal.(type) {
		case []any, map[string]any:
			return at(vd.p.Sprintf("'const' failed"))
		}
		return at(vd.p.Sprintf("value must be %s", display(n.constVal)))
	}
	if n.enum != nil {
		matched := false
		if n.enumTypes&t != 0 {
			for _, x := range n.enum {
				if jsonEqual(v, x) {
					matched = true
					break
				}
			}
		}
		if !matched {
			return at(vd.enumMessage(n.enum))
		}
	}
	if n.format == "date-time" {
		if s, ok := v.(string); ok {
			if err := validateDateTime(s); err != nil {
				return at(vd.p.Sprintf("%s is not valid %s: %v", display(v), n.format, err))
			}
		}
	}
	var errs []*SchemaCause
	if n.refNode != nil {
		if err := vd.check(n.refNode, v, loc, quiet); err != nil {
			r := at("validation failed")
			r.ref = true
			if err.group {
				r.Causes = err.Causes
			} else {
				r.Causes = []*SchemaCause{err}
			}
			errs = append(errs, r)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		if len(n.required) > 0 {
			var missing []string
			for _, p := range n.required {
				if _, ok := v[p]; !ok {
					missing = append(missing, p)
				}
			}
			switch len(missing) {
			case 0:
			case 1:
				errs = append(errs, at(vd.p.Sprintf("missing property %s", quote(missing[0]))))
			default:
				errs = append(errs, at(vd.p.Sprintf("missing properties %s", joinQuoted(missing))))
			}
		}
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		slices.Sort(names)
		var extra []string
		for _, k := range names {
			evaluated := false
			if sub, ok := n.props[k]; ok {
				evaluated = true
				if err := vd.check(sub, v[k], append(loc, k), quiet); err != nil {
					errs = append(errs, err)
				}
			}
			for _, pp := range n.patterns {
				if pp.re.MatchString(k) {
					evaluated = true
					if err := vd.check(pp.node, v[k], append(loc, k), quiet); err != nil {
						errs = append(errs, err)
					}
				}
			}
			if !evaluated && n.noAdditions {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			errs = append(errs, at(vd.p.Sprintf("additional properties %s not allowed", joinQuoted(extra))))
		}
	case []any:
		if n.minItems != nil && len(v) < *n.minItems {
			errs = append(errs, at(vd.p.Sprintf("minItems: got %d, want %d", len(v), *n.minItems)))
		}
		if n.unique && len(v) > 1 {
			if i, j := duplicates(v); i >= 0 {
				errs = append(errs, at(vd.p.Sprintf("items at %d and %d are equal", i, j)))
			}
		}
		if n.items != nil {
			for i, x := range v {
				if err := vd.check(n.items, x, append(loc, strconv.Itoa(i)), quiet); err != nil {
					errs = append(errs, err)
				}
			}
		}
	case string:
		if n.minLength != nil {
			if l := utf8.RuneCountInString(v); l < *n.minLength {
				errs = append(errs, at(vd.p.Sprintf("minLength: got %d, want %d", l, *n.minLength)))
			}
		}
	case json.Number:
		num, _ := new(big.Rat).SetString(string(v))
		if num == nil {
			num = new(big.Rat)
		}
		bound := func(name string, want *big.Rat) *SchemaCause {
			g, _ := num.Float64()
			w, _ := want.Float64()
			return at(vd.p.Sprintf("%s: got %v, want %v", name, g, w))
		}
		if n.minimum != nil && num.Cmp(n.minimum) < 0 {
			errs = append(errs, bound("minimum", n.minimum))
		}
		if n.maximum != nil && num.Cmp(n.maximum) > 0 {
			errs = append(errs, bound("maximum", n.maximum))
		}
		if n.exclMinimum != nil && num.Cmp(n.exclMinimum) <= 0 {
			errs = append(errs, bound("exclusiveMinimum", n.exclMinimum))
		}
	}
	if len(n.oneOf) > 0 && (len(errs) == 0 || !quiet) {
		matched := -1
		var causes []*SchemaCause
		for i, sub := range n.oneOf {
			err := vd.check(sub, v, loc, quiet || matched != -1)
			if err != nil {
				if matched == -1 {
					causes = append(causes, err)
				}
				continue
			}
			if matched == -1 {
				matched = i
				continue
			}
			errs = append(errs, at(vd.p.Sprintf("'oneOf' failed, subschemas %d, %d matched", matched, i)))
			break
		}
		if matched == -1 {
			errs = append(errs, at(vd.p.Sprintf("'oneOf' failed, none matched"), causes...))
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	g := at("validation failed", errs...)
	g.group = true
	return g
}

func (vd *schemaValidator) enumMessage(want []any) string {
	for _, x := range want {
		switch x.(type) {
		case []any, map[string]any:
			return vd.p.Sprintf("'enum' failed")
		}
	}
	if len(want) == 1 {
		return vd.p.Sprintf("value must be %s", display(want[0]))
	}
	ws := make([]string, len(want))
	for i, x := range want {
		ws[i] = display(x)
	}
	return vd.p.Sprintf("value must be one of %s", strings.Join(ws, ", "))
}

func joinQuoted(xs []string) string {
	qs := make([]string, len(xs))
	for i, x := range xs {
		qs[i] = quote(x)
	}
	return strings.Join(qs, ", ")
}

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	r, ok := new(big.Rat).SetString(string(n))
	return ok && r.IsInt()
}

// jsonEqual is JSON equality (numbers by value).
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, x := range a {
			y, ok := bm[k]
			if !ok || !jsonEqual(x, y) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], bs[i]) {
				return false
			}
		}
		return true
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && a == y
	case string:
		y, ok := b.(string)
		return ok && a == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		x1, ok1 := new(big.Rat).SetString(string(a))
		y1, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && x1.Cmp(y1) == 0
	}
	return false
}

// duplicates returns the first pair of equal items (j < i, i smallest, then
// j smallest), or -1, -1: pairwise for a few items, by canonical form for
// more (linear, as the library's hashing).
func duplicates(xs []any) (int, int) {
	if len(xs) <= 20 {
		for i := 1; i < len(xs); i++ {
			for j := 0; j < i; j++ {
				if jsonEqual(xs[i], xs[j]) {
					return j, i
				}
			}
		}
		return -1, -1
	}
	first := make(map[string]int, len(xs))
	var sb strings.Builder
	for i, x := range xs {
		sb.Reset()
		canonical(&sb, x)
		k := sb.String()
		if j, ok := first[k]; ok {
			return j, i
		}
		first[k] = i
	}
	return -1, -1
}

// canonical writes a form of v that is the same exactly for JSON-equal
// values (numbers by value, object keys sorted).
func canonical(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sb.WriteByte('{')
		for _, k := range keys {
			sb.WriteString(strconv.Quote(k))
			sb.WriteByte(':')
			canonical(sb, v[k])
			sb.WriteByte(',')
		}
		sb.WriteByte('}')
	case []any:
		sb.WriteByte('[')
		for _, x := range v {
			canonical(sb, x)
			sb.WriteByte(',')
		}
		sb.WriteByte(']')
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok {
			sb.WriteString("n" + r.RatString())
		} else {
			sb.WriteString("?" + string(v))
		}
	case string:
		sb.WriteString(strconv.Quote(v))
	case bool:
		sb.WriteString(strconv.FormatBool(v))
	case nil:
		sb.WriteString("null")
	}
}

// validateDateTime is RFC 3339 date-time as the library checks it, with
// its reasons.
func validateDateTime(s string) error {
	if len(s) < 20 {
		return fmt.Errorf("less than 20 characters long")
	}
	if s[10] != 't' && s[10] != 'T' {
		return fmt.Errorf("11th character must be t or T")
	}
	if _, err := time.Parse("2006-01-02", s[:10]); err != nil {
		return fmt.Errorf("invalid date element: %v", err)
	}
	if err := validateTime(s[11:]); err != nil {
		return fmt.Errorf("invalid time element: %v", err)
	}
	return nil
}

func validateTime(str string) error {
	if len(str) < 9 {
		return fmt.Errorf("less than 9 characters long")
	}
	if str[2] != ':' || str[5] != ':' {
		return fmt.Errorf("missing colon in correct place")
	}
	var hms []int
	for _, tok := range strings.SplitN(str[:8], ":", 3) {
		i, err := strconv.Atoi(tok)
		if err != nil {
			return fmt.Errorf("invalid hour/min/sec")
		}
		if i < 0 {
			return fmt.Errorf("non-positive hour/min/sec")
		}
		hms = append(hms, i)
	}
	if len(hms) != 3 {
		return fmt.Errorf("missing hour/min/sec")
	}
	h, m, s := hms[0], hms[1], hms[2]
	if h > 23 || m > 59 || s > 60 {
		return fmt.Errorf("hour/min/sec out of range")
	}
	str = str[8:]
	if rem, ok := strings.CutPrefix(str, "."); ok {
		digits := 0
		for _, ch := range rem {
			if ch < '0' || ch > '9' {
				break
			}
			digits++
		}
		if digits == 0 {
			return fmt.Errorf("no digits in second fraction")
		}
		str = rem[digits:]
	}
	if str != "z" && str != "Z" {
		if len(str) != 6 {
			return fmt.Errorf("offset must be 6 characters long")
		}
		var sign int
		switch str[0] {
		case '+':
			sign = -1
		case '-':
			sign = +1
		default:
			return fmt.Errorf("offset must begin with plus/minus")
		}
		str = str[1:]
		if str[2] != ':' {
			return fmt.Errorf("missing colon in offset in correct place")
		}
		var zhm []int
		for _, tok := range strings.SplitN(str, ":", 2) {
			i, err := strconv.Atoi(tok)
			if err != nil {
				return fmt.Errorf("invalid hour/min in offset")
			}
			if i < 0 {
				return fmt.Errorf("non-positive hour/min in offset")
			}
			zhm = append(zhm, i)
		}
		zh, zm := zhm[0], zhm[1]
		if zh > 23 || zm > 59 {
			return fmt.Errorf("hour/min in offset out of range")
		}
		hm := (h*60 + m) + sign*(zh*60+zm)
		if hm < 0 {
			hm += 24 * 60
		}
		h, m = hm/60, hm%60
	}
	if s >= 60 && (h != 23 || m != 59) {
		return fmt.Errorf("invalid leap second")
	}
	return nil
}
