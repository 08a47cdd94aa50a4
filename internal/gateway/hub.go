package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ptb-dev/ptb/internal/registry"
)

// DefaultHubUpstream is the public Hugging Face hub.
const DefaultHubUpstream = "https://huggingface.co"

// HubConfig configures the hub route.
type HubConfig struct {
	// Upstream is the hub's base URL ("": DefaultHubUpstream); a mirror or a
	// test server.
	Upstream string
	// Token is the harness's HF token, sent upstream as a Bearer token (never
	// to a CDN the hub redirects to, never into the sandbox).
	Token string
	// Deny lists the repos (and files) the route refuses with 403.
	Deny []DenyRule
}

// DenyRule refuses a hub repository, or some of its files.
type DenyRule struct {
	// Repo is ORG/NAME or a glob over it (path.Match, case-insensitive).
	Repo string `json:"repo" yaml:"repo"`
	// Type is model, dataset or space; "" matches every type.
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// PathContains, when set, limits the rule to files whose path contains
	// it (case-insensitive): {openai/gsm8k, dataset, "test"} refuses the
	// test split and lets metadata and the train split through. Without it
	// the whole repo is refused, metadata included.
	PathContains string `json:"path_contains,omitempty" yaml:"path_contains,omitempty"`
	// Reason is told to the agent and logged.
	Reason string `json:"reason" yaml:"reason"`
}

// DenyRules converts the registry's hub deny list
// (registry.Registry.HubDenyList: the instruct counterparts and the
// benchmark test sets) into the hub route's rules.
func DenyRules(list []registry.HubDeny) []DenyRule {
	out := make([]DenyRule, 0, len(list))
	for _, d := range list {
		reason := d.Reason
		out = append(out, DenyRule{Repo: d.Repo, Type: d.Type, PathContains: d.PathContains, Reason: reason})
	}
	return out
}

type hubRoute struct {
	g        *Gateway
	upstream *url.URL
	token    string
	deny     []DenyRule
}

