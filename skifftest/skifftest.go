// Package skifftest runs a skiff cluster inside one test process, in the
// spirit of net/http/httptest.
//
// NewCluster starts n nodes whose Raft traffic goes over
// raft.InmemTransport and whose gRPC traffic (forwarding, joins, network
// clients) goes over in-memory bufconn listeners. Data dirs are real
// directories under t.TempDir, so restarts exercise the real log store and
// snapshots. Every message between nodes, and between outside clients
// and nodes, goes through a seeded fault network: Partition, CutOneWay,
// SetLinkFaults (delay, jitter, drops), SetNetworkFaults and CutClients
// degrade links until Heal. Stop and Restart take a node down and bring it
// back on the same data dir; AddNode joins a new one. Nodes log to the
// test's log. Everything is torn down by t.Cleanup.
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
// fast timeouts and the default log store, logging to the test's log.
type Options struct {
	// LogStore selects the nodes' log store (default: skiff's, LogStoreWAL).
	LogStore skiff.LogStoreKind
	// Logger receives every node's logs. Nil sends them to the test's log
	// (tb.Log, shown when the test fails or with -v), unless Quiet.
	Logger *slog.Logger
	// Quiet discards the logs when Logger is nil.
	Quiet bool
	// LogLevel is the least level sent to the test's log when Logger is
	// nil (default slog.LevelInfo).
	LogLevel slog.Level
	// Configure, when set, adjusts node i's Config before each start.
	Configure func(i int, cfg *skiff.Config)
	// Seed seeds every random choice of the fault network (delay jitter,
	// drops), so that a run can be repeated.
	Seed int64
}

// Cluster is a running in-process cluster. Its methods may be called from
// any goroutine; those that fail the test (WaitForLeader, Leader,
// Follower, Stop, Restart, AddNode, Client) only from the test's.
type Cluster struct {
	tb   testing.TB
	opts Options
	net  *network
	logw *tbWriter // nil unless logs go to tb

	mu    sync.Mutex
	nodes []*member
	peers []skiff.Peer // the initial members
}

type member struct {
	idx   int
	id    string
	addr  string
	dir   string
	join  []string    // addresses to join through, for a node added later
	node  *skiff.Node // nil while stopped
	lis   *bufconn.Listener
	trans *raft.InmemTransport
}

// NewCluster starts an n-node cluster and waits until it has a leader. It
// fails tb if the cluster cannot start.
func NewCluster(tb testing.TB, n int, opts *Options) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	if opts != nil {
		c.opts = *opts
	}
	c.net = newNetwork(c.opts.Seed)
	switch {
	case c.opts.Logger != nil:
	case c.opts.Quiet:
		c.opts.Logger = slog.New(slog.DiscardHandler)
	default:
		c.opts.Logger, c.logw = newTBLogger(tb, c.opts.LogLevel)
	}
	for i := 0; i < n; i++ {
		m := c.newMember()
		c.peers = append(c.peers, skiff.Peer{ID: m.id, Address: m.addr})
	}
	tb.Cleanup(c.Close)
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			tb.Fatalf("skifftest: start node %d: %v", i, err)
		}
	}
	c.WaitForLeader()
	return c
}

// newMember adds a stopped member with the next index.
func (c *Cluster) newMember() *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.nodes)
	m := &member{idx: i, id: fmt.Sprintf("node-%d", i), addr: fmt.Sprintf("node-%d:7400", i), dir: c.tb.TempDir()}
	c.nodes = append(c.nodes, m)
	return m
}

// config returns the Config node i is started with.
func (c *Cluster) config(i int) skiff.Config {
	m := c.nodes[i]
	cfg := skiff.DefaultConfig()
	cfg.Dir = m.dir
	cfg.ID = m.id
	cfg.AdvertiseAddr = m.addr
	if m.join == nil {
		cfg.InitialCluster = c.peers
	}
	cfg.Join = m.join
	cfg.LogStore = c.opts.LogStore
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 300 * time.Millisecond
	cfg.Logger = c.opts.Logger.With("test_node", i)
	cfg.Listener = m.lis
	cfg.Dialer = c.dialer(i)
	cfg.RaftTransport = &faultTransport{InmemTransport: m.trans, c: c, from: i, done: make(chan struct{})}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	return cfg
}

