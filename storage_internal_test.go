package skiff

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// brokenDisk is a log store whose stable store refuses every write and
// whose log writes fail with logErr.
type brokenDisk struct {
	logStore
	logErr error
	writes int // log writes that reached the store
}

var errReadOnly = &fs.PathError{Op: "write", Path: "/data/raft.db", Err: syscall.EROFS}

func (b *brokenDisk) SetUint64([]byte, uint64) error { return errReadOnly }
func (b *brokenDisk) Set([]byte, []byte) error       { return errReadOnly }
func (b *brokenDisk) StoreLogs([]*raft.Log) error    { b.writes++; return b.logErr }

// bareNode is a Node with nothing started, enough for stop and shutdown.
func bareNode(running bool) *Node {
	n := &Node{log: slog.New(slog.DiscardHandler), done: make(chan struct{}), peers: newConnPool(nil), running: running}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// While Open starts Raft, a failed term write returns at once (NewRaft
// would panic on an error) and Open fails with the recorded error.
func TestFailedTermWriteWhileOpening(t *testing.T) {
	n := bareNode(false)
	disk := &brokenDisk{}
	s := &failStop{logStore: disk, node: n, path: "/data/raft.db"}
	if err := s.SetUint64(keyCurrentTerm, 3); err != nil {
		t.Fatalf("SetUint64(CurrentTerm) = %v, want nil", err)
	}
	err := n.Err()
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "/data/raft.db") {
		t.Fatalf("Err() = %v, want ErrStorage naming the file and wrapping EROFS", err)
	}
	// Fenced: nothing Raft decides from now on is written.
	if err := s.SetUint64([]byte("LastVoteTerm"), 3); !errors.Is(err, ErrStorage) {
		t.Fatalf("SetUint64(LastVoteTerm) = %v, want ErrStorage: a vote not recorded must not be given", err)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 1}}); !errors.Is(err, ErrStorage) || disk.writes != 0 {
		t.Fatalf("StoreLogs after the failure = %v with %d writes, want ErrStorage and none", err, disk.writes)
	}
}

// Once the node runs, a failed term write holds Raft's goroutine until
// the node has begun to shut down, then returns nil.
func TestFailedTermWriteWhileRunning(t *testing.T) {
	n := bareNode(true)
	s := &failStop{logStore: &brokenDisk{}, node: n, path: "/data/raft.db"}
	if err := s.SetUint64(keyCurrentTerm, 3); err != nil {
		t.Fatalf("SetUint64(CurrentTerm) = %v, want nil", err)
	}
	if n.ctx.Err() == nil {
		t.Fatal("SetUint64(CurrentTerm) returned before the node began to shut down")
	}
	<-n.Done()
	if err := n.Err(); !errors.Is(err, ErrStorage) {
		t.Fatalf("Err() = %v, want ErrStorage", err)
	}
}

// A log write that fails is Raft's to retry, unless the store says it
// cannot go on (ErrStorage).
func TestLogWriteFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		stop bool
	}{
		{&fs.PathError{Op: "write", Path: "/data/raft.db", Err: syscall.ENOSPC}, false},
		{fmt.Errorf("%w: reopen /data/wal: %w", ErrStorage, syscall.EIO), true},
	} {
		n := bareNode(false)
		s := &failStop{logStore: &brokenDisk{logErr: tc.err}, node: n, path: "/data/raft.db"}
		if err := s.StoreLogs([]*raft.Log{{Index: 1}}); !errors.Is(err, tc.err) {
			t.Fatalf("StoreLogs = %v, want %v", err, tc.err)
		}
		if stopped := n.Err() != nil; stopped != tc.stop {
			t.Fatalf("after StoreLogs failed with %v: Err() = %v, want stopped %v", tc.err, n.Err(), tc.stop)
		}
	}
}
