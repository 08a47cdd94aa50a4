package modelserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Stats counts what the server answered.
type Stats struct {
	Requests  int   `json:"requests"`   // every HTTP request
	Scripted  int   `json:"scripted"`   // replies that played a script turn
	Side      int   `json:"side"`       // side requests (no tools offered)
	ToolCalls int   `json:"tool_calls"` // tool calls served
	Usage     Usage `json:"usage"`      // tokens reported over all model replies, side ones included
	// ScriptedUsage is the tokens reported on scripted (non-side) replies.
	ScriptedUsage Usage `json:"scripted_usage"`
}

// Server is the scripted model server; it is an http.Handler.
type Server struct {
	script Script
	mu     sync.Mutex
	log    io.Writer
	stats  Stats
	seq    int
}

// New returns a server playing script (DefaultScript if nil), appending one
// JSON line per request to log (nil: no log).
func New(script *Script, log io.Writer) *Server {
	if script == nil {
		script = DefaultScript()
	}
	s := &Server{script: *script, log: log}
	s.script.defaults()
	return s
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// reply is what the script decided for one request.
type reply struct {
	Side  bool           `json:"side"`
	Index int            `json:"turn"`
	Turn  Turn           `json:"-"`
	Tool  string         `json:"tool,omitempty"` // the client's shell tool name when calling one
	Args  map[string]any `json:"args,omitempty"`
	Text  string         `json:"text,omitempty"`
	JSON  bool           `json:"-"` // the client asked for a JSON answer
}

// logEntry is one line of the request log.
type logEntry struct {
	Time    string            `json:"t"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body,omitempty"`
	BodyErr string            `json:"body_error,omitempty"`
	API     string            `json:"api,omitempty"`
	Reply   *reply            `json:"reply,omitempty"`
	Status  int               `json:"status"`
}

var secretHeaders = map[string]bool{"authorization": true, "x-api-key": true, "x-goog-api-key": true, "api-key": true}

func (s *Server) record(r *http.Request, body []byte, api string, rep *reply, status int, bodyErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	if rep != nil {
		s.stats.Usage.InputTokens += s.script.Usage.InputTokens
		s.stats.Usage.OutputTokens += s.script.Usage.OutputTokens
		if rep.Side {
			s.stats.Side++
		} else {
			s.stats.Scripted++
			s.stats.ScriptedUsage.InputTokens += s.script.Usage.InputTokens
			s.stats.ScriptedUsage.OutputTokens += s.script.Usage.OutputTokens
			if rep.Tool != "" {
				s.stats.ToolCalls++
			}
		}
	}
	if s.log == nil {
		return
	}
	h := map[string]string{}
	for k, v := range r.Header {
		val := strings.Join(v, ", ")
		if secretHeaders[strings.ToLower(k)] {
			val = "(redacted)"
		}
		h[k] = val
	}
	e := logEntry{Time: time.Now().UTC().Format(time.RFC3339Nano), Method: r.Method, Path: r.URL.RequestURI(),
		Headers: h, API: api, Reply: rep, Status: status}
	if json.Valid(body) {
		e.Body = body
	}
	if bodyErr != nil {
		e.BodyErr = bodyErr.Error()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	s.log.Write(append(b, '\n'))
}

var geminiPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/models/([^/:]+):(\w+)$`) })

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.record(r, nil, "", nil, http.StatusOK, nil)
		switch {
		case strings.HasSuffix(p, "/models") && strings.Contains(p, "v1beta"):
			writeJSON(w, 200, map[string]any{"models": []any{map[string]any{"name": "models/scripted-model",
				"supportedGenerationMethods": []string{"generateContent", "streamGenerateContent"}}}})
		case strings.HasSuffix(p, "/models"):
			writeJSON(w, 200, map[string]any{"object": "list", "data": []any{map[string]any{"id": "scripted-model",
				"object": "model", "owned_by": "ptb"}}})
		default:
			writeJSON(w, 200, map[string]any{"ok": true})
		}
		return
	}
	if r.Method != http.MethodPost {
		s.record(r, nil, "", nil, http.StatusMethodNotAllowed, nil)
		writeJSON(w, http.StatusMethodNotAllowed, apiError("method not allowed"))
		return
	}
	raw, err := readBody(r)
	var body map[string]any
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		err = dec.Decode(&body)
	}
	if err != nil {
		s.record(r, raw, "", nil, http.StatusBadRequest, err)
		writeJSON(w, http.StatusBadRequest, apiError("bad request body: "+err.Error()))
		return
	}
	switch {
	case strings.HasSuffix(p, "/messages/count_tokens"):
		s.record(r, raw, "anthropic.count_tokens", nil, 200, nil)
		writeJSON(w, 200, map[string]any{"input_tokens": s.script.Usage.InputTokens})
	case strings.HasSuffix(p, "/messages"):
		rep := s.decide(anthropicTools(body), anthropicResults(body), anthropicWantsJSON(body))
		s.record(r, raw, "anthropic.messages", &rep, 200, nil)
		s.anthropic(w, body, rep)
	case strings.HasSuffix(p, "/responses"):
		rep := s.decide(responsesTools(body), responsesResults(body), false)
		s.record(r, raw, "openai.responses", &rep, 200, nil)
		s.responses(w, body, rep)
	case strings.HasSuffix(p, "/chat/completions"):
		rep := s.decide(chatTools(body), chatResults(body), false)
		s.record(r, raw, "openai.chat", &rep, 200, nil)
		s.chat(w, body, rep)
	default:
		m := geminiPath().FindStringSubmatch(p)
		if m == nil {
			s.record(r, raw, "", nil, http.StatusNotFound, nil)
			writeJSON(w, http.StatusNotFound, apiError("unknown path "+p))
			return
		}
		if m[2] == "countTokens" {
			s.record(r, raw, "gemini.countTokens", nil, 200, nil)
			writeJSON(w, 200, map[string]any{"totalTokens": s.script.Usage.InputTokens})
			return
		}
		rep := s.decide(geminiTools(body), geminiResults(body), geminiWantsJSON(body))
		s.record(r, raw, "gemini."+m[2], &rep, 200, nil)
		s.gemini(w, m[1], m[2] != "generateContent", rep)
	}
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	return io.ReadAll(io.LimitReader(rd, 256<<20))
}

func apiError(msg string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// shellTools are the CLIs' shell tool names, in preference order.
var shellTools = []string{"Bash", "bash", "run_shell_command", "shell", "shell_command", "exec_command"}

// decide picks the reply: a side text when no tools are offered, else the
// script turn for the number of tool results in the conversation.
func (s *Server) decide(tools map[string]any, results int, wantJSON bool) reply {
	if len(tools) == 0 || wantJSON {
		rep := reply{Side: true, Index: -1, Text: s.script.SideText, JSON: wantJSON}
		if wantJSON {
			b, _ := json.Marshal(map[string]any{"title": s.script.SideText, "reasoning": "scripted",
				"next_speaker": "user", "model_choice": "flash", "confidence": 0.0})
			rep.Text = string(b)
		}
		rep.Turn = Turn{Text: rep.Text}
		return rep
	}
	t, i := s.script.turn(results)
	rep := reply{Index: i, Turn: t, Text: t.Text}
	if t.Shell != "" {
		for _, name := range shellTools {
			if schema, ok := tools[name]; ok {
				rep.Tool, rep.Args = name, shellArgs(name, schema, t)
				break
			}
		}
		if rep.Tool == "" && rep.Text == "" {
			rep.Text = "(the scripted turn calls a shell tool, but the client offered none)"
			rep.Turn.Text = rep.Text
		}
	}
	return rep
}

// shellArgs shapes the shell call's arguments to the tool's JSON schema.
func shellArgs(name string, schema any, t Turn) map[string]any {
	props, _ := schema.(map[string]any)
	props, _ = props["properties"].(map[string]any)
	switch name {
	case "shell":
		if c, ok := props["command"].(map[string]any); ok && c["type"] == "array" {
			return map[string]any{"command": []string{"bash", "-lc", t.Shell}}
		}
		return map[string]any{"command": t.Shell}
	case "exec_command":
		if _, ok := props["command"]; ok && props["cmd"] == nil {
			return map[string]any{"command": t.Shell}
		}
		return map[string]any{"cmd": t.Shell}
	}
	args := map[string]any{"command": t.Shell}
	if _, ok := props["description"]; ok {
		d := t.Description
		if d == "" {
			d = "run a scripted command"
		}
		args["description"] = d
	}
	return args
}

// split2 streams text as two deltas so clients' delta handling is exercised.
func split2(s string) []string {
	if len(s) < 2 {
		return []string{s}
	}
	h := len(s) / 2
	for h > 0 && !isRuneStart(s[h]) {
		h--
	}
	if h == 0 {
		return []string{s}
	}
	return []string{s[:h], s[h:]}
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// sse writes server-sent events and flushes after each.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

func (s *sse) send(event string, data any) {
	var b []byte
	if str, ok := data.(string); ok {
		b = []byte(str)
	} else {
		b, _ = json.Marshal(data)
	}
	if event != "" {
		fmt.Fprintf(s.w, "event: %s\n", event)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	if s.f != nil {
		s.f.Flush()
	}
}

// newID returns a fresh id with prefix.
func (s *Server) newID(prefix string) string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("%s%08x%04x", prefix, uint32(time.Now().UnixNano()), n)
}
