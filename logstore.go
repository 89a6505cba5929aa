package skiff

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/skiffkv/skiff/internal/boltcheck"
	"go.etcd.io/bbolt"
)

// Files in a node's data dir.
const (
	boltFile    = "raft.db"   // LogStoreBolt: log and stable store
	walDir      = "wal"       // LogStoreWAL: segment files and meta
	snapshotDir = "snapshots" // raft.FileSnapshotStore adds this name itself
	idFile      = "node-id"
)

// logPath is the file or directory of the node's log store, for messages.
func (n *Node) logPath() string {
	if n.kind == LogStoreWAL {
		return filepath.Join(n.cfg.Dir, walDir)
	}
	return filepath.Join(n.cfg.Dir, boltFile)
}

// logStore is the Raft log plus Raft's stable store (term, vote), which
// both implementations keep in the same files.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// detectLogStore returns the kind an existing data dir was created with,
// or "" for a fresh dir.
func detectLogStore(dir string) (LogStoreKind, error) {
	_, boltErr := os.Stat(filepath.Join(dir, boltFile))
	_, walErr := os.Stat(filepath.Join(dir, walDir))
	for _, err := range []error{boltErr, walErr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	switch {
	case boltErr == nil && walErr == nil:
		return "", fmt.Errorf("%w: %s has both %s and %s", ErrConfig, dir, boltFile, walDir)
	case boltErr == nil:
		return LogStoreBolt, nil
	case walErr == nil:
		return LogStoreWAL, nil
	}
	return "", nil
}

// defaultLogStore is the kind a fresh dir gets when Config.LogStore is
// empty: LogStoreWAL, except on Windows, which raft-wal does not support.
func defaultLogStore() LogStoreKind {
	if runtime.GOOS == "windows" {
		return LogStoreBolt
	}
	return LogStoreWAL
}

// openLogStore opens the data dir's log store, creating one of the wanted
// kind (default: defaultLogStore) in a fresh dir. An existing dir keeps its
// kind; wanting another is a config error.
func openLogStore(dir string, want LogStoreKind, logger hclog.Logger) (logStore, LogStoreKind, error) {
	have, err := detectLogStore(dir)
	if err != nil {
		return nil, "", err
	}
	kind := want
	switch {
	case have != "" && want != "" && have != want:
		return nil, "", fmt.Errorf("%w: %s holds a %q log store, config asks for %q", ErrConfig, dir, have, want)
	case have != "":
		kind = have
	case kind == "":
		kind = defaultLogStore()
	}
	var s logStore
	switch kind {
	case LogStoreWAL:
		s, err = openWAL(filepath.Join(dir, walDir), logger)
	default:
		s, err = openBolt(filepath.Join(dir, boltFile))
	}
	if err != nil {
		return nil, "", err
	}
	return s, kind, nil
}

// openBolt opens raft-boltdb/v2 with the freelist options etcd and Consul
// use: without them bbolt rewrites its whole freelist on every commit once
// the log has been truncated.
//
// Without a synced freelist, bbolt.Open walks every page to rebuild it,
// in a goroutine of its own where damage panics beyond any recover; so
// the file is walked first, with bounds checks (internal/boltcheck).
func openBolt(path string) (logStore, error) {
	if err := boltcheck.Check(path); errors.Is(err, boltcheck.ErrCorrupt) {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	} else if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", path, err)
	}
	var s *raftboltdb.BoltStore
	err := guardLog(path, "open", func() (err error) {
		s, err = raftboltdb.New(raftboltdb.Options{
			Path: path,
			BoltOptions: &bbolt.Options{
				Timeout:        time.Second,
				NoFreelistSync: true,
				FreelistType:   bbolt.FreelistMapType,
			},
		})
		return err
	})
	switch {
	case errors.Is(err, ErrCorrupt):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("open log store %s: %w", path, err)
	}
	return s, nil
}

// walSegmentSize is raft-wal's segment size, its default (64 MiB). Tests
// make it small, so that raft-wal frees the head of the log after a few
// writes as it does after many megabytes in use.
var walSegmentSize = raftwal.DefaultSegmentSize

func openWAL(path string, logger hclog.Logger) (logStore, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	logger, size := logger.Named("wal"), walSegmentSize
	open := func() (*raftwal.WAL, error) {
		var w *raftwal.WAL
		err := guardLog(path, "open", func() (err error) {
			w, err = raftwal.Open(path, raftwal.WithLogger(logger), raftwal.WithSegmentSize(size))
			return err
		})
		switch {
		case errors.Is(err, ErrCorrupt):
			return nil, err
		case err != nil:
			return nil, fmt.Errorf("open log store %s: %w", path, err)
		}
		return w, nil
	}
	w, err := open()
	if err != nil {
		return nil, err
	}
	return &walStore{w: w, open: open, path: path, logger: logger}, nil
}

// guardLog runs f, a use of the log store while the node opens, and turns
// a panic in it into an error wrapping ErrCorrupt that names path. A
// damaged raft.db that boltcheck lets through (a page whose structure
// holds but whose entries are gone or garbled) still makes raft-boltdb,
// bbolt or hashicorp/raft's NewRaft panic; before Raft runs, every such
// panic is on a goroutine skiff controls. Faults on bbolt's memory map
// (a file truncated underneath) panic too, instead of killing the
// process, while f runs.
func guardLog(path, what string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %s: %w", ErrCorrupt, path, what, panicError{r})
		}
	}()
	return f()
}

// panicError is a recovered panic as an error; it unwraps to the panic's
// value when that is an error.
type panicError struct{ value any }

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

func (p panicError) Unwrap() error {
	err, _ := p.value.(error)
	return err
}
