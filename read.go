package skiff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/store"
)

// view returns a state to read from. A stale view is the local state as it
// is. Otherwise it follows the read-index recipe: learn the leader's
// commit index once the leader has confirmed it still leads, then wait
// until the local state machine has applied that index. Every write
// acknowledged before the read began is then visible.
func (n *Node) view(ctx context.Context, stale bool) (*store.View, error) {
	if n.isClosed() {
		return nil, n.errClosed()
	}
	if stale {
		return n.fsm.store.View(), nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	m := n.meter()
	start := m.start()
	idx, err := onLeader(ctx, n, func(ctx context.Context, l leader) (uint64, error) { return l.readIndex(ctx) })
	if err != nil {
		return nil, err
	}
	if err := n.fsm.waitApplied(ctx, idx); err != nil {
		if n.isClosed() {
			return nil, n.errClosed()
		}
		return nil, err
	}
	m.readIndexed(start)
	return n.fsm.store.View(), nil
}

func (n *Node) isClosed() bool { return n.ctx.Err() != nil }

// readIndexer serves read indexes on the leader.
//
// A new leader's commit index may lag what its predecessor acknowledged
// until an entry of the new term commits, so the first read of each term
// waits for a Barrier, which also waits for the state machine to apply
// everything before it. After that every acknowledged write is in the
// leader's state, and the read index is the state machine's applied index
// (the last command applied: unlike the commit index, which may point at a
// no-op entry, every replica's state machine applies it too), confirmed by
// a VerifyLeader round that started after the read arrived.
// Concurrent reads share rounds: while one round runs, arriving reads
// queue for the next, so a burst of reads costs two rounds, not one each.
type readIndexer struct {
	r   *raft.Raft
	fsm *fsm

	readyTerm atomic.Uint64 // a Barrier of this term has been applied
	barrierMu sync.Mutex    // one Barrier at a time

	mu      sync.Mutex
	waiting []chan error // reads queued for the next round
	running bool
}

func newReadIndexer(r *raft.Raft, f *fsm) *readIndexer {
	return &readIndexer{r: r, fsm: f}
}

// index returns a read index, or ErrNotLeader if this node is not (or no
// longer provably) the leader.
func (ri *readIndexer) index(ctx context.Context) (uint64, error) {
	term := ri.r.CurrentTerm()
	if err := ri.ensureBarrier(ctx, term); err != nil {
		return 0, err
	}
	idx := ri.fsm.appliedIndex()
	if err := ri.verify(ctx); err != nil {
		return 0, err
	}
	if ri.r.CurrentTerm() != term {
		return 0, fmt.Errorf("%w: term changed during read", ErrNotLeader)
	}
	return idx, nil
}

func (ri *readIndexer) ensureBarrier(ctx context.Context, term uint64) error {
	if ri.readyTerm.Load() == term {
		return nil
	}
	ri.barrierMu.Lock()
	defer ri.barrierMu.Unlock()
	if ri.readyTerm.Load() == term {
		return nil
	}
	if err := wait(ctx, ri.r.Barrier(0), "waiting for the new leader's first commit"); err != nil {
		return err
	}
	if ri.r.CurrentTerm() != term || ri.r.State() != raft.Leader {
		return fmt.Errorf("%w: leadership changed during read", ErrNotLeader)
	}
	ri.readyTerm.Store(term)
	return nil
}

// verify joins the next VerifyLeader round.
func (ri *readIndexer) verify(ctx context.Context) error {
	ch := make(chan error, 1)
	ri.mu.Lock()
	ri.waiting = append(ri.waiting, ch)
	if !ri.running {
		ri.running = true
		go ri.rounds()
	}
	ri.mu.Unlock()
	select {
	case err := <-ch:
		if err != nil {
			return raftError(err, false)
		}
		return nil
	case <-ctx.Done():
		return ctxError(ctx, "confirming leadership")
	}
}

// rounds runs VerifyLeader rounds while reads are queued. It ends once the
// queue is empty, and promptly after Raft shuts down (VerifyLeader fails).
func (ri *readIndexer) rounds() {
	for {
		ri.mu.Lock()
		batch := ri.waiting
		ri.waiting = nil
		if len(batch) == 0 {
			ri.running = false
			ri.mu.Unlock()
			return
		}
		ri.mu.Unlock()
		err := ri.r.VerifyLeader().Error()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// raftError maps an error from hashicorp/raft to skiff's. written says
// whether a write may have reached the log: then losing leadership or
// shutting down leaves its outcome unknown.
func raftError(err error, written bool) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		if written {
			return fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)
		}
		return ErrClosed
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		if written {
			return fmt.Errorf("%w: %w", ErrIndeterminate, err)
		}
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	if written {
		return fmt.Errorf("%w: %w", ErrIndeterminate, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
