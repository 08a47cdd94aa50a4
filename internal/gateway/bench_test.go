package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/modelserver"
)

const benchBody = `{"model":"claude-sonnet-4-5","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`

// streamOnce posts one streaming request and reads the whole stream; it
// returns the number of SSE data lines.
func streamOnce(tb testing.TB, c *http.Client, url string) int {
	resp, err := c.Post(url, "application/json", strings.NewReader(benchBody))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 0}}
}

// BenchmarkStreamLatency streams one scripted Anthropic reply per request,
// directly from the scripted model server, through the gateway on TCP, and
// through the sandbox's path (loopback TCP, relay, unix socket, gateway),
// and reports the median time per request (ms-p50). The differences are
// the latency the gateway (and the relay) add.
func BenchmarkStreamLatency(b *testing.B) {
	ms := httptest.NewServer(modelserver.New(nil, nil))
	defer ms.Close()
	g, base := startGateway(b, Config{LogDir: filepath.Join(b.TempDir(), "gw"),
		Providers: map[string]Provider{Anthropic: {Upstream: ms.URL, Key: realKey}}})
	defer g.Close()
	_, relayed := startRelayed(b, Config{Providers: map[string]Provider{Anthropic: {Upstream: ms.URL, Key: realKey}}})
	for _, c := range []struct{ name, url string }{
		{"direct", ms.URL + "/v1/messages"},
		{"gateway", base + "/llm/anthropic/v1/messages"},
		{"relay+gateway", relayed + "/llm/anthropic/v1/messages"},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := benchClient()
			streamOnce(b, client, c.url) // warm the connections
			durs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				streamOnce(b, client, c.url)
				durs = append(durs, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(durs)
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "ms-p99")
		})
	}
}

// slowSSE streams events events, pause apart, so that concurrent streams
// really are open at the same time.
func slowSSE(events int, pause time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		f := w.(http.Flusher)
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n")
		f.Flush()
		for i := range events {
			time.Sleep(pause)
			fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token %d \"}}\n\n", i)
			f.Flush()
		}
		fmt.Fprint(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":50}}\n\n")
		f.Flush()
	})
}

// BenchmarkConcurrentStreams runs 64 SSE streams at once (50 events 2 ms
// apart, about 100 ms each), directly and through the gateway, and reports
// the median stream time.
func BenchmarkConcurrentStreams(b *testing.B) {
	up := httptest.NewServer(slowSSE(50, 2*time.Millisecond))
	defer up.Close()
	g, base := startGateway(b, Config{LogDir: filepath.Join(b.TempDir(), "gw"),
		Providers: map[string]Provider{Anthropic: {Upstream: up.URL, Key: realKey}}})
	defer g.Close()
	const streams = 64
	for _, c := range []struct{ name, url string }{
		{"direct", up.URL + "/v1/messages"},
		{"gateway", base + "/llm/anthropic/v1/messages"},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := benchClient()
			var mu sync.Mutex
			var durs []time.Duration
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range streams {
					wg.Add(1)
					go func() {
						defer wg.Done()
						t0 := time.Now()
						if n := streamOnce(b, client, c.url); n != 52 {
							b.Errorf("%d events, want 52", n)
						}
						mu.Lock()
						durs = append(durs, time.Since(t0))
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			slices.Sort(durs)
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "ms-p50/stream")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "ms-p99/stream")
		})
	}
}

// 64 streams held open at once all pass through, unbuffered: the upstream
// sends its last event only once all 64 are open and each has received
// its first event.
func TestSixtyFourConcurrentStreams(t *testing.T) {
	const streams = 64
	var opened sync.WaitGroup
	opened.Add(streams)
	allOpen := make(chan struct{})
	go func() { opened.Wait(); close(allOpen) }()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-allOpen:
		case <-time.After(30 * time.Second):
			return
		}
		fmt.Fprint(w, "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n")
	}))
	defer up.Close()
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Providers: map[string]Provider{Anthropic: {Upstream: up.URL, Key: realKey}}})
	client := benchClient()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(base+"/llm/anthropic/v1/messages", "application/json", strings.NewReader(`{"model":"claude-sonnet-4-5","stream":true}`))
			if err != nil {
				errs <- err
				opened.Done()
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first, _ := br.ReadString('\n')
			opened.Done()
			rest, _ := io.ReadAll(br)
			if !strings.Contains(first, "message_start") || !strings.Contains(string(rest), "message_delta") {
				errs <- fmt.Errorf("stream: %q then %q", first, rest)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case <-allOpen:
	default:
		t.Fatal("the 64 streams were never open at once")
	}
	g.Close()
	recs := readLog[LLMRecord](t, filepath.Join(dir, LLMLogFile))
	if len(recs) != streams {
		t.Fatalf("%d records", len(recs))
	}
	if u := g.Usage(); u.Tokens.OutputTokens != 3*streams {
		t.Errorf("usage %+v", u.Tokens)
	}
}

// BenchmarkInspectLargeRequest reads the model out of a 1 MB request (a
// long agent conversation), which the route does before sending it on.
func BenchmarkInspectLargeRequest(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"model":"claude-sonnet-4-5","stream":true,"messages":[`)
	for i := 0; sb.Len() < 1<<20; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"role":"user","content":[{"type":"text","text":"line %d: %s"}]}`, i, strings.Repeat(`x\"y\\n`, 40))
	}
	sb.WriteString(`],"max_tokens":32000}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if m, _, err := topLevelModel(body); err != nil || m != "claude-sonnet-4-5" {
			b.Fatal(m, err)
		}
	}
}
