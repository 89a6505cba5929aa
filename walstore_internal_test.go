package skiff

import (
	"errors"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

func openTestWAL(t *testing.T) *walStore {
	t.Helper()
	s, err := openWAL(filepath.Join(t.TempDir(), walDir), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*walStore)
}

func appendEntries(t *testing.T, s *walStore, from, to uint64) {
	t.Helper()
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := s.StoreLogs(ls); err != nil {
		t.Fatalf("StoreLogs(%d..%d): %v", from, to, err)
	}
}

// Calls made while the WAL is reopened wait for it; none meets the
// closed WAL.
func TestWALReopenExcludesCalls(t *testing.T) {
	s := openTestWAL(t)
	appendEntries(t, s, 1, 100)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var l raft.Log
				if err := s.GetLog(50, &l); err != nil || l.Data[0] != 50 {
					errs <- err
					return
				}
			}
		}()
	}
	for range 20 {
		if err := s.reopen(s.gen); err != nil {
			t.Fatalf("reopen: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("GetLog during a reopen: %v", err)
	default:
	}
	appendEntries(t, s, 101, 110)
	if last, err := s.LastIndex(); err != nil || last != 110 {
		t.Fatalf("LastIndex() = %d, %v; want 110", last, err)
	}
}

// A WAL that cannot be opened again leaves the store failing with
// ErrStorage, which stops the node (failStop).
func TestWALReopenFailureIsErrStorage(t *testing.T) {
	s := openTestWAL(t)
	s.open = func() (*raftwal.WAL, error) { return nil, syscall.EIO }
	err := s.reopen(s.gen)
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("reopen = %v, want ErrStorage wrapping EIO", err)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 1}}); !errors.Is(err, ErrStorage) {
		t.Fatalf("StoreLogs after a failed reopen = %v, want ErrStorage", err)
	}
	// Once broken, it stays broken.
	if err := s.reopen(s.gen + 1); !errors.Is(err, ErrStorage) {
		t.Fatalf("reopen = %v, want the earlier failure", err)
	}
}
