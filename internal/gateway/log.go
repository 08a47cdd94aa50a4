package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Log file names inside Config.LogDir (the run directory's gateway/).
const (
	LLMLogFile    = "llm.jsonl"
	HubLogFile    = "hub.jsonl"
	EgressLogFile = "egress.jsonl"
	GradeLogFile  = "grade.jsonl"
)

// LLMRecord is one line of llm.jsonl: one request on the LLM route, written
// when its response has ended (or failed).
type LLMRecord struct {
	Time       string `json:"time"`     // RFC 3339, when the request arrived
	Provider   string `json:"provider"` // anthropic | openai | gemini
	Method     string `json:"method"`
	Path       string `json:"path"`                // the upstream path, without the query
	Model      string `json:"model,omitempty"`     // what the request asked for
	ServedBy   string `json:"served_by,omitempty"` // the model the response names, when it differs
	Stream     bool   `json:"stream,omitempty"`    // the response was server-sent events
	Status     int    `json:"status"`              // HTTP status returned to the agent
	Denied     bool   `json:"denied,omitempty"`    // refused by the gateway, never sent upstream
	Reason     string `json:"reason,omitempty"`    // why denied, or the upstream error
	InputTok   int64  `json:"input_tokens"`        // including cached and cache-write tokens
	OutputTok  int64  `json:"output_tokens"`       // including reasoning tokens
	CachedTok  int64  `json:"cached_input_tokens"` // read from a cache
	CacheWrTok int64  `json:"cache_write_input_tokens"`
	Reasoning  int64  `json:"reasoning_tokens"`
	// CostUSD is the cost at the price table's rates; null when the model
	// has no price or the response carried no usage.
	CostUSD   *float64 `json:"cost_usd"`
	ReqBytes  int64    `json:"request_bytes"`
	RespBytes int64    `json:"response_bytes"`
	// DurationMS is from the request's arrival to the response's last byte.
	DurationMS float64 `json:"duration_ms"`
	// FirstByteMS is from the request's arrival to the response's first
	// body byte (0 when none).
	FirstByteMS float64 `json:"first_byte_ms,omitempty"`
}

// HubRecord is one line of hub.jsonl: one request on the hub route, written
// when the response has ended. The first eight fields are the hub log format
// internal/audit reads (docs/AUDIT.md).
type HubRecord struct {
	Time     string `json:"time"`      // RFC 3339, when the request arrived
	Method   string `json:"method"`    // GET, HEAD, ...
	URL      string `json:"url"`       // the upstream URL asked for
	Repo     string `json:"repo"`      // ORG/NAME, "" when the URL names none
	RepoType string `json:"repo_type"` // model | dataset | space ("" with no repo)
	Revision string `json:"revision"`  // branch, tag or commit, "" if none
	Path     string `json:"path"`      // file inside the repo, "" for API/metadata calls
	Status   int    `json:"status"`    // HTTP status returned to the agent; 0 if none
	Bytes    int64  `json:"bytes"`     // response body bytes sent to the agent
	// Redirects are the URLs the gateway followed for this request (CDN).
	Redirects  []string `json:"redirects,omitempty"`
	Denied     bool     `json:"denied,omitempty"`
	Reason     string   `json:"reason,omitempty"` // the deny rule's reason, or the error
	Rule       string   `json:"rule,omitempty"`   // the deny rule that matched
	DurationMS float64  `json:"duration_ms"`
}

// EgressRecord is one line of egress.jsonl: one CONNECT tunnel or one plain
// HTTP request through the egress proxy, written when it has ended.
type EgressRecord struct {
	Time     string `json:"time"`   // RFC 3339, when the request arrived
	Method   string `json:"method"` // CONNECT, GET, ...
	Host     string `json:"host"`   // lower-cased, without the port
	Port     int    `json:"port"`
	URL      string `json:"url,omitempty"` // plain HTTP only
	Allowed  bool   `json:"allowed"`
	Rule     string `json:"rule"`             // the rule that decided, e.g. "allow *.github.com" or "default deny"
	Kind     string `json:"kind,omitempty"`   // the rule's host kind: llm (an LLM provider's API), hub, or ""
	Reason   string `json:"reason,omitempty"` // why denied, or the dial/proxy error
	Status   int    `json:"status"`           // HTTP status given to the client (200 for an open tunnel)
	BytesOut int64  `json:"bytes_out"`        // client to upstream
	BytesIn  int64  `json:"bytes_in"`         // upstream to client
	// DurationMS is from the request's arrival to the connection's end.
	DurationMS float64 `json:"duration_ms"`
}

// GradeRecord is one line of grade.jsonl: one request on the grading route.
// The response text is not kept, only its hash and length.
type GradeRecord struct {
	Time           string   `json:"time"`
	Benchmark      string   `json:"benchmark"`
	SampleID       string   `json:"sample_id"`
	ResponseSHA256 string   `json:"response_sha256"`
	ResponseBytes  int      `json:"response_bytes"`
	Status         int      `json:"status"`
	Score          *float64 `json:"score,omitempty"`
	Label          string   `json:"label,omitempty"`
	Error          string   `json:"error,omitempty"`
	DurationMS     float64  `json:"duration_ms"`
}

// MaxLogLine bounds one line a log reader accepts; a longer line is a
// *LineError and is skipped.
const MaxLogLine = 16 << 20

// LineError is a malformed log line: where it is and what is wrong. A
// LogReader returns it for one line and can go on with the next.
type LineError struct {
	Name string // the file (or stream) name
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// LogReader reads one of the gateway's JSON-lines logs as typed records,
// streaming, with no limit on the number of lines and MaxLogLine per line.
type LogReader[T any] struct {
	name string
	br   *bufio.Reader
	line int
	err  error
}

// NewLogReader reads records of type T from r; name is used in errors.
func NewLogReader[T any](r io.Reader, name string) *LogReader[T] {
	return &LogReader[T]{name: name, br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record and its line number. At the end it returns
// io.EOF. A malformed or over-long line returns a *LineError; the caller may
// call Next again to go on. Any other error (a read error) is final.
// Blank lines are skipped.
func (lr *LogReader[T]) Next() (T, int, error) {
	var zero T
	for {
		if lr.err != nil {
			return zero, lr.line, lr.err
		}
		b, tooLong, err := readLine(lr.br, MaxLogLine)
		if err != nil && !errors.Is(err, io.EOF) {
			lr.err = fmt.Errorf("read %s: %w", lr.name, err)
			return zero, lr.line, lr.err
		}
		if errors.Is(err, io.EOF) && len(b) == 0 && !tooLong {
			lr.err = io.EOF
			return zero, lr.line, io.EOF
		}
		if errors.Is(err, io.EOF) {
			lr.err = io.EOF // the last line had no newline: return it, then EOF
		}
		lr.line++
		if tooLong {
			return zero, lr.line, &LineError{lr.name, lr.line, fmt.Errorf("line longer than %d bytes", MaxLogLine)}
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var rec T
		if err := json.Unmarshal(b, &rec); err != nil {
			return zero, lr.line, &LineError{lr.name, lr.line, err}
		}
		return rec, lr.line, nil
	}
}

// readLine reads one line (without its newline) of at most max bytes; a
// longer line is consumed and reported with tooLong.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			line = nil
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
	}
}

// ReadLog calls fn for every record of the log at path, in order. A
// malformed line is passed to fn as a *LineError with a zero record; fn
// decides whether to stop (return an error) or go on (return nil). A
// missing file returns an error wrapping os.ErrNotExist.
func ReadLog[T any](path string, fn func(rec T, line int, lineErr error) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open gateway log: %w", err)
	}
	defer f.Close()
	lr := NewLogReader[T](f, path)
	for {
		rec, line, err := lr.Next()
		var le *LineError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &le):
			if err := fn(rec, line, le); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := fn(rec, line, nil); err != nil {
				return err
			}
		}
	}
}

