package skiff

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
)

// fsm applies committed log entries to the in-memory store. It is only a
// bridge: decode, check the condition, hand the write to store. Its state
// is durable through the Raft log and snapshots, never through its own
// files.
type fsm struct {
	store *store.Store

	mu      sync.Mutex
	applied uint64        // last log index reflected in store; guarded by mu
	advance chan struct{} // closed and replaced when applied grows

	// fed is the last log index Raft has handed to the state machine. It
	// trails applied after replayCommitted, until Raft learns the commit
	// index again and hands over the replayed entries a second time.
	fed atomic.Uint64

	// written counts command bytes applied since the last snapshot; the
	// snapshot policy reads it.
	written atomic.Int64
	// snapshotted is the revision of the newest snapshot written or
	// installed; the snapshot policy counts entries from it.
	snapshotted atomic.Uint64

	// publish, when set, receives every batch's changes in apply order,
	// even when there are none, so that watchers see the revision advance.
	// It runs on the apply goroutine and must not block.
	publish func(changes []change, rev uint64, reset bool)
}

var (
	_ raft.BatchingFSM = (*fsm)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

// errAhead refuses a snapshot while the state is ahead of Raft.
var errAhead = fmt.Errorf("%w: the entries replayed at start are not yet confirmed by a leader", ErrNoLeader)

// change is one applied write, as watchers see it.
type change struct {
	deleted bool
	kv      store.Entry // for a delete: Key and ModRevision (the delete's index)
	prev    store.Entry
	hadPrev bool
}

// applyResult is what Raft hands back to the proposer of a command.
type applyResult struct {
	kv   store.Entry
	prev store.Entry
	had  bool
	// deleted marks a delete; noop a delete of an absent key, which
	// changes nothing and is not published.
	deleted, noop bool
	err           error
}

func newFSM() *fsm {
	return &fsm{store: store.New(), advance: make(chan struct{})}
}

// Apply is required by raft.FSM; batches come through ApplyBatch.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries as one store
// transaction, so readers see either none or all of it. Entries the store
// already reflects, replayed from the local log when the node started,
// are passed over: each entry is applied exactly once.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	if len(logs) == 0 {
		return results
	}
	f.fed.Store(logs[len(logs)-1].Index)
	applied := f.appliedIndex()
	skip := 0
	for skip < len(logs) && logs[skip].Index <= applied {
		skip++
	}
	if skip < len(logs) {
		f.apply(logs[skip:], results[skip:])
	}
	return results
}

// apply applies logs, which the store does not reflect yet, as one
// transaction, and puts each entry's result in results.
func (f *fsm) apply(logs []*raft.Log, results []any) {
	txn := f.store.Txn()
	var changes []change
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		f.written.Add(int64(len(l.Data)))
		res := applyCommand(txn, l)
		results[i] = res
		if res.err == nil && !res.noop {
			changes = append(changes, change{deleted: res.deleted, kv: res.kv, prev: res.prev, hadPrev: res.had})
		}
	}
	last := logs[len(logs)-1].Index
	txn.Commit(last)
	f.setApplied(last)
	if f.publish != nil {
		f.publish(changes, last, false)
	}
}

// ahead reports whether the store reflects entries that Raft has not
// handed over yet (see fed). A snapshot taken then would carry a state
// newer than the index Raft labels it with, so none is taken.
func (f *fsm) ahead() bool {
	return f.appliedIndex() > f.fed.Load()
}

// applyCommand applies one entry. A failed condition or an undecodable
// entry is a result for the proposer, never a panic: every replica reaches
// the same verdict from the same state.
func applyCommand(txn *store.Txn, l *raft.Log) *applyResult {
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		return &applyResult{err: fmt.Errorf("log entry %d: %w", l.Index, err)}
	}
	switch op := cmd.Op.(type) {
	case *skiffpb.Command_Put:
		if c := op.Put.Condition; c.GetKind() != skiffpb.Condition_NONE {
			cur, exists := txn.Get(op.Put.Key)
			if err := checkCondition(c, cur, exists); err != nil {
				return &applyResult{err: err, prev: cur, had: exists}
			}
		}
		prev, had := txn.Put(op.Put.Key, op.Put.Value, l.Index)
		kv := store.Entry{Key: op.Put.Key, Value: op.Put.Value, CreateRevision: l.Index, ModRevision: l.Index, Version: 1}
		if had {
			kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		}
		return &applyResult{kv: kv, prev: prev, had: had}
	case *skiffpb.Command_Delete:
		cur, exists := txn.Get(op.Delete.Key)
		if err := checkCondition(op.Delete.Condition, cur, exists); err != nil {
			return &applyResult{err: err, prev: cur, had: exists}
		}
		if !exists {
			// Deleting an absent key succeeds and changes nothing.
			return &applyResult{kv: store.Entry{Key: op.Delete.Key, ModRevision: l.Index}, deleted: true, noop: true}
		}
		prev, _ := txn.Delete(op.Delete.Key, l.Index)
		return &applyResult{kv: store.Entry{Key: op.Delete.Key, ModRevision: l.Index}, prev: prev, had: true, deleted: true}
	default:
		return &applyResult{err: fmt.Errorf("%w: log entry %d has no operation", ErrCorrupt, l.Index)}
	}
}