func newHubRoute(c HubConfig, g *Gateway) (*hubRoute, error) {
	up := c.Upstream
	if up == "" {
		up = DefaultHubUpstream
	}
	u, err := url.Parse(strings.TrimSuffix(up, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub upstream %q: want an http(s) URL", up)
	}
	for i, d := range c.Deny {
		if d.Repo == "" || d.Reason == "" {
			return nil, fmt.Errorf("hub deny rule %d: repo and reason are required", i)
		}
		if _, err := matchGlob(d.Repo, ""); err != nil {
			return nil, fmt.Errorf("hub deny rule %d: repo %q: %w", i, d.Repo, err)
		}
		switch d.Type {
		case "", "model", "dataset", "space":
		default:
			return nil, fmt.Errorf("hub deny rule %d: type %q: want model, dataset, space or empty", i, d.Type)
		}
	}
	return &hubRoute{g: g, upstream: u, token: c.Token, deny: c.Deny}, nil
}

// hubTarget is what a hub path names.
type hubTarget struct {
	kind     string // model | dataset | space; "" when no repo
	repo     string
	revision string
	file     string   // a file inside the repo, "" for metadata
	xet      bool     // a xet token request
	readPOST bool     // a POST that only reads (paths-info)
	segs     []string // the decoded path segments
}

// hubAPIWords are the path words after /api/{kind}/{repo} that are not a
// second segment of the repo id.
var hubAPIWords = map[string]bool{
	"revision": true, "tree": true, "paths-info": true, "parquet": true, "treesize": true, "refs": true,
	"commits": true, "commit": true, "preupload": true, "xet-read-token": true, "xet-write-token": true,
	"discussions": true, "settings": true, "croissant": true, "resolve": true, "compare": true,
	"lfs-files": true, "tag": true, "branch": true, "likers": true, "scan": true, "notebooks": true,
}

var hubKinds = map[string]string{"models": "model", "datasets": "dataset", "spaces": "space"}

// parseHubPath reads a hub URL path (escaped, without the /hub prefix). It
// refuses dot segments, empty segments inside the repo id and encoded
// slashes outside the revision, so that what is checked is what the hub
// will serve.
func parseHubPath(escaped string) (hubTarget, error) {
	var t hubTarget
	raw := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil {
			return t, fmt.Errorf("bad escape in path segment %q", r)
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return t, fmt.Errorf("path segment %q is not allowed", s)
		}
		segs[i] = s
	}
	t.segs = segs
	plain := func(ss []string) bool {
		for _, s := range ss {
			if s == "" || strings.Contains(s, "/") {
				return false
			}
		}
		return true
	}
	repoOf := func(rest []string, words map[string]bool) (repo string, n int) {
		if len(rest) >= 2 && !words[rest[1]] {
			return rest[0] + "/" + rest[1], 2
		}
		if len(rest) >= 1 {
			return rest[0], 1
		}
		return "", 0
	}
	if segs[0] == "api" && len(segs) >= 5 && segs[1] == "resolve-cache" && hubKinds[segs[2]] != "" {
		// /api/resolve-cache/{kind}/{repo}/{commit}/{file}: where the hub
		// sends small files' resolve requests
		t.kind = hubKinds[segs[2]]
		rest := segs[3:]
		n := 2
		if len(rest) >= 2 && isCommit(rest[1]) {
			n = 1
		}
		if len(rest) <= n || !plain(rest[:n]) {
			return t, fmt.Errorf("resolve-cache path %q names no repo and revision", escaped)
		}
		t.repo, t.revision, t.file = strings.Join(rest[:n], "/"), rest[n], strings.Join(rest[n+1:], "/")
		return t, nil
	}
	if segs[0] == "api" {
		if len(segs) < 3 || hubKinds[segs[1]] == "" || segs[2] == "" {
			return t, nil // /api/models?search=..., /api/whoami-v2: no repo
		}
		t.kind = hubKinds[segs[1]]
		rest := segs[2:]
		repo, n := repoOf(rest, hubAPIWords)
		if !plain(rest[:n]) {
			return t, fmt.Errorf("repo id %q is not plain path segments", strings.Join(rest[:n], "/"))
		}
		t.repo = repo
		rest = rest[n:]
		if len(rest) == 0 {
			return t, nil
		}
		switch rest[0] {
		case "revision", "tree", "treesize", "paths-info", "xet-read-token":
			if len(rest) > 1 {
				t.revision = rest[1]
			}
			t.xet = rest[0] == "xet-read-token"
			t.readPOST = rest[0] == "paths-info"
		case "parquet": // /api/datasets/{repo}/parquet/{config}/{split}/{n}.parquet
			t.revision = "refs/convert/parquet"
			if len(rest) > 1 {
				t.file = strings.Join(rest[1:], "/")
			}
		}
		return t, nil
	}
	t.kind = "model"
	rest := segs
	if k := hubKinds[segs[0]]; k != "" { // /models/ too, should the hub take it
		t.kind, rest = k, segs[1:]
	}
	fileWords := map[string]bool{"resolve": true, "raw": true, "blob": true}
	for i := 1; i <= 2 && i < len(rest); i++ {
		if !fileWords[rest[i]] {
			continue
		}
		if !plain(rest[:i]) {
			return t, fmt.Errorf("repo id %q is not plain path segments", strings.Join(rest[:i], "/"))
		}
		t.repo = strings.Join(rest[:i], "/")
		after := rest[i+1:]
		if len(after) > 0 {
			t.revision, after = after[0], after[1:]
			// refs/convert/parquet or refs/pr/N sent unescaped
			if t.revision == "refs" && len(after) >= 2 && (after[0] == "convert" || after[0] == "pr") {
				t.revision, after = "refs/"+after[0]+"/"+after[1], after[2:]
			}
		}
		t.file = strings.Join(after, "/")
		return t, nil
	}
	// a repo page or anything else: name the repo when it looks like one
	if len(rest) >= 1 && rest[0] != "" && segs[0] != "" {
		repo, n := repoOf(rest, nil)
		if plain(rest[:n]) {
			t.repo = repo
		}
	} else {
		t.kind = ""
	}
	return t, nil
}

func isCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// denied returns the first rule refusing t. Besides the repo the path was
// parsed as, a rule for ORG/NAME refuses any path that has ORG/NAME as two
// consecutive segments (with the rule's PathContains in what follows): a
// hub endpoint the parser does not know cannot reach a denied repo.
func (h *hubRoute) denied(t *hubTarget) (DenyRule, bool) {
	for _, d := range h.deny {
		if !strings.Contains(d.Repo, "/") {
			continue
		}
		for i := 0; i+1 < len(t.segs); i++ {
			if ok, _ := matchGlob(d.Repo, t.segs[i]+"/"+t.segs[i+1]); !ok {
				continue
			}
			if d.PathContains == "" || strings.Contains(strings.ToLower(strings.Join(t.segs[i+2:], "/")), strings.ToLower(d.PathContains)) {
				if t.repo == "" { // name what was refused
					t.repo, t.kind = t.segs[i]+"/"+t.segs[i+1], d.Type
				}
				return d, true
			}
		}
	}
	if t.repo == "" {
		return DenyRule{}, false
	}
	for _, d := range h.deny {
		if d.Type != "" && d.Type != t.kind {
			continue
		}
		if ok, _ := matchGlob(d.Repo, t.repo); !ok {
			continue
		}
		if d.PathContains != "" && !strings.Contains(strings.ToLower(t.file), strings.ToLower(d.PathContains)) {
			continue
		}
		return d, true
	}
	return DenyRule{}, false
}

