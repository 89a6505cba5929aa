package skiff

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// failStop is the node's log store with skiff's policy for a data dir
// that refuses writes (see "Disk faults" in DESIGN.md).
//
// hashicorp/raft panics, on its own goroutine, when it cannot save a new
// term (setCurrentTerm), so an error from the stable store would end the
// process. Instead the first failed write to the stable store, or a log
// store error wrapping ErrStorage, stops the node with ErrStorage. From
// then on the store is fenced: it writes nothing more, so nothing Raft
// decides after the failure reaches the disk. A write of the term then
// returns nil without being made, once the node has begun to shut down
// (or at once while Open starts Raft); every other write returns the
// error, which Raft survives: a vote it cannot record is a vote it does
// not give.
type failStop struct {
	logStore
	node    *Node
	path    string
	failure atomic.Pointer[error] // the first storage failure; set once
}

var (
	_ logStore               = (*failStop)(nil)
	_ raft.MonotonicLogStore = (*failStop)(nil)
)

func (n *Node) guardStorage(s logStore) *failStop {
	return &failStop{logStore: s, node: n, path: n.logPath()}
}

func (s *failStop) SetUint64(key []byte, val uint64) error {
	return s.stable(key, func() error { return s.logStore.SetUint64(key, val) })
}

func (s *failStop) Set(key, val []byte) error {
	return s.stable(key, func() error { return s.logStore.Set(key, val) })
}

// stable makes one write to Raft's stable store, applying the policy
// above when it fails or the store is fenced.
func (s *failStop) stable(key []byte, write func() error) error {
	if s.fenced() == nil {
		err := write()
		if err == nil {
			return nil
		}
		s.fail(fmt.Errorf("%w: %s: save %s: %w", ErrStorage, s.path, key, err))
	}
	// Raft's goroutine waits here, doing nothing more with a term it
	// believes saved, until the node shuts down; Raft's Shutdown then
	// waits for it. Open's own goroutine must not wait: it is the one
	// that shuts the node down when it sees the failure.
	if s.node.isRunning() {
		<-s.node.ctx.Done()
	}
	if bytes.Equal(key, keyCurrentTerm) {
		return nil // an error would panic in setCurrentTerm
	}
	return s.fenced()
}

func (s *failStop) StoreLog(l *raft.Log) error {
	return s.log(func() error { return s.logStore.StoreLog(l) })
}

func (s *failStop) StoreLogs(ls []*raft.Log) error {
	return s.log(func() error { return s.logStore.StoreLogs(ls) })
}

func (s *failStop) DeleteRange(lo, hi uint64) error {
	return s.log(func() error { return s.logStore.DeleteRange(lo, hi) })
}

// log makes one write to the log unless the store is fenced. Ordinary
// write errors go back to Raft, which retries (a full disk may get
// space again); an error wrapping ErrStorage means the store cannot go
// on, and stops the node.
func (s *failStop) log(write func() error) error {
	if err := s.fenced(); err != nil {
		return err
	}
	err := write()
	if errors.Is(err, ErrStorage) {
		s.fail(err)
	}
	return err
}

// IsMonotonic passes on the store's answer (raft.MonotonicLogStore).
func (s *failStop) IsMonotonic() bool {
	m, ok := s.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// fail records the first storage failure and stops the node with it.
func (s *failStop) fail(err error) {
	if s.failure.CompareAndSwap(nil, &err) {
		s.node.stop(err)
	}
}

// fenced returns the storage failure, once there has been one.
func (s *failStop) fenced() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// isRunning reports whether Open has returned the node; until then a
// failure found by a part of the node is returned by Open.
func (n *Node) isRunning() bool {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	return n.running
}
