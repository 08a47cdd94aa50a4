package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Subscription login kinds.
const (
	OAuthClaude = "claude" // Claude Code's ~/.claude/.credentials.json
	OAuthCodex  = "codex"  // Codex CLI's ~/.codex/auth.json (ChatGPT login)
)

// Token endpoints and client ids the CLIs use to refresh their logins (as
// the CLIs send them; not a published API).
var oauthDefaults = map[string]struct{ tokenURL, clientID string }{
	OAuthClaude: {"https://console.anthropic.com/v1/oauth/token", "9d1c250a-e61b-44d9-88ed-5944d1962f5e"},
	OAuthCodex:  {"https://auth.openai.com/oauth/token", "app_EMoamEEZ73f0CkXaXp7hrann"},
}

// OAuth is a subscription login held by the gateway: it reads the access
// token from the CLI's credentials file, refreshes it before it expires (or
// after a 401), and writes the refreshed tokens back to the file so the
// user's own CLI keeps working (refresh tokens are single-use).
type OAuth struct {
	// File is the credentials file: Claude Code's .credentials.json
	// ({"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt"}}) or
	// Codex's auth.json ({"tokens": {"access_token", "refresh_token",
	// "account_id"}}).
	File string
	// Kind is OAuthClaude or OAuthCodex ("": from the file's shape).
	Kind string
	// TokenURL and ClientID override the refresh endpoint (tests).
	TokenURL string
	ClientID string
}

type oauthToken struct {
	access, refresh, account string
	expires                  time.Time // zero: unknown
}

type tokenSource struct {
	o    OAuth
	kind string
	g    *Gateway
	mu   sync.Mutex
	tok  oauthToken
}

func newTokenSource(provider string, o OAuth, g *Gateway) (*tokenSource, error) {
	raw, err := os.ReadFile(o.File)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	kind := o.Kind
	if kind == "" {
		kind = sniffOAuthKind(raw)
	}
	want := map[string]string{OAuthClaude: Anthropic, OAuthCodex: OpenAI}[kind]
	if want == "" {
		return nil, fmt.Errorf("credentials %s: not a Claude Code .credentials.json or Codex auth.json (set OAuth.Kind)", o.File)
	}
	if want != provider {
		return nil, fmt.Errorf("credentials %s: a %s login serves the %s provider, not %s", o.File, kind, want, provider)
	}
	d := oauthDefaults[kind]
	if o.TokenURL == "" {
		o.TokenURL = d.tokenURL
	}
	if o.ClientID == "" {
		o.ClientID = d.clientID
	}
	ts := &tokenSource{o: o, kind: kind, g: g}
	if ts.tok, err = parseCredentials(kind, raw); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", o.File, err)
	}
	return ts, nil
}

func sniffOAuthKind(raw []byte) string {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	if _, ok := probe["claudeAiOauth"]; ok {
		return OAuthClaude
	}
	if _, ok := probe["tokens"]; ok {
		return OAuthCodex
	}
	return ""
}

func parseCredentials(kind string, raw []byte) (oauthToken, error) {
	var t oauthToken
	switch kind {
	case OAuthClaude:
		var f struct {
			C *struct {
				Access    string `json:"accessToken"`
				Refresh   string `json:"refreshToken"`
				ExpiresAt int64  `json:"expiresAt"` // Unix milliseconds
			} `json:"claudeAiOauth"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return t, err
		}
		if f.C == nil || f.C.Access == "" {
			return t, fmt.Errorf("no claudeAiOauth.accessToken: %w (log in with claude first)", errNoToken)
		}
		t = oauthToken{access: f.C.Access, refresh: f.C.Refresh}
		if f.C.ExpiresAt > 0 {
			t.expires = time.UnixMilli(f.C.ExpiresAt)
		}
	case OAuthCodex:
		var f struct {
			T *struct {
				Access  string `json:"access_token"`
				Refresh string `json:"refresh_token"`
				Account string `json:"account_id"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return t, err
		}
		if f.T == nil || f.T.Access == "" {
			return t, fmt.Errorf("no tokens.access_token: %w (log in with codex first)", errNoToken)
		}
		t = oauthToken{access: f.T.Access, refresh: f.T.Refresh, account: f.T.Account, expires: jwtExpiry(f.T.Access)}
	}
	return t, nil
}

// jwtExpiry reads the exp claim of a JWT without checking it (zero if the
// token is not a JWT).
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}

// token returns a valid access token, refreshing it when it expires within
// five minutes or when force is set (after a 401).
func (ts *tokenSource) token(ctx context.Context, force bool) (oauthToken, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	expiring := !ts.tok.expires.IsZero() && ts.g.now().Add(5*time.Minute).After(ts.tok.expires)
	if !force && !expiring {
		return ts.tok, nil
	}
	if ts.tok.refresh == "" {
		return ts.tok, nil // nothing to refresh with: let the upstream answer
	}
	if err := ts.refresh(ctx); err != nil {
		return oauthToken{}, fmt.Errorf("refresh %s login: %w", ts.kind, err)
	}
	return ts.tok, nil
}

func (ts *tokenSource) refresh(ctx context.Context) error {
	body := map[string]string{"grant_type": "refresh_token", "refresh_token": ts.tok.refresh, "client_id": ts.o.ClientID}
	if ts.kind == OAuthCodex {
		body["scope"] = "openid profile email"
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.o.TokenURL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s (log in again with the CLI)", ts.o.TokenURL, resp.StatusCode, truncate(string(rb), 300))
	}
	var r struct {
		Access    string `json:"access_token"`
		Refresh   string `json:"refresh_token"`
		IDToken   string `json:"id_token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(rb, &r); err != nil || r.Access == "" {
		return fmt.Errorf("%s: no access_token in the answer", ts.o.TokenURL)
	}
	ts.tok.access = r.Access
	if r.Refresh != "" {
		ts.tok.refresh = r.Refresh
	}
	switch {
	case r.ExpiresIn > 0:
		ts.tok.expires = ts.g.now().Add(time.Duration(r.ExpiresIn) * time.Second)
	default:
		ts.tok.expires = jwtExpiry(r.Access)
	}
	if err := ts.writeBack(r.IDToken); err != nil {
		ts.g.log.Warn("gateway: write refreshed credentials", "file", ts.o.File, "err", err)
	}
	return nil
}

// writeBack stores the refreshed tokens in the credentials file, keeping
// every other field, atomically (temp file, rename) and with the file's mode.
func (ts *tokenSource) writeBack(idToken string) error {
	raw, err := os.ReadFile(ts.o.File)
	if err != nil {
		return err
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		return err
	}
	switch ts.kind {
	case OAuthClaude:
		c, _ := top["claudeAiOauth"].(map[string]any)
		if c == nil {
			return fmt.Errorf("no claudeAiOauth object")
		}
		c["accessToken"], c["refreshToken"] = ts.tok.access, ts.tok.refresh
		if !ts.tok.expires.IsZero() {
			c["expiresAt"] = ts.tok.expires.UnixMilli()
		}
	case OAuthCodex:
		t, _ := top["tokens"].(map[string]any)
		if t == nil {
			return fmt.Errorf("no tokens object")
		}
		t["access_token"], t["refresh_token"] = ts.tok.access, ts.tok.refresh
		if idToken != "" {
			t["id_token"] = idToken
		}
		top["last_refresh"] = ts.g.now().UTC().Format(time.RFC3339Nano)
	}
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if st, err := os.Stat(ts.o.File); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(ts.o.File), ".ptb-credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), ts.o.File)
}
