package trace

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

//go:embed prices.json
var defaultPrices []byte

// PriceTable maps model ids to USD prices per million tokens. It is versioned
// and overridable (LoadPrices); ptb computes cost from tokens with it rather
// than trusting a CLI's own figure.
type PriceTable struct {
	Version string  `json:"version"`
	Note    string  `json:"note,omitempty"`
	Models  []Price `json:"models"`
}

// Price is one model's (or model family's) price per million tokens.
type Price struct {
	// Match is a model id, or a prefix ending in "*". The longest match wins.
	Match       string   `json:"match"`
	Input       float64  `json:"input"`
	Output      float64  `json:"output"`
	CachedInput *float64 `json:"cached_input,omitempty"` // default: Input
	CacheWrite  *float64 `json:"cache_write,omitempty"`  // default: Input
	Source      string   `json:"source"`                 // where the figure comes from, and when
}

// DefaultPrices returns the embedded price table.
func DefaultPrices() *PriceTable {
	pt, err := LoadPrices(strings.NewReader(string(defaultPrices)))
	if err != nil {
		panic(fmt.Sprintf("embedded prices.json: %v", err))
	}
	return pt
}

// LoadPrices reads a price table in the format of the embedded prices.json.
func LoadPrices(r io.Reader) (*PriceTable, error) {
	var pt PriceTable
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pt); err != nil {
		return nil, fmt.Errorf("decode price table: %w", err)
	}
	if pt.Version == "" {
		return nil, fmt.Errorf("decode price table: missing \"version\"")
	}
	for i, p := range pt.Models {
		if p.Match == "" || p.Input < 0 || p.Output < 0 {
			return nil, fmt.Errorf("price table entry %d: need a \"match\" and non-negative prices", i)
		}
	}
	return &pt, nil
}

// Lookup returns the price for model, or nil when the table has none. A
// provider prefix ("anthropic/claude-...", "models/gemini-...") is ignored.
func (pt *PriceTable) Lookup(model string) *Price {
	if pt == nil || model == "" {
		return nil
	}
	model = strings.ToLower(model)
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	var best *Price
	bestLen := -1
	for i := range pt.Models {
		p := &pt.Models[i]
		m := strings.ToLower(p.Match)
		if prefix, ok := strings.CutSuffix(m, "*"); ok {
			if strings.HasPrefix(model, prefix) && len(prefix) > bestLen {
				best, bestLen = p, len(prefix)
			}
		} else if m == model {
			return p
		}
	}
	return best
}

// Cost returns the USD cost of u at model's price, or nil if the model has
// no price.
func (pt *PriceTable) Cost(model string, u Usage) *float64 {
	p := pt.Lookup(model)
	if p == nil {
		return nil
	}
	cached, write := p.Input, p.Input
	if p.CachedInput != nil {
		cached = *p.CachedInput
	}
	if p.CacheWrite != nil {
		write = *p.CacheWrite
	}
	plain := u.InputTokens - u.CachedInputTokens - u.CacheWriteInputTokens
	if plain < 0 {
		plain = 0
	}
	c := (float64(plain)*p.Input + float64(u.CachedInputTokens)*cached +
		float64(u.CacheWriteInputTokens)*write + float64(u.OutputTokens)*p.Output) / 1e6
	return &c
}
