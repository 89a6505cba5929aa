package faults

import (
	"time"
)

// The fault classes that stop, restart, add and remove nodes, or move
// leadership.

// leaveBehind cuts a follower off until the leader has taken a snapshot
// and truncated its log past everything the follower has, then heals: the
// follower can only catch up by installing the snapshot. It returns the
// follower and the snapshot's index.
func (r *run) leaveBehind() (f int, snap uint64) {
	r.t.Helper()
	l := r.leader()
	f = r.others(l)[0]
	r.c.Partition(f)
	behind := r.c.Node(f).Status().AppliedIndex
	// TrailingLogs is 32: a snapshot 100 entries on leaves a log that
	// starts past the follower's last entry.
	r.waitFor(20*time.Second, "the leader to apply 100 entries past the cut-off follower", func() bool {
		return r.c.Node(l).Status().AppliedIndex > behind+100
	})
	if err := r.c.Node(l).Snapshot(); err != nil {
		r.t.Fatalf("Snapshot on leader %d: %v", l, err)
	}
	snap = r.c.Node(l).Status().LastSnapshotIndex
	r.note("follower %d cut off at %d until leader %d snapshotted at %d", f, behind, l, snap)
	r.c.Heal()
	return f, snap
}

// installed waits until node f has installed a snapshot at snap or later.
func (r *run) installed(f int, snap uint64) {
	r.t.Helper()
	r.waitFor(20*time.Second, "the follower to install the leader's snapshot", func() bool {
		n := r.c.Node(f)
		return n != nil && n.Status().LastSnapshotIndex >= snap
	})
}

func snapshotInstall(r *run) {
	f, snap := r.leaveBehind()
	r.installed(f, snap)
}

// restartInstalling stops the follower a seeded moment after the heal,
// while it receives or installs the snapshot, and starts it again.
func restartInstalling(r *run) {
	f, snap := r.leaveBehind()
	r.pause(0, 150)
	r.note("restart node %d while it catches up", f)
	r.c.Stop(f)
	r.c.Restart(f)
	r.installed(f, snap)
}

func restart(r *run) {
	i := r.others()[0]
	r.note("restart node %d (leader %d)", i, r.leader())
	r.c.Stop(i)
	r.pause(200, 1000)
	r.c.Restart(i)
}

// restartSnapshotting stops a node a seeded moment after it starts a
// snapshot.
func restartSnapshotting(r *run) {
	i := r.others()[0]
	n := r.c.Node(i)
	done := make(chan error, 1)
	go func() { done <- n.Snapshot() }()
	r.pause(0, 5)
	r.c.Stop(i)
	r.note("stopped node %d while it took a snapshot (Snapshot: %v)", i, <-done)
	r.c.Restart(i)
}

func addNode(r *run) {
	i := r.c.AddNode()
	r.note("added node %d", i)
	r.hold()
}

func removeFollower(r *run) {
	l := r.leader()
	f := r.others(l)[0]
	r.note("remove follower %d", f)
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if err := r.c.Node(l).RemoveServer(ctx, r.c.ID(f)); err != nil {
		r.t.Fatalf("RemoveServer(%s): %v", r.c.ID(f), err)
	}
	r.c.Stop(f)
	r.hold()
}

func removeLeader(r *run) {
	l := r.leader()
	r.note("remove leader %d", l)
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if err := r.c.Node(l).RemoveServer(ctx, r.c.ID(l)); err != nil {
		r.t.Fatalf("RemoveServer(%s) on itself: %v", r.c.ID(l), err)
	}
	r.c.Stop(l)
	r.hold()
}

func transferLeader(r *run) {
	l := r.leader()
	via := r.others()[0]
	r.note("transfer leadership from %d, asked through %d", l, via)
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if err := r.c.Node(via).TransferLeadership(ctx, ""); err != nil {
		r.t.Fatalf("TransferLeadership through %d: %v", via, err)
	}
	r.hold()
}
