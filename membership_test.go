package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// These tests run real nodes on loopback ports: Raft goes over the gRPC
// transport, exactly as in production.

func members(t testing.TB, n *skiff.Node) map[string]skiff.Member {
	t.Helper()
	ms, err := n.Members(testCtx(t))
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	out := map[string]skiff.Member{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func TestJoinRemoveRejoin(t *testing.T) {
	ctx := testCtx(t)
	first := openNode(t, testConfig(t.TempDir()))
	var nodes []*skiff.Node
	var cfgs []skiff.Config
	for i := 0; i < 2; i++ {
		cfg := testConfig(t.TempDir())
		cfg.ID = fmt.Sprintf("joiner-%d", i)
		cfg.Join = []string{"127.0.0.1:1", first.Addr()} // a dead address first: join tries the next
		nodes = append(nodes, openNode(t, cfg))
		cfgs = append(cfgs, cfg)
	}
	eventually(t, 10*time.Second, func() error {
		if ms := members(t, nodes[1]); len(ms) != 3 {
			return fmt.Errorf("members seen by the last joiner = %v", ms)
		}
		return nil
	})
	// A write through a joined node is read back on another.
	if _, err := nodes[0].Put(ctx, "hello", []byte("world")); err != nil {
		t.Fatalf("Put via joined node: %v", err)
	}
	checkAll(t, nodes[1], map[string]string{"hello": "world"})

	// Re-adding a member as it is changes nothing.
	before := first.Status().CommitIndex
	if err := nodes[0].AddVoter(ctx, "joiner-0", nodes[0].Addr()); err != nil {
		t.Fatalf("AddVoter(existing): %v", err)
	}
	if after := first.Status().CommitIndex; after != before {
		t.Fatalf("re-adding a member committed entries (%d -> %d)", before, after)
	}
	// Another ID on a member's address is a conflict.
	err := first.AddVoter(ctx, "impostor", nodes[0].Addr())
	wantErr(t, "AddVoter(other ID, same address)", err, skiff.ErrMemberConflict)
	wantErr(t, "RemoveServer(unknown)", first.RemoveServer(ctx, "nobody"), skiff.ErrNotMember)

	// Remove joiner-1 (through a follower), then it rejoins on a fresh dir.
	if err := nodes[0].RemoveServer(ctx, "joiner-1"); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	if ms := members(t, first); len(ms) != 2 {
		t.Fatalf("members after remove = %v, want 2", ms)
	}
	nodes[1].Close()
	cfg := cfgs[1]
	cfg.Dir = t.TempDir()
	cfg.BindAddr = "127.0.0.1:0"
	rejoined := openNode(t, cfg)
	eventually(t, 10*time.Second, func() error { return hasAll(rejoined, map[string]string{"hello": "world"}) })
	if m, ok := members(t, first)["joiner-1"]; !ok || m.Address != rejoined.Addr() || !m.Voter {
		t.Fatalf("rejoined member = %+v, want voter at %s", m, rejoined.Addr())
	}

	// A non-voter receives the log but does not vote.
	nv := testConfig(t.TempDir())
	nv.ID = "learner"
	nv.Join = []string{first.Addr()}
	nv.JoinAsNonvoter = true
	learner := openNode(t, nv)
	eventually(t, 10*time.Second, func() error { return hasAll(learner, map[string]string{"hello": "world"}) })
	if m := members(t, first)["learner"]; m.Voter {
		t.Fatalf("learner is a voter: %+v", m)
	}

	// Leadership moves on request.
	if err := learner.TransferLeadership(ctx, "joiner-0"); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if id, _ := first.Leader(); id != "joiner-0" {
			return fmt.Errorf("leader is %q", id)
		}
		return nil
	})
}