func ruleString(d DenyRule) string {
	s := d.Repo
	if d.Type != "" {
		s = d.Type + ":" + s
	}
	if d.PathContains != "" {
		s += " (files containing " + strconvQuote(d.PathContains) + ")"
	}
	return s
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// hubHeadersKept are the hub's own headers on a redirect that clients
// (huggingface_hub) read for the file: carried over onto the followed
// response.
var hubHeadersKept = []string{"X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size", "X-Error-Code", "X-Error-Message"}

const maxHubRedirects = 10

func (h *hubRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	start := g.now()
	rec := &HubRecord{Time: g.stamp(start), Method: r.Method}
	finish := func() {
		rec.DurationMS = ms(g.now().Sub(start))
		g.hubLog.write(rec)
	}
	refuse := func(status int, msg string) {
		rec.Status, rec.Reason = status, msg
		writeHubError(w, status, "ptb gateway: "+msg)
		finish()
	}
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), "/hub")
	if escaped == "" {
		escaped = "/"
	}
	up := *h.upstream
	up.Path = strings.TrimSuffix(up.Path, "/") + mustUnescape(escaped)
	up.RawPath = strings.TrimSuffix(up.EscapedPath(), "/") + escaped
	if up.RawPath == up.Path {
		up.RawPath = ""
	}
	up.RawQuery = r.URL.RawQuery
	rec.URL = up.String()
	t, err := parseHubPath(escaped)
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	d, deny := h.denied(&t)
	rec.Repo, rec.RepoType, rec.Revision, rec.Path = t.repo, t.kind, t.revision, t.file
	if deny {
		rec.Denied, rec.Rule = true, ruleString(d)
		refuse(http.StatusForbidden, fmt.Sprintf("%s %s is denied in this run: %s", t.kind, t.repo, d.Reason))
		return
	}
	switch {
	case t.xet:
		refuse(http.StatusForbidden, "xet transfers are not available through the hub route; set HF_HUB_DISABLE_XET=1 (downloads then use plain HTTP)")
		return
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
	case r.Method == http.MethodPost && t.readPOST:
	default:
		refuse(http.StatusForbidden, fmt.Sprintf("%s %s: the hub route is read-only (downloads and metadata)", r.Method, escaped))
		return
	}
	var body []byte
	if r.Method == http.MethodPost {
		if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20+1)); err != nil || len(body) > 1<<20 {
			refuse(http.StatusBadRequest, "request body unreadable or over 1 MiB")
			return
		}
	}
	resp, hops, err := h.fetch(r, &up, body, rec)
	rec.Redirects = hops
	if err != nil {
		var d *hubDenied
		if errors.As(err, &d) {
			rec.Denied, rec.Rule = true, ruleString(d.rule)
			refuse(http.StatusForbidden, fmt.Sprintf("%s %s (redirected from %s) is denied in this run: %s", d.t.kind, d.t.repo, t.repo, d.rule.Reason))
			return
		}
		refuse(http.StatusBadGateway, "hub upstream: "+err.Error())
		return
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	if strings.HasPrefix(escaped, "/api/") && r.Host != "" {
		// API answers name hub URLs (the parquet listing): point them at
		// the route, which is what the sandbox can reach.
		resp.Body = rewriteHubURLs(resp, h.upstream.String(), "http://"+r.Host+"/hub")
	}
	rec.Bytes, err = copyFlush(w, resp)
	if err != nil {
		rec.Reason = err.Error()
	}
	finish()
}

type hubDenied struct {
	t    hubTarget
	rule DenyRule
}

func (e *hubDenied) Error() string { return "denied: " + e.rule.Reason }

