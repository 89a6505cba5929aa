package skifftest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

func quiet() *skifftest.Options { return &skifftest.Options{Quiet: true} }

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Right after Partition cuts the leader off, it still believes it leads;
// WaitForLeader must wait for the leader the majority follows instead.
func TestWaitForLeaderSkipsPartitionedLeader(t *testing.T) {
	c := skifftest.NewCluster(t, 3, quiet())
	old := c.WaitForLeader()
	c.Partition(old)
	if !c.Node(old).IsLeader() {
		t.Log("the old leader stepped down before the check; the test covers less")
	}
	if now := c.WaitForLeader(); now == old {
		t.Fatalf("WaitForLeader() = %d, the partitioned old leader", old)
	}
	if _, err := c.Leader().Put(ctxFor(t, 10*time.Second), "k", []byte("v")); err != nil {
		t.Fatalf("Put on the majority's leader: %v", err)
	}
}

// A one-way cut lets requests through and loses their answers: a client
// whose answers from the leader are cut sees its write fail, yet the write
// was applied.
func TestCutOneWay(t *testing.T) {
	c := skifftest.NewCluster(t, 3, quiet())
	l := c.WaitForLeader()
	cl := c.Client([]int{l})
	c.CutOneWay(l, skifftest.Clients)
	if _, err := cl.Put(ctxFor(t, time.Second), "k", []byte("v")); err == nil {
		t.Fatal("Put whose answer is cut succeeded")
	}
	kv, err := c.Node(l).Get(ctxFor(t, 5*time.Second), "k")
	if err != nil || string(kv.Value) != "v" {
		t.Fatalf("Get(k) on the leader = %v, %v; want the write that arrived", kv, err)
	}

	// Raft: a follower that hears nothing from the leader falls behind
	// while the other follower keeps the quorum; it catches up once healed.
	f := (l + 1) % 3
	c.CutOneWay(l, f)
	rev, err := c.Node(l).Put(ctxFor(t, 5*time.Second), "k2", []byte("v"))
	if err != nil {
		t.Fatalf("Put with one follower cut one way: %v", err)
	}
	if got := c.Node(f).Status().AppliedIndex; got >= rev {
		t.Fatalf("follower cut from the leader applied %d, past the write at %d", got, rev)
	}
	c.Heal()
	waitApplied(t, c.Node(f), rev)
}

func waitApplied(t testing.TB, n *skiff.Node, rev uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Status().AppliedIndex < rev {
		if time.Now().After(deadline) {
			t.Fatalf("%s applied %d, want %d", n.ID(), n.Status().AppliedIndex, rev)
		}
		time.Sleep(10 * time.Millisecond) // polling
	}
}

// Delay applies to Raft messages (a commit waits for a request and an
// answer) and to client connections.
func TestLinkDelay(t *testing.T) {
	c := skifftest.NewCluster(t, 3, quiet())
	leader := c.Leader()
	c.SetNetworkFaults(skifftest.LinkFaults{Delay: 60 * time.Millisecond, Jitter: 10 * time.Millisecond})
	start := time.Now()
	if _, err := leader.Put(ctxFor(t, 10*time.Second), "k", []byte("v")); err != nil {
		t.Fatalf("Put over slow links: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("Put over links delayed 60±10ms each way took %v, want ≥ 100ms", d)
	}
	c.Heal()

	l := c.WaitForLeader()
	cl := c.Client([]int{l})
	c.SetLinkFaults(skifftest.Clients, l, skifftest.LinkFaults{Delay: 150 * time.Millisecond})
	start = time.Now()
	if _, err := cl.Get(ctxFor(t, 10*time.Second), "k"); err != nil {
		t.Fatalf("Get over a slow client link: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("Get over a client link delayed 150ms took %v", d)
	}
}

// Dropping every Raft message stops commits; dropping some only slows them.
func TestLinkDrop(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Quiet: true, Seed: 3})
	leader := c.Leader()
	c.SetNetworkFaults(skifftest.LinkFaults{Drop: 1})
	if _, err := leader.Put(ctxFor(t, time.Second), "k", []byte("v")); err == nil {
		t.Fatal("Put with every message dropped succeeded")
	}
	c.SetNetworkFaults(skifftest.LinkFaults{Drop: 0.2})
	for i := 0; i < 10; i++ {
		if _, err := c.Node(0).Put(ctxFor(t, 10*time.Second), "k", []byte("v")); err != nil {
			t.Fatalf("Put %d with 20%% of messages dropped: %v", i, err)
		}
	}
}

// Clients cut off from some nodes reach the others, and only them.
func TestCutClients(t *testing.T) {
	c := skifftest.NewCluster(t, 3, quiet())
	c.CutClients(0, 1)
	_, err := skiff.Dial(ctxFor(t, 5*time.Second), []string{c.Addr(0), c.Addr(1)},
		skiff.WithDialer(c.Dialer()), skiff.WithDialTimeout(500*time.Millisecond))
	if !errors.Is(err, skiff.ErrUnavailable) {
		t.Fatalf("Dial to cut-off nodes = %v, want ErrUnavailable", err)
	}
	cl := c.Client(nil)
	if _, err := cl.Put(ctxFor(t, 10*time.Second), "k", []byte("v")); err != nil {
		t.Fatalf("Put through the one reachable node: %v", err)
	}
	c.Heal()
	cl0 := c.Client([]int{0})
	if _, err := cl0.Get(ctxFor(t, 10*time.Second), "k"); err != nil {
		t.Fatalf("Get through node 0 after Heal: %v", err)
	}
}

// AddNode joins a fresh node, which receives the data.
func TestAddNode(t *testing.T) {
	c := skifftest.NewCluster(t, 1, quiet())
	if _, err := c.Node(0).Put(ctxFor(t, 5*time.Second), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	i := c.AddNode()
	ms, err := c.Node(0).Members(ctxFor(t, 5*time.Second))
	if err != nil || len(ms) != 2 {
		t.Fatalf("Members() = %v, %v; want 2", ms, err)
	}
	if kv, err := c.Node(i).Get(ctxFor(t, 10*time.Second), "k"); err != nil || string(kv.Value) != "v" {
		t.Fatalf("Get(k) on the added node = %v, %v", kv, err)
	}
}

// captureTB records what is logged to the test.
type captureTB struct {
	testing.TB
	mu    sync.Mutex
	lines []string
}

func (c *captureTB) Log(args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range args {
		c.lines = append(c.lines, a.(string))
	}
}

func (c *captureTB) logged() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// Nodes log to the test's log unless the cluster is quiet.
func TestLogsGoToTheTest(t *testing.T) {
	loud := &captureTB{TB: t}
	skifftest.NewCluster(loud, 1, nil)
	if got := loud.logged(); !strings.Contains(got, "test_node=0") {
		t.Fatalf("the test's log has no line from node 0: %q", got)
	}
	silent := &captureTB{TB: t}
	skifftest.NewCluster(silent, 1, quiet())
	if got := silent.logged(); got != "" {
		t.Fatalf("a quiet cluster logged %q", got)
	}
}
