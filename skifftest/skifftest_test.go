package skifftest_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// TestClusterBasics uses the whole skifftest API the way a user's test
// would: a three-node cluster, a write through a follower, a
// partition that moves leadership, and a node restarted on its data dir.
func TestClusterBasics(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A write on one follower is visible to a linearizable read on the
	// other.
	old := c.WaitForLeader()
	f1, f2 := (old+1)%3, (old+2)%3
	rev, err := c.Node(f1).Put(ctx, "users/alice", []byte("admin"))
	if err != nil {
		t.Fatalf("Put on follower %d: %v", f1, err)
	}
	mustGet(ctx, t, c.Node(f2), "users/alice", "admin", rev)

	// Cut the leader away: the other two elect a new leader among
	// themselves and keep accepting writes.
	c.Partition(old)
	now := waitForNewLeader(t, c, old)
	if now != f1 && now != f2 {
		t.Fatalf("leader after partition = %d, want %d or %d", now, f1, f2)
	}
	rev, err = c.Node(f1).Put(ctx, "users/alice", []byte("owner"))
	if err != nil {
		t.Fatalf("Put on majority side: %v", err)
	}
	mustGet(ctx, t, c.Node(f2), "users/alice", "owner", rev)

	// The isolated old leader cannot commit, and a stale read there still
	// shows what it had before the cut.
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = c.Node(old).Put(short, "users/bob", []byte("viewer"))
	cancelShort()
	if err == nil {
		t.Fatalf("Put on isolated node %d succeeded, want an error", old)
	}
	kv, err := c.Node(old).Get(ctx, "users/alice", skiff.Stale())
	if err != nil || string(kv.Value) != "admin" {
		t.Fatalf("stale Get on isolated node = %v, %v, want %q", kv, err, "admin")
	}

	// After healing, the old leader catches up.
	c.Heal()
	c.WaitForLeader()
	mustGet(ctx, t, c.Node(old), "users/alice", "owner", rev)

	// Stop a node, write while it is down, restart it on the same data
	// dir: it keeps what it had and catches up on what it missed.
	c.Stop(f2)
	if c.Node(f2) != nil {
		t.Fatalf("Node(%d) after Stop = non-nil, want nil", f2)
	}
	rev2, err := c.Leader().Put(ctx, "config/theme", []byte("dark"))
	if err != nil {
		t.Fatalf("Put with one node down: %v", err)
	}
	c.Restart(f2)
	restarted := c.Node(f2)
	mustGet(ctx, t, restarted, "users/alice", "owner", rev)
	mustGet(ctx, t, restarted, "config/theme", "dark", rev2)
	c.WaitForLeader()
}

// mustGet checks a linearizable Get of key on n.
func mustGet(ctx context.Context, t *testing.T, n *skiff.Node, key, want string, rev uint64) {
	t.Helper()
	kv, err := n.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q) on %s: %v", key, n.ID(), err)
	}
	if string(kv.Value) != want || kv.ModRevision != rev {
		t.Fatalf("Get(%q) on %s = %q@%d, want %q@%d", key, n.ID(), kv.Value, kv.ModRevision, want, rev)
	}
}

// waitForNewLeader polls until a node other than old leads the cluster.
func waitForNewLeader(t *testing.T, c *skifftest.Cluster, old int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if i := c.WaitForLeader(); i != old {
			return i
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %d still leads 10s after being partitioned away", old)
	return -1
}
