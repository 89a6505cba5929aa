package process

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// Credentials of every test cluster. The secret makes the nodes' peers
// authenticated, which a node on a non-loopback address requires; the
// token gives the client its role.
const (
	clusterSecret = "skiff-faults-cluster-secret"
	clientToken   = "skiff-faults-client-token"
	nodePort      = "7400" // in the namespace tier every node has an address of its own
)

// clusterOpts says what cluster to start.
type clusterOpts struct {
	size          int
	store         skiff.LogStoreKind
	timing        timing
	snapshotEvery uint64
	netns         bool // one namespace per node; else processes on 127.0.0.1
}

// node is one member, seen from the test: its configuration and its
// current process, if any.
type node struct {
	spec     nodeSpec
	ep       *endpoint // nil on loopback
	specPath string
	logPath  string
	p        *proc // the current or last process
	// expectDown: the test stopped the process (or it refused damaged
	// files) and it is not to be restarted by heal.
	expectDown bool
	damaged    bool // refused to start on damaged files; stays down
	frozen     bool // SIGSTOPped
	// mayStop: the node runs with a damaged entry it has not applied,
	// and may stop by itself with ErrCorrupt when it comes to it.
	mayStop bool
}

// cluster is the node processes, the client process and, in the
// namespace tier, the network between them.
type cluster struct {
	opts     clusterOpts
	base     string // data dirs, logs, specs and the history
	top      *topology
	nodes    []*node
	clientEp *endpoint
}

// newCluster starts opts.size node processes with a static initial
// cluster and waits until each has opened. Processes, namespaces and (on
// success) files go in t.Cleanup; on failure the files stay and their
// place is logged.
func newCluster(t testing.TB, opts clusterOpts) *cluster {
	t.Helper()
	c := &cluster{opts: opts, base: keptDir(t)}
	names := make([]string, opts.size)
	for i := range names {
		names[i] = "n" + strconv.Itoa(i)
	}
	var addrs []string
	if opts.netns {
		c.top = newTopology(t, append(names, "client"))
		c.clientEp = c.top.eps["client"]
		for _, name := range names {
			addrs = append(addrs, net.JoinHostPort(c.top.eps[name].ip, nodePort))
		}
	} else {
		addrs = freeAddrs(t, opts.size)
	}
	var peers []skiff.Peer
	for i, name := range names {
		peers = append(peers, skiff.Peer{ID: name, Address: addrs[i]})
	}
	for i, name := range names {
		n := &node{specPath: filepath.Join(c.base, name+".json"), logPath: filepath.Join(c.base, name+".log")}
		n.spec = nodeSpec{ID: name, Dir: filepath.Join(c.base, name), Bind: addrs[i], Peers: peers, Store: opts.store,
			Secret: clusterSecret, Token: clientToken, Timing: opts.timing, SnapshotEvery: opts.snapshotEvery}
		if c.top != nil {
			n.ep = c.top.eps[name]
		}
		c.nodes = append(c.nodes, n)
	}
	// Registered after the topology's cleanup, so it runs first: no
	// process outlives its namespace.
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.p != nil {
				n.p.kill(t)
			}
		}
	})
	c.startAll(t, c.nodes)
	return c
}

// keptDir makes a directory outside t.TempDir, removed after a passing
// test and kept, with its path logged, after a failing one (or with
// -faults.keep).
func keptDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "skiff-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("node logs, data dirs and the history are kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // all held until every port is chosen, so none repeats
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

func (c *cluster) ns(e *endpoint) string {
	if e == nil {
		return ""
	}
	return e.ns
}

// start starts n's process; it does not wait for it to open.
func (c *cluster) start(t testing.TB, n *node) {
	t.Helper()
	n.p = startProc(t, n.spec.ID, c.ns(n.ep), "node", n.spec, n.specPath, n.logPath)
	n.expectDown, n.frozen = false, false
}

// startAll starts nodes and waits until each has opened.
func (c *cluster) startAll(t testing.TB, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		c.start(t, n)
	}
	for _, n := range nodes {
		if _, err := n.p.expect(time.Minute, "ready"); err != nil {
			t.Fatalf("node %s did not open: %v %s\n%s", n.spec.ID, err, n.p.exitMsg, tail(n.logPath, 20))
		}
	}
}

// up reports whether n's process runs (frozen or not).
func (n *node) up() bool { return n.p != nil && !n.p.exited() }

// kill ends n's process with SIGKILL.
func (n *node) kill(t testing.TB) {
	t.Helper()
	n.expectDown = true
	n.p.kill(t)
	n.frozen = false
}

func (n *node) freeze() {
	n.p.signal(syscall.SIGSTOP)
	n.frozen = true
}

func (n *node) thaw() {
	n.p.signal(syscall.SIGCONT)
	n.frozen = false
}

