// Package runevents is the typed event stream of a run: RUN_DIR/events.jsonl,
// one JSON object a line, appended by the harness as the stages run (stage
// started and ended, solve segment started and ended, heartbeat, limit hit,
// verdict, result recorded). The pipeline emits events to a Handler; the
// file Writer, the progress line and campaign triage consume them.
//
// The file is written by the harness only (the run directory is hidden from
// the agent), but readers still bound what they read: Read skips lines over
// MaxLine and reports lines that do not decode, never failing the whole
// stream for one bad line (a crash can cut the last line short).
package runevents

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Version is the schema version written in every event ("v").
const Version = 1

// Type names what happened.
type Type string

// Event types.
const (
	StageStarted   Type = "stage_started"   // Stage
	StageEnded     Type = "stage_ended"     // Stage, Status, Error or Reason
	SegmentStarted Type = "segment_started" // Segment, Kind, GPUs, BudgetS, RemainingS, Deadline
	SegmentEnded   Type = "segment_ended"   // Segment, EndReason, Limit, ExitCode, Signal, Error
	Heartbeat      Type = "heartbeat"       // Segment, RemainingS: the agent is still running
	LimitHit       Type = "limit_hit"       // Segment, Limit: the sandbox stopped the agent at a resource limit
	Reprompt       Type = "reprompt"        // Segment (the one that ended), RemainingS, WaitS
	Verdict        Type = "verdict"         // Verdict, Flags, Reason: the audit's outcome
	ResultRecorded Type = "result_recorded" // Verdict, Score: result.json is written
)

// Event is one line of events.jsonl. Which fields are set depends on Type
// (see the Type constants); the rest are omitted.
type Event struct {
	V    int       `json:"v"`
	Time time.Time `json:"time"`
	Type Type      `json:"type"`

	Stage  string `json:"stage,omitempty"`
	Status string `json:"status,omitempty"` // stage_ended: done, failed, skipped
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`

	Segment    int        `json:"segment,omitempty"` // 1-based solve segment
	Kind       string     `json:"kind,omitempty"`    // segment_started: start, resume, reprompt
	GPUs       []int      `json:"gpus,omitempty"`
	BudgetS    float64    `json:"budget_s,omitempty"`
	RemainingS *float64   `json:"remaining_s,omitempty"`
	Deadline   *time.Time `json:"deadline,omitempty"`
	WaitS      *float64   `json:"wait_s,omitempty"`

	EndReason string `json:"end_reason,omitempty"` // segment_ended: exited, deadline, signal, limit, harness_error, interrupted
	Limit     string `json:"limit,omitempty"`      // memory, pids, disk, files
	ExitCode  *int   `json:"exit_code,omitempty"`
	Signal    string `json:"signal,omitempty"`

	Verdict string   `json:"verdict,omitempty"`
	Flags   []string `json:"flags,omitempty"`
	Score   *float64 `json:"score,omitempty"`
}

// Durable reports whether the writer syncs the file after an event of type
// t: the transitions a crash must not lose. Starts and heartbeats are not
// synced (the next transition, or solve.json, carries them).
func (t Type) Durable() bool {
	switch t {
	case StageEnded, SegmentEnded, LimitHit, Verdict, ResultRecorded:
		return true
	}
	return false
}

// Handler consumes events. An error from Event is the handler's own
// failure; the emitter reports it and goes on (events never stop a run).
type Handler interface {
	Event(ev Event) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ev Event) error

// Event calls f.
func (f HandlerFunc) Event(ev Event) error { return f(ev) }

// Multi sends each event to every non-nil handler in order, and returns
// their errors joined.
func Multi(hs ...Handler) Handler {
	var keep []Handler
	for _, h := range hs {
		if h != nil {
			keep = append(keep, h)
		}
	}
	return multi(keep)
}

type multi []Handler

func (m multi) Event(ev Event) error {
	var errs []error
	for _, h := range m {
		if err := h.Event(ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Writer appends events to a file, one line each, safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// Open opens (creating it) the events file at path for appending. A link
// at path is refused. When the file's last line was cut short (a crash
// mid-write), a newline ends it first, so the next event starts a line of
// its own.
func Open(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open events file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open events file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open events file %s: not a regular file", path)
	}
	if n := fi.Size(); n > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, n-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("open events file: %w", err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return nil, fmt.Errorf("open events file: %w", err)
			}
		}
	}
	return &Writer{f: f, path: path}, nil
}

// Event appends ev as one line (one write(2) on an O_APPEND file, so lines
// of concurrent writers never interleave). V and a zero Time are filled in.
// Durable types are synced to disk.
func (w *Writer) Event(ev Event) error {
	ev.V = Version
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.Type, err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write event %s to %s: writer closed", ev.Type, w.path)
	}
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("write event %s to %s: %w", ev.Type, w.path, err)
	}
	if ev.Type.Durable() {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", w.path, err)
		}
	}
	return nil
}

// Close syncs and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

// MaxLine is the longest line Read decodes; longer lines are skipped.
const MaxLine = 64 << 10

// ErrLineTooLong is passed to Read's callback for a line over MaxLine.
var ErrLineTooLong = fmt.Errorf("event line longer than %d bytes", MaxLine)

// Read streams the events of r to fn with their 1-based line numbers. A
// line that does not decode, or is longer than MaxLine, is passed with a
// non-nil lineErr (and a zero Event) and the stream goes on; blank lines
// are skipped. An error returned by fn stops the stream and is returned.
// Memory use is bounded by MaxLine whatever the input.
func Read(r io.Reader, fn func(ev Event, line int, lineErr error) error) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var buf []byte
	line := 0
	for {
		buf = buf[:0]
		long := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !long {
				if len(buf)+len(chunk) > MaxLine+1 { // +1: the newline
					long, buf = true, buf[:0]
				} else {
					buf = append(buf, chunk...)
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if blank := len(bytes.TrimSpace(buf)) == 0; !blank || long {
			line++
			var ev Event
			var lineErr error
			if long {
				lineErr = ErrLineTooLong
			} else if derr := json.Unmarshal(bytes.TrimSpace(buf), &ev); derr != nil {
				lineErr, ev = fmt.Errorf("line %d: %w", line, derr), Event{}
			}
			if ferr := fn(ev, line, lineErr); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// ReadFile streams the events file at path (see Read). It returns an error
// wrapping os.ErrNotExist when there is none; a link or a file that is not
// regular is refused.
func ReadFile(path string, fn func(ev Event, line int, lineErr error) error) error {
	return ReadTail(path, -1, fn)
}

// ReadTail is ReadFile for the last max bytes of the file only (max < 0:
// all of it): the first, partial line of the tail is skipped, and line
// numbers count from the start of the tail.
func ReadTail(path string, max int64, fn func(ev Event, line int, lineErr error) error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read events %s: not a regular file", path)
	}
	var r io.Reader = f
	if max >= 0 && fi.Size() > max {
		start := fi.Size() - max
		// One byte before the tail says whether it starts a line.
		if _, err := f.Seek(start-1, io.SeekStart); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		br := bufio.NewReader(io.LimitReader(f, max+1))
		first, _ := br.ReadByte()
		if first != '\n' {
			for {
				_, err := br.ReadSlice('\n')
				if err == nil {
					break
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					return nil // no line starts in the tail
				}
			}
		}
		return Read(br, fn)
	}
	return Read(io.LimitReader(r, fi.Size()), fn)
}
