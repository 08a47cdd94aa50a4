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
// AdaptiveStart and grows, as inspect's adaptive connections do, while
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
//
// A slot (acquire, release) is held by one HTTP exchange only: the Client
// takes it once the request is built and frees it when the reply is read,
// before the reply is decoded and scored. An adaptive limiter starts samples
// ahead of the free slots (start, finish: up to limit+ahead samples at
// once), so that the next request is built and waiting when a slot frees,
// and release hands the slot straight to the longest waiting request (first
// in, first out): between a reply and the next request only the goroutine
// that sends it is woken; none is spawned and no request is encoded.
type limiter struct {
	mu       sync.Mutex
	limit    int
	inflight int
	waiters  []chan struct{} // requests waiting for a slot, oldest first
	free     []chan struct{} // spent waiter channels, reused

	started  int           // samples in progress (start, finish)
	startCh  chan struct{} // signalled when a sample finishes (one waiter: the feeding loop)
	adaptive bool
	growing  bool
	max      int
	winDone  int           // completions in the current window
	winLat   time.Duration // their summed latency
	windows  int           // windows ended
	minLat   time.Duration // lowest mean latency of a window (0 = none yet)
}

// AdaptiveStart is where an adaptive limit starts: half a batch above a
// server with DefaultConcurrency batch slots (vLLM's usual max_num_seqs), so
// that such a server has a queue from the first request on. At exactly its
// batch size the first batch of requests ends together and the batch runs
// nearly empty while the client sends the next ones (measured: 5 of the
// first 40 steps at B=256). Backoff never goes below DefaultConcurrency.
const AdaptiveStart = DefaultConcurrency + DefaultConcurrency/2

// queueFactor is how much slower than the fastest window a window may be
// for the limit to keep growing.
const queueFactor = 2

func newLimiter(fixed int) *limiter {
	l := &limiter{limit: fixed, startCh: make(chan struct{}, 1)}
	if fixed <= 0 {
		l.limit, l.adaptive, l.growing, l.max = AdaptiveStart, true, true, MaxAdaptiveConcurrency
	}
	return l
}

// Limit returns the current limit.
func (l *limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// ahead is how many samples an adaptive limiter lets start beyond the
// free slots: their requests are built and wait for a slot. A fixed one
// starts no more samples than its limit, as before: with --concurrency 1
// samples are sent one at a time in their order.
func (l *limiter) ahead() int {
	if !l.adaptive {
		return 0
	}
	return max(16, l.limit/4)
}

// start waits until fewer than limit+ahead samples are in progress and
// counts one more; it fails only when ctx ends. Only one goroutine (the loop
// that starts samples) may wait in start at a time.
func (l *limiter) start(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		if l.started < l.limit+l.ahead() {
			l.started++
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		select {
		case <-l.startCh:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finish ends a sample counted by start.
func (l *limiter) finish() {
	l.mu.Lock()
	l.started--
	l.mu.Unlock()
	select {
	case l.startCh <- struct{}{}:
	default:
	}
}

// acquire waits for a slot; it fails only when ctx ends.
func (l *limiter) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.inflight < l.limit && len(l.waiters) == 0 {
		l.inflight++
		l.mu.Unlock()
		return nil
	}
	var ch chan struct{}
	if n := len(l.free); n > 0 {
		ch, l.free = l.free[n-1], l.free[:n-1]
	} else {
		ch = make(chan struct{}, 1)
	}
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch: // the slot was handed over: inflight already counts it
		l.mu.Lock()
		l.free = append(l.free, ch)
		l.mu.Unlock()
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Handed over as ctx ended: give the slot on.
		<-ch
		l.free = append(l.free, ch)
		l.inflight--
		l.handOver()
		return ctx.Err()
	}
}

// handOver gives free slots to waiting requests, oldest first. Called with
// l.mu held.
func (l *limiter) handOver() {
	for l.inflight < l.limit && len(l.waiters) > 0 {
		ch := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.inflight++
		ch <- struct{}{}
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
	l.handOver()
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
