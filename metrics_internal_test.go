package skiff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"
)

// openTestNode opens a one-node cluster on a loopback port and waits for
// it to lead.
func openTestNode(tb testing.TB) *Node {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Dir = tb.TempDir()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	if _, err := n.WaitForLeader(ctx); err != nil {
		tb.Fatal(err)
	}
	return n
}

// A node whose metrics nobody asked for keeps none, and Raft's sink is
// not installed until RaftCollector (or MetricsHandler) is called. The
// sink is process-wide, so this runs in a process of its own.
func TestMetricsOffUntilAsked(t *testing.T) {
	if os.Getenv("SKIFF_METRICS_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMetricsOffUntilAsked$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SKIFF_METRICS_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	n := openTestNode(t)
	ctx := context.Background()
	if _, err := n.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n.meter() != nil || raftBridgeInstalled() {
		t.Fatalf("after a Put and a Get nobody measured: meter %v, raft sink installed %v, want neither", n.meter(), raftBridgeInstalled())
	}
	n.Collector()
	if n.meter() == nil || raftBridgeInstalled() {
		t.Fatalf("after Collector: meter %v, raft sink installed %v, want a meter and no sink", n.meter(), raftBridgeInstalled())
	}
	n.MetricsHandler()
	if !raftBridgeInstalled() {
		t.Fatal("after MetricsHandler the raft sink is not installed")
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("get: %w", ErrNotFound), "not_found"},
		{fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed), "indeterminate"},
		{fmt.Errorf("%w: %w", ErrNoLeader, ErrTimeout), "no_leader"}, // the first in errors.go's wire table
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		if got := outcome(tt.err); got != tt.want {
			t.Errorf("outcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// BenchmarkMeterOff is what the request paths pay for metrics nobody
// asked for: the hooks of one write and one read on a nil meter.
func BenchmarkMeterOff(b *testing.B) { benchmarkMeter(b, &Node{}) }

// BenchmarkMeterOn is the same with metrics on.
func BenchmarkMeterOn(b *testing.B) {
	n := &Node{id: "bench"}
	n.obs.met.Store(newNodeMetrics(n))
	benchmarkMeter(b, n)
}

// benchmarkMeter runs the hooks of one write and one read on n's meter.
func benchmarkMeter(b *testing.B, n *Node) {
	op := putOp("k", []byte("v"))
	var err error
	for b.Loop() {
		m := n.meter()
		start := m.start()
		m.applied(start)
		m.write(&op, err)
		n.meter().read(readGet, &err)
		m.readIndexed(start)
	}
}

// BenchmarkNodePut is Node.Put on a one-node cluster (fsync on), with
// metrics off, then on (node and Raft's).
func BenchmarkNodePut(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			n := openTestNode(b)
			if on {
				n.MetricsHandler()
			}
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if _, err := n.Put(ctx, fmt.Sprintf("k/%d", i%1000), []byte("value")); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