// ReadHubLog calls fn for every line of a hub.jsonl (see ReadLog).
func ReadHubLog(path string, fn func(rec HubRecord, line int, lineErr error) error) error {
	return ReadLog(path, fn)
}

// ReadEgressLog calls fn for every line of an egress.jsonl (see ReadLog).
func ReadEgressLog(path string, fn func(rec EgressRecord, line int, lineErr error) error) error {
	return ReadLog(path, fn)
}

// ReadLLMLog calls fn for every line of an llm.jsonl (see ReadLog).
func ReadLLMLog(path string, fn func(rec LLMRecord, line int, lineErr error) error) error {
	return ReadLog(path, fn)
}

// ReadGradeLog calls fn for every line of a grade.jsonl (see ReadLog).
func ReadGradeLog(path string, fn func(rec GradeRecord, line int, lineErr error) error) error {
	return ReadLog(path, fn)
}

// logWriter appends JSON lines to one file from a goroutine of its own, so
// that no request waits for the disk; each batch of lines is written with
// one write and fsync'd.
type logWriter struct {
	f    *os.File
	ch   chan []byte
	done chan struct{}
	mu   sync.Mutex // guards err
	err  error
	// cmu guards closed: write holds it shared while it sends, close
	// exclusively, so no line is sent on a closed channel.
	cmu    sync.RWMutex
	closed bool
}

func openLog(dir, name string) (*logWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gateway log: %w", err)
	}
	w := &logWriter{f: f, ch: make(chan []byte, 1024), done: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *logWriter) run() {
	defer close(w.done)
	var buf []byte
	for b := range w.ch {
		buf = append(buf[:0], b...)
	more:
		for len(buf) < 1<<20 {
			select {
			case b, ok := <-w.ch:
				if !ok {
					break more
				}
				buf = append(buf, b...)
			default:
				break more
			}
		}
		_, err := w.f.Write(buf)
		if err == nil {
			err = w.f.Sync()
		}
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("write %s: %w", w.f.Name(), err)
			}
			w.mu.Unlock()
		}
	}
}

// write queues v as one JSON line. It may block when the disk is slower
// than the traffic (1024 lines queued).
func (w *logWriter) write(v any) {
	if w == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("encode log line: %w", err)
		}
		w.mu.Unlock()
		return
	}
	w.cmu.RLock()
	defer w.cmu.RUnlock()
	if w.closed {
		return
	}
	w.ch <- append(b, '\n')
}

// failed returns the first write error, if any.
func (w *logWriter) failed() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// close flushes every queued line and closes the file.
func (w *logWriter) close() error {
	if w == nil {
		return nil
	}
	w.cmu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
		<-w.done
		if err := w.f.Close(); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}
	w.cmu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
