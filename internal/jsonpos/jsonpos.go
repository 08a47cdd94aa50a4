// Package jsonpos turns encoding/json errors into errors a user can act on:
// the file, then the line, column and byte offset where the input went
// wrong. Every parser of agent-written JSON uses it for its messages.
//
// It imports nothing from internal/.
package jsonpos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Offset returns the byte offset an encoding/json error points at, and
// false when it carries none.
func Offset(err error) (int64, bool) {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Offset, true
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Offset, true
	}
	return 0, false
}

// Error wraps err, from decoding data (the content of name), with where it
// happened: "name: line L, column C (byte B): err", B being the 0-based
// offset of the last byte the decoder read, plus base (data's own offset
// in the file, e.g. 8 for a safetensors header). Empty input says so; an
// error without a position is wrapped as "name: err".
func Error(name string, data []byte, base int64, err error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s: empty: want a JSON value: %w", name, err)
	}
	off, ok := Offset(err)
	if !ok {
		return fmt.Errorf("%s: %w", name, err)
	}
	pos := max(off-1, 0)
	line, col := LineCol(data, pos)
	return fmt.Errorf("%s: line %d, column %d (byte %d): %w", name, line, col, base+pos, err)
}

// LineCol returns the 1-based line and column of the byte at offset off in
// data (off is clamped to data).
func LineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}
