package eval

import (
	"context"
	"sync"
	"time"
)

// MaxAdaptiveConcurrency bounds how far adaptive concurrency grows.
const MaxAdaptiveConcurrency = 8 * DefaultConcurrency

// limiter bounds the requests in flight. A fixed limiter keeps the limit it
// was given. An adaptive one (--concurrency left at its default) starts at
// DefaultConcurrency and grows, as inspect's adaptive connections do, while
// throughput grows. Throughput is judged by Little's law from the mean
// latency of each window of `limit` completions (completions per second
// measured directly swing with the bursts in which batched requests end):
// while the server has free batch slots, more requests in flight do not
// make each one slower, and throughput grows with the limit. Once they queue,
// latency grows with the limit instead. The limit grows by half after every
// window whose mean latency stays under queueFactor times the lowest seen,
// so that it stops with a queue about one batch deep: never empty between a
// request's end and the client's next one. It steps back when the server
// says it is overloaded (HTTP 429 or 503, see backoff). The first window is
// not measured: its requests all start together.
type limiter struct {
	mu       sync.Mutex
	limit    int
	inflight int
	wake     chan struct{} // closed when a slot frees or the limit grows

	adaptive bool
	growing  bool
	max      int
	winDone  int           // completions in the current window
	winLat   time.Duration // their summed latency
	windows  int           // windows ended
	minLat   time.Duration // lowest mean latency of a window (0 = none yet)
}

// queueFactor is how much slower than the fastest window a window may be
// for the limit to keep growing.
const queueFactor = 2

func newLimiter(fixed int) *limiter {
	l := &limiter{limit: fixed, wake: make(chan struct{})}
	if fixed <= 0 {
		l.limit, l.adaptive, l.growing, l.max = DefaultConcurrency, true, true, MaxAdaptiveConcurrency
	}
	return l
}

// Limit returns the current limit.
func (l *limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// acquire waits for a slot; it fails only when ctx ends.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		if l.inflight < l.limit {
			l.inflight++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release frees a slot after a request that took lat and completed (done)
// or failed.
func (l *limiter) release(done bool, lat time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if done && l.growing {
		l.observe(lat)
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// observe counts a completion toward the current window and, at the
// window's end, decides whether to grow. Called with l.mu held.
func (l *limiter) observe(lat time.Duration) {
	l.winDone++
	l.winLat += lat
	if l.winDone < l.limit {
		return
	}
	mean := l.winLat / time.Duration(l.winDone)
	l.winDone, l.winLat = 0, 0
	l.windows++
	if l.windows == 1 {
		return // all started together
	}
	if l.minLat == 0 || mean < l.minLat {
		l.minLat = mean
	}
	if mean >= queueFactor*l.minLat {
		l.growing = false // a queue has formed
		return
	}
	l.limit = min(l.max, l.limit+max(1, l.limit/2))
	if l.limit == l.max {
		l.growing = false
	}
}

// backoff steps an adaptive limit back by a third (not below where it
// started) and stops its growth: the server said it has too much to do.
func (l *limiter) backoff() {
	if !l.adaptive {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.growing = false
	l.limit = max(DefaultConcurrency, l.limit*2/3)
}