func (c *Cluster) start(i int) error {
	c.mu.Lock()
	m := c.nodes[i]
	m.lis = bufconn.Listen(1 << 20)
	_, m.trans = raft.NewInmemTransportWithTimeout(raft.ServerAddress(m.addr), 500*time.Millisecond)
	// Transports stay connected while both nodes run; the fault network
	// decides what gets through.
	for _, o := range c.nodes {
		if o.node != nil && o != m {
			m.trans.Connect(raft.ServerAddress(o.addr), o.trans)
			o.trans.Connect(raft.ServerAddress(m.addr), m.trans)
		}
	}
	cfg := c.config(i)
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
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *skiff.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// ID returns node i's ID, which stays the same across restarts.
func (c *Cluster) ID(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].id
}

// Addr returns node i's gRPC address, which only Dialer can reach.
func (c *Cluster) Addr(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].addr
}

// Dir returns node i's data dir.
func (c *Cluster) Dir(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].dir
}

// indexOf returns the index of the node at addr, or -1.
func (c *Cluster) indexOf(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.nodes {
		if m.addr == addr {
			return m.idx
		}
	}
	return -1
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
	if err := c.start(i); err != nil {
		c.tb.Fatalf("skifftest: restart node %d: %v", i, err)
	}
}

// AddNode starts a node on a fresh data dir that joins the cluster as a
// voter through the running nodes, and returns its index once it is a
// member. Remove one with a member's RemoveServer and then Stop.
func (c *Cluster) AddNode() int {
	c.tb.Helper()
	m := c.newMember()
	c.mu.Lock()
	for _, o := range c.nodes {
		if o.node != nil {
			m.join = append(m.join, o.addr)
		}
	}
	c.mu.Unlock()
	if err := c.start(m.idx); err != nil {
		c.tb.Fatalf("skifftest: add node %d: %v", m.idx, err)
	}
	return m.idx
}

// Dialer returns a dialer for gRPC connections from outside the cluster
// (a network client in a test), which reaches every running node that
// CutClients has not cut off, through the links' faults.
func (c *Cluster) Dialer() func(context.Context, string) (net.Conn, error) {
	return c.dialer(Clients)
}

// dialer connects node from (or Clients) to nodes by address. A link cut
// in either direction refuses new connections, as a lost SYN or SYN-ACK
// would.
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
		lis := to.lis
		c.mu.Unlock()
		if c.net.isCut(from, to.idx) || c.net.isCut(to.idx, from) {
			return nil, fmt.Errorf("skifftest: link %d-%d is cut", from, to.idx)
		}
		conn, err := lis.DialContext(ctx)
		if err != nil {
			return nil, err
		}
		fc := &faultConn{Conn: conn, net: c.net, from: from, to: to.idx, closed: make(chan struct{})}
		c.net.mu.Lock()
		c.net.conns[fc] = true
		c.net.mu.Unlock()
		return fc, nil
	}
}

// Close stops every node. It is registered with t.Cleanup by NewCluster.
func (c *Cluster) Close() {
	for i := 0; i < c.Len(); i++ {
		c.mu.Lock()
		node := c.nodes[i].node
		c.nodes[i].node = nil
		c.mu.Unlock()
		if node != nil {
			node.Close()
		}
	}
	if c.logw != nil {
		c.logw.stop()
	}
}

// Client dials a network client to the given nodes (every node when none
// are given) through the cluster's in-memory network, and closes it at
// the end of the test. Its connections meet the faults of the links from
// Clients.
func (c *Cluster) Client(nodes []int, opts ...skiff.ClientOption) *skiff.Client {
	c.tb.Helper()
	if len(nodes) == 0 {
		for i := 0; i < c.Len(); i++ {
			nodes = append(nodes, i)
		}
	}
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, c.Addr(i))
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
