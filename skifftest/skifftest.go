// Package skifftest runs a skiff cluster inside one test process, in the
// spirit of net/http/httptest.
//
// NewCluster starts n nodes whose Raft traffic goes over
// raft.InmemTransport and whose gRPC traffic (forwarding, joins, network
// clients) goes over in-memory bufconn listeners. Data dirs are real
// directories under t.TempDir, so restarts exercise the real log store and
// snapshots. Partition and Heal cut and restore the links between groups
// of nodes; Stop and Restart take a node down and bring it back on the
// same data dir. Everything is torn down by t.Cleanup.
//
//	func TestSomething(t *testing.T) {
//		c := skifftest.NewCluster(t, 3, nil)
//		ctx := context.Background()
//		if _, err := c.Node(1).Put(ctx, "greeting", []byte("hi")); err != nil {
//			t.Fatal(err)
//		}
//		kv, err := c.Node(2).Get(ctx, "greeting")
//		...
//	}
package skifftest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff"
	"google.golang.org/grpc/test/bufconn"
)

// Options adjusts a test cluster. The zero value (or nil) gives nodes with
// fast timeouts and the default log store.
type Options struct {
	// LogStore selects the nodes' log store (default skiff.LogStoreBolt).
	LogStore skiff.LogStoreKind
	// Logger receives every node's logs. Nil discards them.
	Logger *slog.Logger
	// Configure, when set, adjusts node i's Config before each start.
	Configure func(i int, cfg *skiff.Config)
}

// Cluster is a running in-process cluster. Its methods may be called from
// the test goroutine only, except Node, Dialer and Addr.
type Cluster struct {
	tb   testing.TB
	opts Options

	mu    sync.Mutex
	nodes []*member
	// cut holds unordered pairs of node indexes whose links are down.
	cut map[[2]int]bool
}

type member struct {
	idx   int
	id    string
	addr  string
	dir   string
	node  *skiff.Node // nil while stopped
	lis   *bufconn.Listener
	trans *raft.InmemTransport
	conns []*linkConn // gRPC connections this node dialed
}

// NewCluster starts an n-node cluster and waits until it has a leader. It
// fails tb if the cluster cannot start.
func NewCluster(tb testing.TB, n int, opts *Options) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, cut: map[[2]int]bool{}}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.New(slog.DiscardHandler)
	}
	var peers []skiff.Peer
	for i := 0; i < n; i++ {
		m := &member{idx: i, id: fmt.Sprintf("node-%d", i), addr: fmt.Sprintf("node-%d:7400", i), dir: tb.TempDir()}
		c.nodes = append(c.nodes, m)
		peers = append(peers, skiff.Peer{ID: m.id, Address: m.addr})
	}
	tb.Cleanup(c.Close)
	for i := range c.nodes {
		if err := c.start(i, peers); err != nil {
			tb.Fatalf("skifftest: start node %d: %v", i, err)
		}
	}
	c.WaitForLeader()
	return c
}

// config returns the Config node i is started with.
func (c *Cluster) config(i int, peers []skiff.Peer) skiff.Config {
	m := c.nodes[i]
	cfg := skiff.DefaultConfig()
	cfg.Dir = m.dir
	cfg.ID = m.id
	cfg.AdvertiseAddr = m.addr
	cfg.InitialCluster = peers
	cfg.LogStore = c.opts.LogStore
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 300 * time.Millisecond
	cfg.Logger = c.opts.Logger.With("test_node", i)
	cfg.Listener = m.lis
	cfg.Dialer = c.dialer(i)
	cfg.RaftTransport = m.trans
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	return cfg
}

func (c *Cluster) start(i int, peers []skiff.Peer) error {
	c.mu.Lock()
	m := c.nodes[i]
	m.lis = bufconn.Listen(1 << 20)
	_, m.trans = raft.NewInmemTransportWithTimeout(raft.ServerAddress(m.addr), 500*time.Millisecond)
	for _, o := range c.nodes {
		if o.node != nil && o != m && !c.cut[pair(i, o.idx)] {
			m.trans.Connect(raft.ServerAddress(o.addr), o.trans)
			o.trans.Connect(raft.ServerAddress(m.addr), m.trans)
		}
	}
	cfg := c.config(i, peers)
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	m.node = node
	c.mu.Unlock()
	return nil
}

// Len returns the number of nodes, stopped ones included.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *skiff.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// Addr returns node i's gRPC address, which only Dialer can reach.
func (c *Cluster) Addr(i int) string { return c.nodes[i].addr }

// Dir returns node i's data dir.
func (c *Cluster) Dir(i int) string { return c.nodes[i].dir }

// WaitForLeader waits until a running node leads and every running node
// that can reach it knows it, and returns the leader's index. It fails the
// test after 10 seconds.
func (c *Cluster) WaitForLeader() int {
	c.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if i, ok := c.settledLeader(); ok {
			return i
		}
		time.Sleep(10 * time.Millisecond) // polling; nothing to wait on across nodes
	}
	c.tb.Fatalf("skifftest: no leader within 10s")
	return -1
}

