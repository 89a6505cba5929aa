package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Latencies go into a log-linear histogram: 2^subBits buckets per power
// of two nanoseconds, so a reported quantile is within 1/2^subBits (1.6%)
// of the true one, in constant memory per client.
const (
	subBits  = 6
	nBuckets = (64 - subBits + 1) << subBits
)

type histogram struct {
	counts [nBuckets]uint64
	n      uint64
}

func bucketOf(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	l := bits.Len64(ns)
	shift := l - subBits - 1
	return (l-subBits)<<subBits + int(ns>>shift) - 1<<subBits
}

// bucketMid is the middle of bucket i's range, in nanoseconds.
func bucketMid(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i >> subBits
	low := uint64(i&(1<<subBits-1)+1<<subBits) << (e - 1)
	return low + (uint64(1)<<(e-1))/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the samples
// lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return 0
}

// result is one measured point of one system.
type result struct {
	ops    uint64
	errs   uint64
	window time.Duration
	cpu    time.Duration // process CPU time (user+system) during the window
	lat    histogram
	note   string
	na     bool // not measured: the system lacks the feature
	err    error
}

func (r *result) opsPerSec() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ops) / r.window.Seconds()
}

func (r *result) cpuPerOp() time.Duration {
	if r.ops == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.ops)
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// op is one request of a closed-loop client. It gets the client's own
// random source and value buffer.
type op func(ctx context.Context, c *client) error

// client is the per-goroutine state of a closed-loop client.
type client struct {
	rng   *rand.Rand
	value []byte
	keys  int
}

func (c *client) key() string { return keyName(c.rng.IntN(c.keys)) }

func keyName(i int) string { return fmt.Sprintf("bench/k%07d", i) }

// newValue returns a valueSize-byte value, random but for a stamp of the
// current time in its first 8 bytes (read by the watch workload).
func newValue(rng *rand.Rand) []byte {
	v := make([]byte, valueSize)
	for i := range v {
		v[i] = byte('a' + rng.IntN(26))
	}
	return v
}

func stamp(v []byte) { binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano())) }

// stampOf returns the time stamped into v, in Unix nanoseconds.
func stampOf(v []byte) int64 { return int64(binary.LittleEndian.Uint64(v)) }

const valueSize = 256

// closedLoop runs clients goroutines, each issuing op back to back, for
// warm then window. Only operations that start and end inside the window
// count; CPU time is the process's over the window.
func closedLoop(ctx context.Context, clients, keys int, warm, window time.Duration, seed uint64, f op) *result {
	var (
		wg     sync.WaitGroup
		hists  = make([]histogram, clients)
		errs   atomic.Uint64
		errMu  sync.Mutex
		first  error
		start  = time.Now()
		from   = start.Add(warm)
		until  = from.Add(window)
		ctxOps = ctx
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{rng: rand.New(rand.NewPCG(seed, uint64(i))), keys: keys}
			c.value = newValue(c.rng)
			h := &hists[i]
			for {
				t0 := time.Now()
				if !t0.Before(until) || ctxOps.Err() != nil {
					return
				}
				octx, cancel := context.WithTimeout(ctxOps, 10*time.Second)
				err := f(octx, c)
				cancel()
				t1 := time.Now()
				if err != nil {
					errs.Add(1)
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					continue
				}
				if !t0.Before(from) && !t1.After(until) {
					h.record(t1.Sub(t0))
				}
			}
		}()
	}
	r := &result{window: window}
	sleepUntil(ctx, from)
	cpu0 := cpuTime()
	sleepUntil(ctx, until)
	r.cpu = cpuTime() - cpu0
	wg.Wait()
	for i := range hists {
		r.lat.merge(&hists[i])
	}
	r.ops = r.lat.n
	r.errs = errs.Load()
	if first != nil {
		r.note = fmt.Sprintf("%d errors, first: %v", r.errs, first)
	}
	return r
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}

// Operations of the workloads.

func opPut(s system) op {
	return func(ctx context.Context, c *client) error {
		return s.put(ctx, c.key(), c.value)
	}
}

func opGet(s system) op {
	return func(ctx context.Context, c *client) error {
		_, err := s.get(ctx, c.key())
		return err
	}
}

func opGetStale(s system) op {
	return func(ctx context.Context, c *client) error {
		_, err := s.getStale(ctx, c.key())
		return err
	}
}

// opMix is 90% linearizable reads, 10% writes.
func opMix(s system) op {
	return func(ctx context.Context, c *client) error {
		if c.rng.IntN(10) == 0 {
			return s.put(ctx, c.key(), c.value)
		}
		_, err := s.get(ctx, c.key())
		return err
	}
}
