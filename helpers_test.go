package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/internal/testkit"
	"github.com/skiffkv/skiff/skifftest"
)

// logStores is the table every persistence test runs over.
var logStores = []skiff.LogStoreKind{skiff.LogStoreBolt, skiff.LogStoreWAL}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testConfig returns a Config for a real node on a loopback port.
func testConfig(dir string) skiff.Config {
	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 300 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// openNode opens a node and closes it at the end of the test.
func openNode(t testing.TB, cfg skiff.Config) *skiff.Node {
	t.Helper()
	n, err := skiff.Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	t.Cleanup(func() { n.Close() })
	if _, err := n.WaitForLeader(testCtx(t)); err != nil && len(cfg.Join) == 0 {
		t.Fatalf("WaitForLeader: %v", err)
	}
	return n
}

// eventually polls cond until it returns nil or d passes.
var eventually = testkit.Eventually

// putAll writes n keys prefix/i and returns what was acknowledged.
func putAll(t testing.TB, kv skiff.KV, prefix string, n int) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	want := map[string]string{}
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("%s/%05d", prefix, i), fmt.Sprintf("value-%d", i)
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
		want[k] = v
	}
	return want
}

// checkAll asserts every key in want has its value on kv.
func checkAll(t testing.TB, kv skiff.KV, want map[string]string, opts ...skiff.ReadOption) {
	t.Helper()
	ctx := testCtx(t)
	for k, v := range want {
		got, err := kv.Get(ctx, k, opts...)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		if string(got.Value) != v {
			t.Fatalf("Get(%q) = %q, want %q", k, got.Value, v)
		}
	}
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newLeader waits until a node other than old leads, and returns it.
func newLeader(t testing.TB, c *skifftest.Cluster, old int) int {
	t.Helper()
	var nl int
	eventually(t, 10*time.Second, func() error {
		for i := 0; i < c.Len(); i++ {
			if i != old && c.Node(i) != nil && c.Node(i).IsLeader() {
				nl = i
				return nil
			}
		}
		return fmt.Errorf("no leader other than node %d", old)
	})
	return nl
}

// snapshotAll takes a snapshot on every node of c.
func snapshotAll(t testing.TB, c *skifftest.Cluster) {
	t.Helper()
	for i := 0; i < c.Len(); i++ {
		if err := c.Node(i).Snapshot(); err != nil {
			t.Fatalf("Snapshot on node %d: %v", i, err)
		}
	}
}

// follower waits until nodes have a leader and returns the index of a
// node that does not lead.
func follower(t testing.TB, nodes []*skiff.Node) int {
	t.Helper()
	if _, err := nodes[0].WaitForLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if !n.IsLeader() {
			return i
		}
	}
	t.Fatal("every node leads")
	return -1
}
