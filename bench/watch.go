package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// watchPrefix is the subtree the watch workload writes and watches.
const watchPrefix = "watch"

// watchLoad measures watch delivery: watchers watch one prefix while a
// writer puts into it at a fixed rate (the same offered load for every
// system, so latencies compare). Each value carries the time its put was
// issued; a watcher's latency for an event is the time from there to the
// event reaching it. Events of puts issued inside the window count, however
// late they arrive.
func watchLoad(ctx context.Context, s system, watchers, rate int, warm, window time.Duration) *result {
	r := &result{window: window}
	start := time.Now()
	from, until := start.Add(warm), start.Add(warm+window)
	fromNs, untilNs := from.UnixNano(), until.UnixNano()

	hists := make([]histogram, watchers)
	var got atomic.Uint64 // events counted, for the wait at the end
	var stops []func()
	stopAll := func() {
		for _, stop := range stops {
			stop()
		}
	}
	for i := range watchers {
		h := &hists[i]
		stop, err := s.watch(ctx, watchPrefix, func(v []byte) {
			now, sent := time.Now().UnixNano(), stampOf(v)
			if sent >= fromNs && sent < untilNs {
				h.record(time.Duration(now - sent))
				got.Add(1)
			}
		})
		if errors.Is(err, errNoWatch) {
			stopAll()
			r.na = true
			return r
		}
		if err != nil {
			stopAll()
			r.err = fmt.Errorf("watch: %w", err)
			return r
		}
		stops = append(stops, stop)
	}

	var (
		wg      sync.WaitGroup
		sent    atomic.Uint64 // puts issued inside the window that succeeded
		errs    atomic.Uint64
		inFly   = make(chan struct{}, 64)
		rng     = rand.New(rand.NewPCG(7, 7))
		value   = newValue(rng)
		tick    = time.NewTicker(time.Second / time.Duration(rate))
		cpu0    time.Duration
		started bool
	)
	defer tick.Stop()
	for i := 0; ; i++ {
		now := time.Now()
		if !now.Before(until) || ctx.Err() != nil {
			break
		}
		if !started && !now.Before(from) {
			cpu0, started = cpuTime(), true
		}
		v := append([]byte(nil), value...)
		stamp(v)
		inWindow := !now.Before(from)
		inFly <- struct{}{}
		wg.Add(1)
		go func(key string) {
			defer wg.Done()
			defer func() { <-inFly }()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.put(pctx, key, v); err != nil {
				errs.Add(1)
			} else if inWindow {
				sent.Add(1)
			}
		}(fmt.Sprintf("%s/k%04d", watchPrefix, i%1000))
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	r.cpu = cpuTime() - cpu0
	wg.Wait()
	// Let late events arrive: wait until the count stops growing.
	want := sent.Load() * uint64(watchers)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && got.Load() < want {
		time.Sleep(20 * time.Millisecond)
	}
	stopAll()
	for i := range hists {
		r.lat.merge(&hists[i])
	}
	r.ops = r.lat.n
	if r.ops < want || errs.Load() > 0 {
		r.note = fmt.Sprintf("%d of %d events delivered, %d failed puts", r.ops, want, errs.Load())
	}
	return r
}
