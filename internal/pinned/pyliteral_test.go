package pinned

import (
	"strings"
	"testing"
)

// The expected values are what CPython 3.11 gives for the same source
// (ast.literal_eval of the assigned expression, then .strip() where the
// source calls it); see the comment on each case.
func TestLiteralExtract(t *testing.T) {
	cases := []struct {
		name string
		src  string
		lit  Literal
		want string
	}{
		{"plain", "X = 'a'\n", Literal{Var: "X"}, "a"},
		{"double", `X = "a'b"` + "\n", Literal{Var: "X"}, "a'b"},
		{"triple with newlines", "X = \"\"\"\nline 1\n  line \"2\"\n\"\"\"\n", Literal{Var: "X"}, "\nline 1\n  line \"2\"\n"},
		{"triple strip", "X = \"\"\"\n  body\n\n\"\"\".strip()\nY = 1\n", Literal{Var: "X"}, "body"},
		{"implicit concatenation in parens", "X = (\n    \"ab\"  # comment\n    'cd'\n    \"\"\"ef\"\"\"\n)\n", Literal{Var: "X"}, "abcdef"},
		{"escapes", `X = "t\tn\nq\"s\\b\x41\u00e9\U0001F600\101\q"` + "\n", Literal{Var: "X"}, "t\tn\nq\"s\\bAé😀A\\q"},
		{"line continuation in string", "X = \"ab\\\ncd\"\n", Literal{Var: "X"}, "abcd"},
		{"raw", `X = r"a\nb"` + "\n", Literal{Var: "X"}, `a\nb`},
		{"dict descent past names and nesting", "A = 'x'\nD = {\n  \"k1\": {\"baseline\": \"m\", \"system_prompt\": A},\n  \"k2\": {\"baseline\": [1, (2, 3)], \"system_prompt\": \"the\\n\" \"prompt\"},\n  \"k3\": {\"system_prompt\": A},\n}\n", Literal{Var: "D", Keys: []string{"k2", "system_prompt"}}, "the\nprompt"},
		{"strip python whitespace", "X = '\\x1c\\xa0 a \\u3000\\n'.strip()\n", Literal{Var: "X"}, "a"},
		{"not a prefix match", "XY = 'no'\nX = 'yes'\n", Literal{Var: "X"}, "yes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.lit.Extract([]byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestLiteralExtractRefuses(t *testing.T) {
	cases := []struct {
		name, src string
		lit       Literal
		want      string
	}{
		{"name", "A = 'x'\nX = A\n", Literal{Var: "X"}, "not a literal"},
		{"name in dict path", "A = 'x'\nD = {'k': {'p': A}}\n", Literal{Var: "D", Keys: []string{"k", "p"}}, "not a literal"},
		{"f-string", "X = f'{1}'\n", Literal{Var: "X"}, "f-string"},
		{"bytes", "X = b'a'\n", Literal{Var: "X"}, "bytes"},
		{"other method", "X = 'a'.upper()\n", Literal{Var: "X"}, "only .strip()"},
		{"concatenation operator", "X = 'a' + 'b'\n", Literal{Var: "X"}, ""},
		{"missing key", "D = {'k': 'v'}\n", Literal{Var: "D", Keys: []string{"z"}}, "no key \"z\""},
		{"missing var", "Y = 'v'\n", Literal{Var: "X"}, "no module-level assignment"},
		{"unterminated", "X = \"\"\"abc\n", Literal{Var: "X"}, "unterminated"},
		{"assigned twice", "X = 'a'\nX = 'b'\n", Literal{Var: "X"}, "more than once"},
		{"bad escape", `X = "\x4"` + "\n", Literal{Var: "X"}, "escape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.lit.Extract([]byte(c.src))
			if err == nil {
				if c.want == "" {
					// 'a' + 'b': the value ends at the operator; it must not
					// silently be "a" either.
					t.Fatalf("extracted %q from an expression", got)
				}
				t.Fatalf("extracted %q, want an error mentioning %q", got, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}