func checkCondition(c *skiffpb.Condition, cur store.Entry, exists bool) error {
	switch c.GetKind() {
	case skiffpb.Condition_NONE:
		return nil
	case skiffpb.Condition_ABSENT:
		if exists {
			return fmt.Errorf("%w: %q at revision %d", ErrExists, cur.Key, cur.ModRevision)
		}
		return nil
	case skiffpb.Condition_MOD_REVISION:
		if !exists {
			return fmt.Errorf("%w: key is absent, want revision %d", ErrRevisionMismatch, c.ModRevision)
		}
		if cur.ModRevision != c.ModRevision {
			return fmt.Errorf("%w: %q is at revision %d, want %d", ErrRevisionMismatch, cur.Key, cur.ModRevision, c.ModRevision)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown condition %d", ErrCorrupt, c.GetKind())
}

func (f *fsm) setApplied(idx uint64) {
	f.mu.Lock()
	f.applied = idx
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

// appliedIndex is the last log index the store reflects.
func (f *fsm) appliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// waitApplied blocks until the store reflects log index idx or ctx ends.
func (f *fsm) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		applied, ch := f.applied, f.advance
		f.mu.Unlock()
		if applied >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctxError(ctx, fmt.Sprintf("waiting for index %d to be applied (at %d)", idx, applied))
		}
	}
}

// Snapshot captures the current immutable view in O(1); Persist streams it
// while writes go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if f.ahead() {
		return nil, errAhead
	}
	f.written.Store(0)
	return &fsmSnapshot{view: f.store.View(), f: f}, nil
}

// Restore replaces the whole state with a snapshot's. Raft calls it for a
// snapshot sent by the leader and for a user's restore, whose revision is
// older than the state it replaces: the applied index never goes
// backwards, so reads waiting for an index are not stranded.
//
// The applied index only ever names an entry Raft passes to the state
// machine (a command or a configuration change), or a snapshot's
// revision, which is one: Raft does not pass its no-op and barrier
// entries, so indexes of those are never waited for.
func (f *fsm) Restore(rc io.ReadCloser) error {
	view, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.install(view, max(view.Revision(), f.appliedIndex()))
	return nil
}

// restoreAt installs a snapshot file Raft recorded at index.
func (f *fsm) restoreAt(rc io.ReadCloser, index uint64) error {
	view, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	if view.Revision() > index {
		return fmt.Errorf("%w: state at revision %d is newer than the snapshot's index %d", ErrCorrupt, view.Revision(), index)
	}
	f.install(view, view.Revision())
	f.fed.Store(index)
	return nil
}

func readSnapshot(rc io.ReadCloser) (*store.View, error) {
	view, err := decodeView(bufio.NewReaderSize(rc, 1<<20))
	cerr := rc.Close()
	if err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("restore snapshot: %w", cerr)
	}
	return view, nil
}

// install makes view the state, with applied index idx.
func (f *fsm) install(view *store.View, idx uint64) {
	f.store.Reset(view)
	f.written.Store(0)
	f.snapshotted.Store(idx)
	f.setApplied(idx)
	// Raft labels a restored snapshot with an index at least idx: it is
	// in step with the store again.
	f.fed.Store(idx)
	if f.publish != nil {
		f.publish(nil, idx, true)
	}
}

type fsmSnapshot struct {
	view *store.View
	f    *fsm
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	if _, err := s.view.WriteTo(w); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return err
	}
	s.f.snapshotted.Store(s.view.Revision())
	return nil
}

func (s *fsmSnapshot) Release() {}

// decodeView reads a snapshot stream; a damaged one is ErrCorrupt.
func decodeView(r io.Reader) (*store.View, error) {
	view, err := store.ReadView(r)
	if errors.Is(err, store.ErrCorrupt) {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return view, err
}