// status asks n's process for its status.
func (n *node) status() (nodeStatus, error) {
	var st nodeStatus
	if !n.up() || n.frozen {
		return st, fmt.Errorf("node %s is not running", n.spec.ID)
	}
	n.p.drain()
	n.p.signal(syscall.SIGUSR1)
	m, err := n.p.expect(5*time.Second, "status")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(m.body), &st)
}

// running returns the nodes whose process runs and is not frozen.
func (c *cluster) running() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.up() && !n.frozen {
			out = append(out, n)
		}
	}
	return out
}

// leader returns the running node that says it leads in the highest
// term, polling until timeout; nil when none does. A leader cut off from
// its peers still says so until its lease runs out, hence the term.
func (c *cluster) leader(timeout time.Duration) *node {
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		var best *node
		var term uint64
		for _, n := range c.running() {
			if st, err := n.status(); err == nil && st.State == "Leader" && (best == nil || st.Term > term) {
				best, term = n, st.Term
			}
		}
		if best != nil || time.Now().After(deadline) {
			return best
		}
		<-poll.C
	}
}

// heal undoes every fault: the network is mended, frozen nodes go on,
// and nodes that are down (but for one that refused damaged files) start
// again. A node found down that the test did not stop fails the test.
func (c *cluster) heal(t testing.TB) {
	t.Helper()
	if c.top != nil {
		c.top.heal(t)
	}
	var restart []*node
	for _, n := range c.nodes {
		if n.frozen {
			n.thaw()
		}
		if n.up() || n.damaged {
			continue
		}
		c.checkExit(t, n)
		restart = append(restart, n)
	}
	c.startAll(t, restart)
}

// checkExit fails the test if n's process ended without the test
// stopping it: a crash, or a node that stopped by itself.
func (c *cluster) checkExit(t testing.TB, n *node) {
	t.Helper()
	if n.p != nil && n.p.exited() && !n.expectDown && n.mayStop && stoppedCorrupt(n.p.exitMsg) {
		t.Logf("node %s stopped by itself on its damaged entry, as it may: %s", n.spec.ID, n.p.exitMsg)
		n.expectDown, n.damaged = true, true
		return
	}
	if n.p != nil && n.p.exited() && !n.expectDown {
		t.Errorf("node %s exited by itself (%v) %s; log %s:\n%s", n.spec.ID, n.p.waitErr, n.p.exitMsg, n.logPath, tail(n.logPath, 30))
		n.expectDown = true // reported once
	}
}

// stoppedCorrupt reports whether an exit message says the node stopped
// with ErrCorrupt.
func stoppedCorrupt(body string) bool {
	var ex nodeExit
	return json.Unmarshal([]byte(body), &ex) == nil && ex.Corrupt
}

// converge polls the running nodes until they all report the same
// applied index and listing revision, and returns their statuses; the
// error says how they last differed.
func (c *cluster) converge(timeout time.Duration) ([]nodeStatus, error) {
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		sts, err := c.allStatuses()
		if err == nil {
			for _, st := range sts[1:] {
				if st.Applied != sts[0].Applied || st.Rev != sts[0].Rev {
					err = fmt.Errorf("node %s at applied index %d (listing revision %d), node %s at %d (%d)",
						sts[0].ID, sts[0].Applied, sts[0].Rev, st.ID, st.Applied, st.Rev)
					break
				}
			}
		}
		if err == nil || time.Now().After(deadline) {
			return sts, err
		}
		<-poll.C
	}
}

// allStatuses asks every running node for its status.
func (c *cluster) allStatuses() ([]nodeStatus, error) {
	var sts []nodeStatus
	for _, n := range c.running() {
		st, err := n.status()
		if err == nil && st.ListErr != "" {
			err = fmt.Errorf("node %s: stale list: %s", n.spec.ID, st.ListErr)
		}
		if err != nil {
			return sts, err
		}
		sts = append(sts, st)
	}
	if len(sts) == 0 {
		return nil, fmt.Errorf("no node is running")
	}
	return sts, nil
}

// startClient starts the client process, dialed to every node, and waits
// until it has reached one.
func (c *cluster) startClient(t testing.TB, spec clientSpec) *proc {
	t.Helper()
	spec.Token = clientToken
	for _, n := range c.nodes {
		spec.Addrs = append(spec.Addrs, n.spec.Bind)
	}
	p := startProc(t, "client", c.ns(c.clientEp), "client", spec,
		filepath.Join(c.base, "client.json"), filepath.Join(c.base, "client.log"))
	t.Cleanup(func() { p.kill(t) })
	if _, err := p.expect(time.Minute, "ready"); err != nil {
		t.Fatalf("client: %v\n%s", err, tail(p.logPath, 20))
	}
	return p
}
