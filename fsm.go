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
	"github.com/skiffkv/skiff/internal/command"
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

	// failed holds the error that stopped the state machine: an entry it
	// could not read. It then applies nothing more, since anything it did
	// instead of that entry would make it differ from the other replicas.
	failed atomic.Pointer[error]
	// onFail, when set, is called once, on the apply goroutine, when the
	// state machine stops; it must not block.
	onFail func(error)
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

// applyResult is the outcome of one operation.
type applyResult struct {
	kv   store.Entry // without its value, for a delete: Key and ModRevision
	prev store.Entry
	had  bool
	// deleted marks a delete; noop a delete of an absent key, which
	// changes nothing and is not published.
	deleted, noop bool
	err           error
}

// entryResult is what Raft hands back to the proposer of a command entry:
// one result per operation, or the error that stopped the state machine.
type entryResult struct {
	ops []applyResult
	err error
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
// transaction, and puts each entry's result in results. An entry it
// cannot read stops it (see failed): the entries before it are applied,
// that one and every later one are not.
func (f *fsm) apply(logs []*raft.Log, results []any) {
	if err := f.failure(); err != nil {
		fillResults(results, err)
		return
	}
	txn := f.store.Txn()
	var changes []change
	last := uint64(0)
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			ops, err := decodeEntry(l)
			if err != nil {
				f.fail(err)
				fillResults(results[i:], err)
				break
			}
			f.written.Add(int64(len(l.Data)))
			results[i] = applyOps(txn, l.Index, ops, &changes)
		}
		last = l.Index
	}
	if last == 0 {
		txn.Discard()
		return
	}
	txn.Commit(last)
	f.setApplied(last)
	if f.publish != nil {
		f.publish(changes, last, false)
	}
}

func fillResults(results []any, err error) {
	for i := range results {
		results[i] = &entryResult{err: err}
	}
}

// fail stops the state machine with err; the first error stays.
func (f *fsm) fail(err error) {
	if f.failed.CompareAndSwap(nil, &err) && f.onFail != nil {
		f.onFail(err)
	}
}

// failure returns the error that stopped the state machine, if any.
func (f *fsm) failure() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// ahead reports whether the store reflects entries that Raft has not
// handed over yet (see fed). A snapshot taken then would carry a state
// newer than the index Raft labels it with, so none is taken.
func (f *fsm) ahead() bool {
	return f.appliedIndex() > f.fed.Load()
}

// applyOps applies an entry's operations, in order, at revision rev, and
// appends what changed to changes. A failed condition is a result for the
// proposer: every replica reaches the same verdict from the same state.
func applyOps(txn *store.Txn, rev uint64, ops []command.Op, changes *[]change) *entryResult {
	res := &entryResult{ops: make([]applyResult, len(ops))}
	for i, op := range ops {
		r := applyOp(txn, rev, op)
		if r.err == nil && !r.noop {
			*changes = append(*changes, change{deleted: r.deleted, kv: r.kv, prev: r.prev, hadPrev: r.had})
		}
		r.kv.Value, r.prev.Value = nil, nil // the proposer needs the revisions only
		res.ops[i] = r
	}
	return res
}

func applyOp(txn *store.Txn, rev uint64, op command.Op) applyResult {
	if op.Cond != command.Always || op.Kind == command.Delete {
		cur, exists := txn.Get(op.Key)
		if err := checkCondition(op, cur, exists); err != nil {
			return applyResult{err: err, prev: cur, had: exists}
		}
		if op.Kind == command.Delete && !exists {
			// Deleting an absent key succeeds and changes nothing.
			return applyResult{kv: store.Entry{Key: op.Key, ModRevision: rev}, deleted: true, noop: true}
		}
	}
	if op.Kind == command.Delete {
		prev, _ := txn.Delete(op.Key, rev)
		return applyResult{kv: store.Entry{Key: op.Key, ModRevision: rev}, prev: prev, had: true, deleted: true}
	}
	prev, had := txn.Put(op.Key, op.Value, rev)
	kv := store.Entry{Key: op.Key, Value: op.Value, CreateRevision: rev, ModRevision: rev, Version: 1}
	if had {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	return applyResult{kv: kv, prev: prev, had: had}
}

func checkCondition(op command.Op, cur store.Entry, exists bool) error {
	switch op.Cond {
	case command.Absent:
		if exists {
			return fmt.Errorf("%w: %q at revision %d", ErrExists, cur.Key, cur.ModRevision)
		}
	case command.ModRevision:
		if !exists {
			return fmt.Errorf("%w: key is absent, want revision %d", ErrRevisionMismatch, op.Rev)
		}
		if cur.ModRevision != op.Rev {
			return fmt.Errorf("%w: %q is at revision %d, want %d", ErrRevisionMismatch, cur.Key, cur.ModRevision, op.Rev)
		}
	}
	return nil
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
	if err := f.failure(); err != nil {
		return nil, err
	}
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
