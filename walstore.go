package skiff

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

// walStore is raft-wal, reopened in place when it wedges.
//
// raft-wal moves to a new segment file in the background once the current
// one is full. When that fails (the disk is full: it preallocates the
// whole segment), the full segment stays sealed and every later append
// fails with ErrSealed, even after space is freed, until the WAL is
// closed and opened again. Opening finishes the rotation from what is on
// disk and loses nothing acknowledged. So an append that fails with
// ErrSealed reopens the WAL and is tried once more; if the WAL cannot be
// opened again, the error wraps ErrStorage and the node stops (failStop).
//
// It sits below Raft's LogCache, which turns store errors into strings
// (%q), so that it still sees ErrSealed.
type walStore struct {
	// mu is held for reading by every call and for writing while the WAL
	// is swapped, so that no call meets a closed WAL. Reads stay
	// concurrent; appends come from Raft's one goroutine anyway.
	mu     sync.RWMutex
	w      *raftwal.WAL
	gen    uint64 // how many times w was reopened
	broken error  // why reopening failed; the store is unusable then
	open   func() (*raftwal.WAL, error)
	path   string
	logger hclog.Logger
}

var (
	_ logStore               = (*walStore)(nil)
	_ raft.MonotonicLogStore = (*walStore)(nil)
)

// use runs f on the current WAL, under the read lock.
func (s *walStore) use(f func(w *raftwal.WAL) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.broken != nil {
		return s.broken
	}
	return f(s.w)
}

func (s *walStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *walStore) StoreLogs(logs []*raft.Log) error {
	var gen uint64
	err := s.use(func(w *raftwal.WAL) error {
		gen = s.gen
		return w.StoreLogs(logs)
	})
	if !errors.Is(err, raftwal.ErrSealed) {
		return err
	}
	if err := s.reopen(gen); err != nil {
		return err
	}
	return s.use(func(w *raftwal.WAL) error { return w.StoreLogs(logs) })
}

// reopen closes the WAL and opens it again, unless another call did since
// generation gen.
func (s *walStore) reopen(gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil || s.gen != gen {
		return s.broken
	}
	s.logger.Warn("reopening the log after a failed segment rotation", "dir", s.path)
	cerr := s.w.Close()
	w, err := s.open()
	if err != nil {
		s.broken = fmt.Errorf("%w: reopen %s after a failed segment rotation: %w", ErrStorage, s.path, errors.Join(err, cerr))
		return s.broken
	}
	s.w, s.gen = w, s.gen+1
	return nil
}

func (s *walStore) FirstIndex() (idx uint64, err error) {
	err = s.use(func(w *raftwal.WAL) (err error) { idx, err = w.FirstIndex(); return err })
	return idx, err
}

func (s *walStore) LastIndex() (idx uint64, err error) {
	err = s.use(func(w *raftwal.WAL) (err error) { idx, err = w.LastIndex(); return err })
	return idx, err
}

func (s *walStore) GetLog(idx uint64, l *raft.Log) error {
	return s.use(func(w *raftwal.WAL) error { return w.GetLog(idx, l) })
}

func (s *walStore) DeleteRange(lo, hi uint64) error {
	return s.use(func(w *raftwal.WAL) error { return w.DeleteRange(lo, hi) })
}

func (s *walStore) Set(key, val []byte) error {
	return s.use(func(w *raftwal.WAL) error { return w.Set(key, val) })
}

func (s *walStore) Get(key []byte) (val []byte, err error) {
	err = s.use(func(w *raftwal.WAL) (err error) { val, err = w.Get(key); return err })
	return val, err
}

func (s *walStore) SetUint64(key []byte, val uint64) error {
	return s.use(func(w *raftwal.WAL) error { return w.SetUint64(key, val) })
}

func (s *walStore) GetUint64(key []byte) (val uint64, err error) {
	err = s.use(func(w *raftwal.WAL) (err error) { val, err = w.GetUint64(key); return err })
	return val, err
}

// IsMonotonic is true: raft-wal cannot take a gap in the log.
func (s *walStore) IsMonotonic() bool { return true }

func (s *walStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil // closed when reopening failed
	}
	return s.w.Close()
}