// fetch sends the request upstream and follows redirects itself: a
// redirect back to the hub is checked against the deny list again (a
// renamed repo), one to a CDN gets no credential. The final response
// carries the hub's file headers from the first answer and no xet headers.
func (h *hubRoute) fetch(r *http.Request, u *url.URL, body []byte, rec *HubRecord) (*http.Response, []string, error) {
	method := r.Method
	cur := u
	var hops []string
	kept := http.Header{}
	for n := 0; ; n++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(r.Context(), method, cur.String(), rd)
		if err != nil {
			return nil, hops, err
		}
		if n == 0 {
			copyHeaders(req.Header, r.Header, strippedRequestHeaders)
			// Files pass through encoded as the client asked; API answers are
			// decoded (by the transport) so their hub URLs can be rewritten.
			if ae := r.Header.Get("Accept-Encoding"); ae != "" && !strings.HasPrefix(u.Path, strings.TrimSuffix(h.upstream.Path, "/")+"/api/") {
				req.Header.Set("Accept-Encoding", ae)
			}
		} else {
			for _, k := range []string{"Range", "Accept", "Accept-Encoding", "User-Agent", "If-None-Match", "If-Range"} {
				if v := r.Header.Get(k); v != "" {
					req.Header.Set(k, v)
				}
			}
		}
		if body != nil {
			req.ContentLength = int64(len(body))
		}
		if sameHost(cur, h.upstream) && h.token != "" {
			req.Header.Set("Authorization", "Bearer "+h.token)
		}
		resp, err := h.g.client.Do(req)
		if err != nil {
			return nil, hops, err
		}
		for _, k := range hubHeadersKept {
			if v := resp.Header.Get(k); v != "" && kept.Get(k) == "" {
				kept.Set(k, v)
			}
		}
		loc := resp.Header.Get("Location")
		redirect := resp.StatusCode == 301 || resp.StatusCode == 302 || resp.StatusCode == 303 || resp.StatusCode == 307 || resp.StatusCode == 308
		if !redirect || loc == "" || body != nil {
			stripXet(resp.Header)
			resp.Header.Del("Location")
			for k := range kept {
				if resp.Header.Get(k) == "" {
					resp.Header.Set(k, kept.Get(k))
				}
			}
			return resp, hops, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if n >= maxHubRedirects {
			return nil, hops, fmt.Errorf("more than %d redirects", maxHubRedirects)
		}
		next, err := cur.Parse(loc)
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
			return nil, hops, fmt.Errorf("redirect to %q: not an http(s) URL", loc)
		}
		hops = append(hops, next.String())
		if sameHost(next, h.upstream) {
			p := strings.TrimPrefix(next.EscapedPath(), strings.TrimSuffix(h.upstream.EscapedPath(), "/"))
			t, err := parseHubPath(p)
			if err != nil {
				return nil, hops, fmt.Errorf("redirect to %s: %w", next, err)
			}
			if d, ok := h.denied(&t); ok {
				return nil, hops, &hubDenied{t: t, rule: d}
			}
		}
		if resp.StatusCode == 303 && method != http.MethodHead {
			method = http.MethodGet
		}
		cur = next
	}
}

// maxRewrite bounds an API answer read whole to rewrite its hub URLs; a
// larger one passes unchanged.
const maxRewrite = 16 << 20

// rewriteHubURLs returns resp's body with from replaced by to when it is a
// JSON answer of at most maxRewrite bytes (fixing Content-Length).
func rewriteHubURLs(resp *http.Response, from, to string) io.ReadCloser {
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/json") || resp.Header.Get("Content-Encoding") != "" {
		return resp.Body
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRewrite+1))
	rest := resp.Body
	if err != nil || len(b) > maxRewrite {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), rest), rest}
	}
	b = bytes.ReplaceAll(b, []byte(from), []byte(to))
	resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
	resp.ContentLength = int64(len(b))
	return struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(b), rest}
}

func sameHost(a, b *url.URL) bool {
	return strings.EqualFold(a.Host, b.Host) && a.Scheme == b.Scheme
}

// stripXet removes the headers that make huggingface_hub switch to a xet
// transfer (a content store the sandbox cannot reach).
func stripXet(h http.Header) {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-xet-") {
			h.Del(k)
		}
	}
	var links []string
	for _, v := range h.Values("Link") {
		if !strings.Contains(strings.ToLower(v), "xet") {
			links = append(links, v)
		}
	}
	h.Del("Link")
	for _, v := range links {
		h.Add("Link", v)
	}
	for _, k := range strippedResponseHeaders {
		h.Del(k)
	}
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}

// copyFlush sends resp's headers and body to w, flushing each chunk; it
// returns the body bytes written.
func copyFlush(w http.ResponseWriter, resp *http.Response) (int64, error) {
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, fmt.Errorf("write to client: %w", werr)
			}
			n += int64(k)
			rc.Flush()
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read upstream: %w", err)
		}
	}
}

// writeHubError answers like the hub does: a JSON {"error"} body and the
// X-Error-Message header huggingface_hub shows.
func writeHubError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("X-Ptb-Gateway", "denied")
	w.WriteHeader(status)
	w.Write(b)
}