func TestRestartedMemberNeedsNoJoinList(t *testing.T) {
	first := openNode(t, testConfig(t.TempDir()))
	cfg := testConfig(t.TempDir())
	cfg.Join = []string{first.Addr()}
	second := openNode(t, cfg)
	addr := second.Addr()
	if _, err := first.Put(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	second.Close()
	cfg.Join = nil
	cfg.BindAddr = addr // members know it by this address
	second = openNode(t, cfg)
	checkAll(t, second, map[string]string{"k": "v"})
	if ms := members(t, second); len(ms) != 2 {
		t.Fatalf("members after restart = %v, want 2 (no new bootstrap)", ms)
	}
}

func TestStaticInitialCluster(t *testing.T) {
	nodes, _ := staticCluster(t, 3)
	if _, err := nodes[2].Put(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkAll(t, nodes[0], map[string]string{"k": "v"})
	if ms := members(t, nodes[1]); len(ms) != 3 {
		t.Fatalf("members = %v, want 3", ms)
	}
}

// staticCluster opens n nodes on loopback ports, all listed up front;
// configure, if given, adjusts each node's Config.
func staticCluster(t *testing.T, n int, configure ...func(i int, cfg *skiff.Config)) ([]*skiff.Node, []skiff.Config) {
	// Reserve three addresses by opening and closing listeners would race;
	// instead start each node on its own port and give the others the list.
	cfgs := make([]skiff.Config, n)
	var peers []skiff.Peer
	for i := range cfgs {
		cfgs[i] = testConfig(t.TempDir())
		cfgs[i].ID = fmt.Sprintf("s%d", i)
		cfgs[i].BindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		for _, f := range configure {
			f(i, &cfgs[i])
		}
		peers = append(peers, skiff.Peer{ID: cfgs[i].ID, Address: cfgs[i].BindAddr})
	}
	var nodes []*skiff.Node
	for i := range cfgs {
		cfgs[i].InitialCluster = peers
		n, err := skiff.Open(testCtx(t), cfgs[i])
		if err != nil {
			t.Fatalf("Open(s%d): %v", i, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return nodes, cfgs
}

// Over the real transport, Raft's calls to a member that is down wait for
// it to come back: a restarted member gets what was written while it was
// away, and a node whose peers are all gone still closes at once.
func TestMemberDownAndBackOverGRPC(t *testing.T) {
	nodes, cfgs := staticCluster(t, 3)
	ctx := testCtx(t)
	down := follower(t, nodes)
	if err := nodes[down].Close(); err != nil {
		t.Fatal(err)
	}
	up := nodes[(down+1)%3]
	want := putAll(t, up, "away", 20)
	var err error
	if nodes[down], err = skiff.Open(ctx, cfgs[down]); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { nodes[down].Close() })
	eventually(t, 10*time.Second, func() error { return hasAll(nodes[down], want) })

	// The leader, left alone, has calls waiting for both peers.
	var last *skiff.Node
	for _, n := range nodes {
		if n.IsLeader() {
			last = n
		}
	}
	if last == nil {
		t.Fatal("no leader")
	}
	for _, n := range nodes {
		if n != last {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Raft's next heartbeats find the peers gone (one every 100 ms).
	eventually(t, 5*time.Second, func() error {
		if last.IsLeader() {
			return errors.New("still leading")
		}
		return nil
	})
	start := time.Now()
	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close with every peer down took %v", took)
	}
}

// AddVoter used to make an unreachable or mistyped address a voter at
// once: a one-node cluster then needed two votes to commit anything and
// stopped for good. Now the server is a non-voter until it has caught up,
// and a bad address is refused outright.
func TestAddVoterWaitsForCatchUp(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	ctx := testCtx(t)
	err := n.AddVoter(ctx, "typo", "127.0.0.1")
	wantErr(t, "AddVoter(no port)", err, skiff.ErrInvalidArgument)

	ghost := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = n.AddVoter(short, "ghost", ghost)
	wantErr(t, "AddVoter(unreachable)", err, skiff.ErrTimeout)
	if m, ok := members(t, n)["ghost"]; !ok || m.Voter {
		t.Fatalf("ghost after a failed AddVoter = %+v (present %v), want a non-voter", m, ok)
	}
	if _, ok := members(t, n)["typo"]; ok {
		t.Fatal("a refused address became a member")
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	if _, err := n.Put(wctx, "still", []byte("writable")); err != nil {
		t.Fatalf("Put after adding an unreachable server: %v", err)
	}
}

// TransferLeadership with no other voter to take over used to retry until
// its deadline; it fails at once.
func TestTransferLeadershipWithoutAnotherVoter(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	start := time.Now()
	err := n.TransferLeadership(testCtx(t), "")
	wantErr(t, "TransferLeadership(\"\") alone", err, skiff.ErrInvalidArgument)
	err = n.TransferLeadership(testCtx(t), "nobody")
	wantErr(t, "TransferLeadership(nobody)", err, skiff.ErrNotMember)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("refusing took %v", took)
	}
}

// A leader that removes itself steps down and stays up. Raft's default
// shut it down: it then served nothing and never said why, and calls to
// it waited for their deadlines. Now it says it is no longer a member,
// and a client carries on with the others.
func TestLeaderRemovesItself(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	old := c.WaitForLeader()
	l := c.Node(old)
	ctx := testCtx(t)
	if err := l.RemoveServer(ctx, l.ID()); err != nil {
		t.Fatalf("RemoveServer(itself): %v", err)
	}
	_, err := l.Put(ctx, "k", []byte("v"))
	wantErr(t, "Put on the removed node", err, skiff.ErrNotMember)
	if _, err := c.Client(nil).Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("client Put after the leader left: %v", err)
	}
	if ms := members(t, c.Node(newLeader(t, c, old))); len(ms) != 2 {
		t.Fatalf("members = %v, want the two others", ms)
	}
}

// A removal that took effect is not reported as failed when Raft's answer
// to it is lost with the leadership (the leader stepped down as the change
// committed) and the retry finds the member already gone: whether the
// leader removed a follower or itself.
func TestRemovalAnsweredLateSucceeds(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	l := c.Node(c.WaitForLeader())
	ctx := testCtx(t)
	f := c.Node(follower(t, []*skiff.Node{c.Node(0), c.Node(1), c.Node(2)}))
	skiff.LoseLeadershipAfterRemoval(l)
	if err := l.RemoveServer(ctx, f.ID()); err != nil {
		t.Fatalf("RemoveServer(follower) whose answer was lost: %v", err)
	}
	if ms := members(t, l); len(ms) != 2 {
		t.Fatalf("members = %v, want two", ms)
	}
	skiff.LoseLeadershipAfterRemoval(l)
	if err := l.RemoveServer(ctx, l.ID()); err != nil {
		t.Fatalf("RemoveServer(itself) whose answer was lost: %v", err)
	}
	if err := l.RemoveServer(ctx, "never-a-member"); !errors.Is(err, skiff.ErrNotMember) {
		t.Fatalf("RemoveServer(never-a-member) = %v, want ErrNotMember", err)
	}
}
