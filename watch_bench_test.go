package skiff_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff/skifftest"
)

// BenchmarkWatchLatency measures the time from a write's acknowledgement
// to its event reaching each watcher on the same node, with 1, 100 and
// 1000 watchers. Writes are sequential, so this is latency, not
// throughput. Reported: p50 and p99 over all (watcher, write) pairs.
func BenchmarkWatchLatency(b *testing.B) {
	for _, watchers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			c := skifftest.NewCluster(b, 1, nil)
			n := c.Node(0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			received := map[uint64][]time.Time{}
			var wg sync.WaitGroup
			for i := 0; i < watchers; i++ {
				w, err := n.Watch(ctx, "lat")
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ev := range w.Events() {
						now := time.Now()
						mu.Lock()
						received[ev.Revision] = append(received[ev.Revision], now)
						mu.Unlock()
					}
				}()
			}
			acked := make(map[uint64]time.Time, b.N)
			value := make([]byte, 256)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rev, err := n.Put(ctx, fmt.Sprintf("lat/%d", i%1000), value)
				if err != nil {
					b.Fatal(err)
				}
				acked[rev] = time.Now()
			}
			// Wait until every watcher has every event.
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				done := 0
				for rev := range acked {
					if len(received[rev]) == watchers {
						done++
					}
				}
				mu.Unlock()
				if done == len(acked) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond) // polling for delivery
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			var lat []time.Duration
			for rev, at := range acked {
				for _, got := range received[rev] {
					lat = append(lat, max(got.Sub(at), 0))
				}
			}
			if len(lat) != b.N*watchers {
				b.Fatalf("%d deliveries, want %d", len(lat), b.N*watchers)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
