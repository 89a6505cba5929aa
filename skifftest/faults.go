package skifftest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/skiffkv/skiff"
)

// Partition cuts every link between the given nodes and the rest, both
// ways, for Raft and gRPC, until Heal. Open gRPC connections across the
// cut fail. Links from Clients are not touched (see CutClients).
func (c *Cluster) Partition(side ...int) {
	in := map[int]bool{}
	for _, i := range side {
		in[i] = true
	}
	n := c.Len()
	for a := 0; a < n; a++ {
		for b := 0; b < n; b++ {
			if a != b && in[a] != in[b] {
				c.net.setCut(a, b, true)
			}
		}
	}
}

// CutOneWay drops every message from node from to node to, Raft and
// gRPC, until Heal; messages from to to from still arrive. A Raft call
// from→to is lost, and a call to→from is delivered but its answer lost;
// a gRPC connection stalls in the cut direction.
func (c *Cluster) CutOneWay(from, to int) { c.net.setCut(from, to, true) }

// SetLinkFaults degrades the direction from→to (node indexes, or Clients
// for the links from outside callers) with f until Heal, or until set
// again; a zero f restores the link.
func (c *Cluster) SetLinkFaults(from, to int, f LinkFaults) { c.net.setFaults(from, to, f) }

// SetNetworkFaults degrades every direction of every link between nodes
// (not those from Clients) with f, nodes added later excepted.
func (c *Cluster) SetNetworkFaults(f LinkFaults) {
	n := c.Len()
	for a := 0; a < n; a++ {
		for b := 0; b < n; b++ {
			if a != b {
				c.net.setFaults(a, b, f)
			}
		}
	}
}

// CutClients cuts the links, both ways, between outside callers
// (Cluster.Client, Cluster.Dialer) and the given nodes until Heal: their
// open connections fail and new ones are refused, so clients can reach
// only the other nodes.
func (c *Cluster) CutClients(nodes ...int) {
	for _, i := range nodes {
		c.net.setCut(Clients, i, true)
		c.net.setCut(i, Clients, true)
	}
}

// Heal removes every fault: partitions, one-way cuts, client cuts and
// link faults.
func (c *Cluster) Heal() { c.net.heal() }

// WaitForLeader waits until some node leads with the support of the
// cluster (see WaitForLeaderWithin) and returns its index. It fails the
// test after 10 seconds.
func (c *Cluster) WaitForLeader() int {
	c.tb.Helper()
	i, err := c.WaitForLeaderWithin(10 * time.Second)
	if err != nil {
		c.tb.Fatalf("skifftest: %v", err)
	}
	return i
}

// WaitForLeaderWithin waits up to d for a settled leader and returns its
// index, or an error; it does not fail the test. A leader is settled when
// a majority of the voters in its configuration, itself included, run,
// can reach it both ways and name it as leader, and every other running
// member that can reach it names it too. A leader cut off by Partition
// still believes it leads for a while; it is never settled.
func (c *Cluster) WaitForLeaderWithin(d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		if i, ok := c.settledLeader(); ok {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no settled leader within %v", d)
		}
		time.Sleep(10 * time.Millisecond) // polling; nothing to wait on across nodes
	}
}

// settledLeader returns a settled leader, preferring the highest term.
func (c *Cluster) settledLeader() (int, bool) {
	type cand struct {
		i    int
		term uint64
	}
	var leaders []cand
	for i := 0; i < c.Len(); i++ {
		if n := c.Node(i); n != nil && n.IsLeader() {
			leaders = append(leaders, cand{i, n.Status().Term})
		}
	}
	sort.Slice(leaders, func(a, b int) bool { return leaders[a].term > leaders[b].term })
	for _, l := range leaders {
		if c.supported(l.i) {
			return l.i, true
		}
	}
	return -1, false
}

// supported reports whether leader l is settled (see WaitForLeaderWithin).
func (c *Cluster) supported(l int) bool {
	ln := c.Node(l)
	if ln == nil {
		return false
	}
	ms, err := ln.Members(context.Background())
	if err != nil {
		return false
	}
	voters, follow := 0, 0
	for _, m := range ms {
		if m.Voter {
			voters++
		}
		i := c.indexOf(m.Address)
		if i < 0 {
			continue
		}
		n := c.Node(i)
		if n == nil || i != l && (c.net.isCut(i, l) || c.net.isCut(l, i)) {
			continue
		}
		if id, _ := n.Leader(); id != c.ID(l) {
			return false // reachable, yet it follows someone else or no one
		}
		if m.Voter {
			follow++
		}
	}
	return follow > voters/2
}

// Leader waits for a settled leader (see WaitForLeader) and returns it.
func (c *Cluster) Leader() *skiff.Node { return c.Node(c.WaitForLeader()) }

// Follower returns a running node that is not the settled leader.
func (c *Cluster) Follower() *skiff.Node {
	c.tb.Helper()
	l := c.WaitForLeader()
	for i := 0; i < c.Len(); i++ {
		if n := c.Node(i); i != l && n != nil {
			return n
		}
	}
	c.tb.Fatalf("skifftest: no running follower")
	return nil
}
