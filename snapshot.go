package skiff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/store"
)

// Status is a node's view of itself and the cluster.
type Status struct {
	ID, Address       string // Address: for peers (the Raft address)
	ClientAddress     string // for clients: Address unless clients have a port of their own
	State             string // "Leader", "Follower", "Candidate" or "Shutdown"
	LeaderID          string
	LeaderAddress     string
	Term              uint64
	CommitIndex       uint64
	AppliedIndex      uint64
	LastSnapshotIndex uint64
	Keys              int
	Bytes             int64 // sum of key and value lengths, what QuotaBytes limits
	LogStore          LogStoreKind
	Watchers          int // watches this node is serving
}

// Status reports the node's Raft and state-machine figures. It does not
// contact other nodes.
func (n *Node) Status() Status {
	view := n.fsm.store.View()
	leaderID, leaderAddr := n.Leader()
	snap, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return Status{
		ID: n.id, Address: n.addr, ClientAddress: n.clientAddr, State: n.raft.State().String(),
		LeaderID: leaderID, LeaderAddress: leaderAddr,
		Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.appliedIndex(),
		LastSnapshotIndex: snap, Keys: view.Len(), Bytes: view.Bytes(), LogStore: n.kind,
		Watchers: n.hist.watcherCount(),
	}
}

// Snapshot takes a snapshot now and truncates the log behind it (keeping
// Config.TrailingLogs entries). Snapshots are also taken automatically;
// see Config.SnapshotThreshold. Taking one when nothing changed since the
// last is not an error.
func (n *Node) Snapshot() error {
	if n.isClosed() {
		return ErrClosed
	}
	// Raft would report the state machine's refusal without its sentinel.
	if n.fsm.ahead() {
		return fmt.Errorf("snapshot: %w", errAhead)
	}
	m := n.meter()
	start := m.start()
	err := n.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("snapshot: %w", raftError(err, false))
	}
	if err == nil {
		m.snapshotTaken(start)
	}
	return nil
}

// snapshotLoop applies the snapshot policy every SnapshotInterval: a
// snapshot is due when the log since the last one holds at least
// SnapshotThreshold entries and either at least SnapshotSizeRatio times
// the state's size in written bytes or SnapshotMaxEntries entries. The
// size rule keeps a large state from being rewritten after every few
// thousand small writes; the entry cap keeps restarts fast. Each tick
// also records the applied index (see appliedFile).
func (n *Node) snapshotLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.recordApplied()
		if !n.snapshotDue() {
			continue
		}
		start := time.Now()
		if err := n.Snapshot(); err != nil {
			if !errors.Is(err, ErrClosed) {
				n.log.Warn("snapshot failed", "err", err)
			}
			continue
		}
		n.log.Info("snapshot taken", "index", n.fsm.appliedIndex(), "took", time.Since(start))
	}
}

func (n *Node) snapshotDue() bool {
	if n.fsm.ahead() {
		return false // see fsm.fed
	}
	last, applied := n.fsm.snapshotted.Load(), n.fsm.appliedIndex()
	entries := applied - min(last, applied)
	return snapshotDue(entries, n.cfg.SnapshotThreshold, n.cfg.SnapshotMaxEntries,
		n.fsm.written.Load(), n.fsm.store.View().Bytes(), n.cfg.SnapshotSizeRatio)
}

// snapshotDue is the snapshot policy: entries and written bytes since the
// last snapshot against the entry threshold and the state's size, with
// maxEntries bounding the log a restart must replay.
func snapshotDue(entries, threshold, maxEntries uint64, written, stateBytes int64, ratio float64) bool {
	if entries < threshold {
		return false
	}
	return entries >= maxEntries || float64(written) >= ratio*float64(stateBytes)
}

// Backup writes a consistent copy of the whole state to w, at a revision
// that includes every write acknowledged before Backup was called. The
// copy is in skiff's snapshot format; Restore loads it. Writes go on while
// it is written.
func (n *Node) Backup(ctx context.Context, w io.Writer) error {
	view, err := n.view(ctx, false)
	if err != nil {
		return err
	}
	if _, err := view.WriteTo(w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore replaces the state of the whole cluster with a backup written
// by Backup. It must be called on the leader (ErrNotLeader otherwise); the
// backup is checked completely before anything changes, and a damaged one
// is refused with ErrCorrupt. Writes committed after the backup was taken
// are lost; revisions keep growing from the current log index.
func (n *Node) Restore(ctx context.Context, r io.Reader) error {
	_, err := n.restore(ctx, r)
	return err
}

// restore is Restore, returning the state it installed.
func (n *Node) restore(ctx context.Context, r io.Reader) (*store.View, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	view, err := decodeView(r)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if n.raft.State() != raft.Leader {
		return nil, fmt.Errorf("%w: restore must run on the leader", ErrNotLeader)
	}
	var buf bytes.Buffer
	if _, err := view.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: view.Revision(), Size: int64(buf.Len())}
	if err := n.raft.Restore(meta, &buf, time.Until(deadline(ctx))); err != nil {
		return nil, fmt.Errorf("restore: %w", raftError(err, true))
	}
	// Commit a command after the restore, so that every node's applied
	// index moves past the indexes reads may wait for. It is a delete
	// whose condition cannot hold, so it changes nothing.
	marker := ifRevision(deleteOp("skiff/restore"), math.MaxUint64)
	if _, err := n.applyLocal(ctx, marker); err != nil && !errors.Is(err, ErrRevisionMismatch) {
		return nil, fmt.Errorf("restore: %w", err)
	}
	n.log.Info("state restored from backup", "keys", view.Len(), "backup_revision", view.Revision())
	return view, nil
}
