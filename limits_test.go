package skiff_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// maxValue is a value of the default maximal size whose bytes say which
// write it belongs to.
func maxValue(i int) []byte { return bytes.Repeat([]byte{byte(i)}, skiff.DefaultMaxValueSize) }

// putBurst writes n maximal values at once and fails the test unless all
// succeed.
func putBurst(t *testing.T, n *skiff.Node, prefix string, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := 0; i < count; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Put(ctx, fmt.Sprintf("%s/%03d", prefix, i), maxValue(i)); err != nil {
				errs <- fmt.Errorf("Put(%s/%03d): %w", prefix, i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// hasBurst reports whether n holds every value of a putBurst.
func hasBurst(n *skiff.Node, prefix string, count int) error {
	for i := 0; i < count; i++ {
		key := fmt.Sprintf("%s/%03d", prefix, i)
		kv, err := n.Get(context.Background(), key, skiff.Stale())
		if err != nil {
			return err
		}
		if !bytes.Equal(kv.Value, maxValue(i)) {
			return fmt.Errorf("%s holds %d bytes starting %x", key, len(kv.Value), kv.Value[:min(len(kv.Value), 4)])
		}
	}
	return nil
}

// Raft packs up to 256 entries into one append whatever their size; 80
// concurrent one-megabyte writes made an 80 MB message the followers
// refused, and the leader retried it for ever: no write succeeded again.
// Appends are now split by bytes, also when a follower that was down
// catches up on everything it missed.
func TestBurstOfMaximalWritesReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 480 MB between three nodes")
	}
	// Default timeouts: moving 80 MB between three nodes on two cores
	// can hold a heartbeat up longer than the tests' usual 400 ms.
	nodes, cfgs := staticCluster(t, 3, func(i int, cfg *skiff.Config) {
		d := skiff.DefaultConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
	})
	ctx := testCtx(t)
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	leader, down := 0, 0
	for i, n := range nodes {
		if n.IsLeader() {
			leader = i
		} else {
			down = i
		}
	}
	start := time.Now()
	putBurst(t, nodes[leader], "first", 80)
	t.Logf("burst 1: %v", time.Since(start))
	for _, n := range nodes {
		eventually(t, 20*time.Second, func() error { return hasBurst(n, "first", 80) })
	}

	if err := nodes[down].Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("replicated: %v", time.Since(start))
	putBurst(t, nodes[leader], "second", 80)
	t.Logf("burst 2: %v", time.Since(start))
	var err error
	if nodes[down], err = skiff.Open(ctx, cfgs[down]); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { nodes[down].Close() })
	eventually(t, 20*time.Second, func() error { return hasBurst(nodes[down], "second", 80) })
	t.Logf("caught up: %v", time.Since(start))
	if _, err := nodes[down].Put(testCtx(t), "small", []byte("x")); err != nil {
		t.Fatalf("Put after the bursts: %v", err)
	}
}
