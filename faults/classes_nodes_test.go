package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffkv/skiff"
)

// The fault classes that stop, restart, add and remove nodes, or move
// leadership.

// leaveBehind cuts a follower off until the leader has taken a snapshot
// and truncated its log past everything the follower has, then heals: the
// follower can only catch up by installing the snapshot. It returns the
// follower, the snapshot's index, and a watch on the follower that the
// install will end.
func (r *run) leaveBehind() (f int, snap uint64, fw *skiff.Watcher) {
	r.t.Helper()
	l := r.leader()
	f = r.others(l)[0]
	r.c.Partition(f)
	behind := r.c.Node(f).Status().AppliedIndex
	fw, err := r.c.Node(f).Watch(context.Background(), "")
	if err != nil {
		r.t.Fatalf("Watch on follower %d: %v", f, err)
	}
	r.t.Cleanup(fw.Close)
	if r.c.Node(l).Status().LogStore == skiff.LogStoreWAL {
		r.rollSegment()
		l = r.leader() // it may have changed under the large writes
	}
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
	return f, snap, fw
}

// rollSegment writes 72 MB to 8 keys through the leader. raft-wal
// deletes only whole segments (64 MiB) when Raft truncates its log, and
// serves the entries of its last segment even below the log's first
// index, so without a full segment behind it a follower catches up from
// the log and never installs a snapshot. Large appends can cost the
// leader its lease on a busy machine; a failed write is simply made again
// through whoever leads then.
func (r *run) rollSegment() {
	r.t.Helper()
	ctx, cancel := ctxTimeout(60 * time.Second)
	defer cancel()
	v := bytes.Repeat([]byte("s"), 1_000_000)
	var written atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ { // concurrent writes share appends and fsyncs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for written.Load() < 72 && ctx.Err() == nil {
				l, err := r.c.WaitForLeaderWithin(10 * time.Second)
				if err != nil {
					return
				}
				if n := r.c.Node(l); n != nil {
					if _, err := n.Put(ctx, fmt.Sprintf("bulk/%d", w), v); err == nil {
						written.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := written.Load(); got < 72 {
		r.t.Fatalf("rolling a raft-wal segment: %d of 72 MB written", got)
	}
}

// installed waits until the follower has installed a snapshot at snap or
// later: an install replaces its state, which ends its watch with a
// CompactedError whose Reset is set.
func (r *run) installed(f int, snap uint64, fw *skiff.Watcher) {
	r.t.Helper()
	r.waitFor(20*time.Second, "the follower to install the leader's snapshot", func() bool {
		n := r.c.Node(f)
		return n != nil && n.Status().LastSnapshotIndex >= snap
	})
	for range fw.Events() {
	}
	var ce *skiff.CompactedError
	if err := fw.Err(); !errors.As(err, &ce) || !ce.Reset {
		r.t.Fatalf("follower %d caught up without installing a snapshot (its watch ended with %v)", f, err)
	}
}

func snapshotInstall(r *run) {
	f, snap, fw := r.leaveBehind()
	r.installed(f, snap, fw)
}

// restartInstalling stops the follower a seeded moment after the heal,
// while it receives or installs the snapshot, and starts it again; it
// must then catch up, by a snapshot or by the log.
func restartInstalling(r *run) {
	f, snap, _ := r.leaveBehind()
	r.pause(0, 150)
	r.note("restart node %d while it catches up", f)
	r.c.Stop(f)
	r.c.Restart(f)
	r.waitFor(20*time.Second, "the restarted follower to catch up", func() bool {
		n := r.c.Node(f)
		return n != nil && n.Status().AppliedIndex >= snap
	})
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
