package skiff

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
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

// openLogStore opens the data dir's log store, creating one of the wanted
// kind (default LogStoreBolt) in a fresh dir. An existing dir keeps its
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
		kind = LogStoreBolt
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
func openBolt(path string) (logStore, error) {
	s, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
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
	w, err := raftwal.Open(path, raftwal.WithLogger(logger.Named("wal")), raftwal.WithSegmentSize(walSegmentSize))
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", path, err)
	}
	return w, nil
}
