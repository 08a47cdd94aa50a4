package trace

import (
	"context"
	"io"
	"strings"
	"time"
)

// Summary is what a trace says about a solve: the figures result.json and
// `ptb trace summary` report.
type Summary struct {
	Agent        string   `json:"agent"`
	Model        string   `json:"model"` // priced model: as given, else from the trace
	ToolCalls    int      `json:"tool_calls"`
	FinalMessage string   `json:"final_message"`
	Usage        Usage    `json:"usage"`
	CostUSD      *float64 `json:"cost_usd"`     // ptb's figure from the price table; null if the model has no price
	CLICostUSD   *float64 `json:"cli_cost_usd"` // the CLI's own figure, when it reports one
	PriceTable   string   `json:"price_table"`  // the price table's version
	Error        *string  `json:"error"`        // the last error not followed by a successful turn end
	EarlyStop    *bool    `json:"early_stop"`   // set by the caller from the run record (see EarlyStop)
	Events       int      `json:"events"`
	Unknown      int      `json:"unknown_events"`
	NonJSON      int      `json:"non_json_lines"`
	Lines        int      `json:"lines"`
}

// EarlyStopMargin is how much time must be left at exit for a stop to count
// as early (the paper's reprompt threshold).
const EarlyStopMargin = 30 * time.Minute

// EarlyStop reports whether an agent that ended at ended stopped early: more
// than EarlyStopMargin before deadline.
func EarlyStop(deadline, ended time.Time) bool {
	return deadline.Sub(ended) > EarlyStopMargin
}

// Summarizer is a Handler that accumulates a Summary.
type Summarizer struct {
	s        Summary
	usageN   int
	cliCost  float64
	cliCostN int
	model    string
	final    []byte // the last final message (hasFinal)
	hasFinal bool
	lastText []byte // the last assistant message, its deltas joined
	textOpen bool
	err      []byte // the last error not followed by a final (hasErr)
	hasErr   bool
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer { return &Summarizer{} }

// Event implements Handler.
func (m *Summarizer) Event(ev *Event) error {
	m.s.Events++
	if ev.Line > m.s.Lines {
		m.s.Lines = ev.Line
	}
	if m.s.Agent == "" {
		m.s.Agent = ev.Agent
	}
	textOpen := m.textOpen
	m.textOpen = false
	switch ev.Kind {
	case KindSession:
		if ev.Session != nil && ev.Session.Model != "" && ev.Session.Model != m.model {
			m.model = strings.Clone(ev.Session.Model) // not kept: see keepsNothing
		}
	case KindText:
		if !(ev.Delta && textOpen) {
			m.lastText = m.lastText[:0]
		}
		m.lastText = append(m.lastText, ev.Text...)
		m.textOpen = true
	case KindToolCall:
		m.s.ToolCalls++
	case KindUsage:
		if ev.Usage != nil {
			m.s.Usage.Add(*ev.Usage)
			m.usageN++
		}
		if ev.CLICostUSD != nil {
			m.cliCost += *ev.CLICostUSD
			m.cliCostN++
		}
	case KindFinal:
		m.final, m.hasFinal = append(m.final[:0], ev.Text...), true
		m.hasErr = false
	case KindError:
		t := ev.Text
		if t == "" {
			t = "error"
		}
		m.err, m.hasErr = append(m.err[:0], t...), true
	case KindUnknown:
		m.s.Unknown++
	}
	return nil
}

// keepsNothing: the Summarizer copies what it keeps of an event (texts into
// its own buffers, the model cloned), so Stream may reuse the memory of
// event values.
func (*Summarizer) keepsNothing() {}

// NonJSON implements Handler.
func (m *Summarizer) NonJSON(line int, raw []byte) error {
	m.s.NonJSON++
	if line > m.s.Lines {
		m.s.Lines = line
	}
	return nil
}

// Summary returns the summary so far, priced for model (the trace's own
// model when "") with prices (no cost when nil).
func (m *Summarizer) Summary(model string, prices *PriceTable) *Summary {
	s := m.s
	switch {
	case m.hasFinal && len(m.final) > 0:
		s.FinalMessage = string(m.final)
	default:
		s.FinalMessage = string(m.lastText)
	}
	if model == "" {
		model = m.model
	}
	s.Model = model
	if m.cliCostN > 0 {
		c := m.cliCost
		s.CLICostUSD = &c
	}
	if prices != nil {
		s.PriceTable = prices.Version
		s.CostUSD = prices.Cost(model, s.Usage)
	}
	if m.hasErr {
		e := string(m.err)
		s.Error = &e
	}
	if s.Events == 0 {
		msg := "the trace has no events: the agent printed nothing (an unreachable endpoint makes some CLIs hang silently)"
		s.Error = &msg
	}
	return &s
}

// Summarize reads a whole trace and summarizes it. agent "" means detect it;
// model "" means the model named in the trace; prices nil means no cost.
func Summarize(r io.Reader, agent string, model string, prices *PriceTable) (*Summary, error) {
	m := NewSummarizer()
	used, err := Stream(context.Background(), r, agent, m)
	if err != nil {
		return nil, err
	}
	s := m.Summary(model, prices)
	s.Agent = used
	return s, nil
}

// Tee returns a Handler that passes everything to each of hs in order.
func Tee(hs ...Handler) Handler { return tee(hs) }

type tee []Handler

func (t tee) Event(ev *Event) error {
	for _, h := range t {
		if err := h.Event(ev); err != nil {
			return err
		}
	}
	return nil
}

func (t tee) NonJSON(line int, raw []byte) error {
	for _, h := range t {
		if err := h.NonJSON(line, raw); err != nil {
			return err
		}
	}
	return nil
}
