// Package pyexec runs generated Python programs (HumanEval's) through a
// small pool of long-lived sandboxes. Each sandbox runs a worker (`ptb
// humaneval-worker`, Serve) that takes programs over its stdin and runs each
// as a fresh interpreter process in fresh private directories, in new user,
// pid and ipc namespaces of its own, under the original's per-program
// timeout and output bound; after each program everything the program could
// write is emptied, so the next program finds nothing of it. Starting a
// sandbox (bubblewrap, a control group, a uid slot) is paid once per worker
// instead of once per program.
package pyexec

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// WorkerCommand is the hidden ptb subcommand that runs Serve.
const WorkerCommand = "humaneval-worker"

// maxFrame bounds one message in either direction: a program's stdout is
// at most OutputLimit (10 MiB) and travels base64-encoded in JSON.
const maxFrame = 32 << 20

// Config is the worker's first message: how to run programs.
type Config struct {
	// Python is the interpreter (a path valid where the worker runs).
	Python string `json:"python"`
	// Env is the programs' environment; HOME and TMPDIR are added per
	// program.
	Env []string `json:"env"`
	// Work, Home and Tmp are where each program's working directory, HOME
	// and TMPDIR are made afresh.
	Work string `json:"work"`
	Home string `json:"home"`
	Tmp  string `json:"tmp"`
	// Scratch are the directories everything in which is removed after
	// each program: every place the program could write.
	Scratch []string `json:"scratch"`
	// Guard are directories a program may be able to write to but that
	// hold what the sandbox needs (mount points in /tmp, /dev, /run):
	// what is new in them after a program, on their own file system, is
	// removed.
	Guard []string `json:"guard,omitempty"`
	// Isolate runs each program in new user, pid and ipc namespaces: its
	// processes die with it and it cannot see or signal the worker.
	Isolate bool `json:"isolate"`
	// OutputLimit bounds what is kept of a program's stdout; a program
	// that writes more (stdout and stderr together) is reported as
	// exceeding it.
	OutputLimit int `json:"output_limit"`
}

// request is one program.
type request struct {
	Program string `json:"program"`
	Timeout int64  `json:"timeout_ns"`
}

// Result is how one program ended.
type Result struct {
	Code     int    `json:"code"`             // exit status; -1 when a signal ended it
	Signal   string `json:"signal,omitempty"` // the signal that ended it
	TimedOut bool   `json:"timed_out,omitempty"`
	// OutputExceeded: the program wrote more than the output limit.
	OutputExceeded bool   `json:"output_exceeded,omitempty"`
	Stdout         []byte `json:"stdout,omitempty"` // up to the output limit
	// Limit names the sandbox limit (memory, pids, disk, ...) whose breach
	// ended the program with its sandbox; "" when none did.
	Limit string `json:"limit,omitempty"`
	// Duration is how long the program ran.
	Duration time.Duration `json:"duration_ns"`
}

// Passed reports whether the program exited with status 0 in time.
func (r Result) Passed() bool { return !r.TimedOut && r.Limit == "" && r.Code == 0 && r.Signal == "" }

// response is the worker's answer to a request (or, with Ready, to the
// config).
type response struct {
	Result
	Ready bool `json:"ready,omitempty"`
	// Error says the worker could not run the program (a setup failure);
	// the harness treats it as its own error.
	Error string `json:"error,omitempty"`
	// Retire says the worker cannot run another program (it could not
	// empty what the last one left) and is exiting.
	Retire bool `json:"retire,omitempty"`
}

// writeFrame writes v as a 4-byte big-endian length and its JSON.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("message of %d bytes exceeds %d", len(b), maxFrame)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame into v.
func readFrame(r io.Reader, v any) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > maxFrame {
		return fmt.Errorf("message of %d bytes exceeds %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}