// settledLeader returns the leader with the highest term, if every running
// node connected to it names it as leader.
func (c *Cluster) settledLeader() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	best, bestTerm := -1, uint64(0)
	for _, m := range c.nodes {
		if m.node == nil || !m.node.IsLeader() {
			continue
		}
		if t := m.node.Status().Term; best < 0 || t > bestTerm {
			best, bestTerm = m.idx, t
		}
	}
	if best < 0 {
		return -1, false
	}
	for _, m := range c.nodes {
		if m.node == nil || c.cut[pair(m.idx, best)] {
			continue
		}
		if id, _ := m.node.Leader(); id != c.nodes[best].id {
			return -1, false
		}
	}
	return best, true
}

// Leader waits for a settled leader (see WaitForLeader) and returns it.
func (c *Cluster) Leader() *skiff.Node { return c.Node(c.WaitForLeader()) }

// Follower returns a running node that is not the settled leader.
func (c *Cluster) Follower() *skiff.Node {
	c.tb.Helper()
	l := c.WaitForLeader()
	for i := range c.nodes {
		if n := c.Node(i); i != l && n != nil {
			return n
		}
	}
	c.tb.Fatalf("skifftest: no running follower")
	return nil
}

// Stop closes node i. Its data dir is kept for Restart.
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	c.mu.Lock()
	m := c.nodes[i]
	node := m.node
	m.node = nil
	for _, o := range c.nodes {
		if o != m && o.trans != nil {
			o.trans.Disconnect(raft.ServerAddress(m.addr))
		}
	}
	c.mu.Unlock()
	if node == nil {
		return
	}
	if err := node.Close(); err != nil {
		c.tb.Errorf("skifftest: close node %d: %v", i, err)
	}
}

// Restart starts a stopped node i again on its data dir.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if c.Node(i) != nil {
		c.tb.Fatalf("skifftest: Restart(%d): node is running", i)
	}
	if err := c.start(i, nil); err != nil {
		c.tb.Fatalf("skifftest: restart node %d: %v", i, err)
	}
}

// Partition cuts every link between the given nodes and the rest, both
// Raft and gRPC, until Heal. Open gRPC connections across the cut fail.
func (c *Cluster) Partition(side ...int) {
	c.mu.Lock()
	in := map[int]bool{}
	for _, i := range side {
		in[i] = true
	}
	for a := range c.nodes {
		for b := range c.nodes {
			if a < b && in[a] != in[b] {
				c.cutLocked(a, b)
			}
		}
	}
	c.mu.Unlock()
}

func (c *Cluster) cutLocked(a, b int) {
	c.cut[pair(a, b)] = true
	ma, mb := c.nodes[a], c.nodes[b]
	if ma.trans != nil {
		ma.trans.Disconnect(raft.ServerAddress(mb.addr))
	}
	if mb.trans != nil {
		mb.trans.Disconnect(raft.ServerAddress(ma.addr))
	}
	for _, from := range []*member{ma, mb} {
		for _, lc := range from.conns {
			if lc.to == a || lc.to == b {
				lc.Conn.Close()
			}
		}
	}
}

// Heal restores every link cut by Partition.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = map[[2]int]bool{}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b && a.node != nil && b.node != nil {
				a.trans.Connect(raft.ServerAddress(b.addr), b.trans)
			}
		}
	}
}

// Dialer returns a dialer for gRPC connections from outside the cluster
// (a network client in a test), which reaches every running node.
func (c *Cluster) Dialer() func(context.Context, string) (net.Conn, error) {
	return c.dialer(-1)
}

// dialer connects node from (or an outside caller, -1) to nodes by
// address, refusing links that are cut.
func (c *Cluster) dialer(from int) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c.mu.Lock()
		var to *member
		for _, m := range c.nodes {
			if m.addr == addr {
				to = m
			}
		}
		if to == nil || to.node == nil && to.lis == nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("skifftest: no node at %s", addr)
		}
		if from >= 0 && c.cut[pair(from, to.idx)] {
			c.mu.Unlock()
			return nil, fmt.Errorf("skifftest: link %d-%d is cut", from, to.idx)
		}
		lis := to.lis
		c.mu.Unlock()
		conn, err := lis.DialContext(ctx)
		if err != nil {
			return nil, err
		}
		if from < 0 {
			return conn, nil
		}
		lc := &linkConn{Conn: conn, to: to.idx}
		c.mu.Lock()
		fm := c.nodes[from]
		fm.conns = append(fm.conns, lc)
		c.mu.Unlock()
		return lc, nil
	}
}

// linkConn is a connection between two nodes, closed by Partition.
type linkConn struct {
	net.Conn
	to int
}

// Close stops every node. It is registered with t.Cleanup by NewCluster.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.mu.Lock()
		node := c.nodes[i].node
		c.nodes[i].node = nil
		c.mu.Unlock()
		if node != nil {
			node.Close()
		}
	}
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// Client dials a network client to the given nodes (every node when none
// are given) through the cluster's in-memory network, and closes it at
// the end of the test.
func (c *Cluster) Client(nodes []int, opts ...skiff.ClientOption) *skiff.Client {
	c.tb.Helper()
	if len(nodes) == 0 {
		for i := range c.nodes {
			nodes = append(nodes, i)
		}
	}
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, c.nodes[i].addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]skiff.ClientOption{skiff.WithDialer(c.Dialer())}, opts...)
	cl, err := skiff.Dial(ctx, addrs, opts...)
	if err != nil {
		c.tb.Fatalf("skifftest: Dial(%v): %v", addrs, err)
	}
	c.tb.Cleanup(func() { cl.Close() })
	return cl
}
