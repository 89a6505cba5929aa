package skiff

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"
)

// A node's data dir holds its identity, its log store, its snapshots and
// its recorded applied index. It is private to the node's user: the dir
// and its subdirectories are 0700, skiff's files 0600, and Open corrects
// what it finds otherwise (raft-wal creates its segment files 0644; they
// are out of reach inside the 0700 dir).

// makePrivate makes dir and everything in it private.
func makePrivate(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm() == mode {
			return nil
		}
		return os.Chmod(path, mode)
	})
}

// privateSnapshots is Raft's file snapshot store with private files: it
// writes them world-readable.
type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string // the data dir
}

func (s privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return privateSink{SnapshotSink: sink, dir: filepath.Join(s.dir, snapshotDir)}, nil
}

type privateSink struct {
	raft.SnapshotSink
	dir string // the snapshots dir
}

// Close completes the snapshot, then makes its files private.
func (s privateSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return makePrivate(filepath.Join(s.dir, s.ID()))
}

// loadID returns the node ID stored in dir, storing want (or a new random
// ID) on first use. A different non-empty want is a config error.
func loadID(dir, want string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if err := validateID(have); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
		}
		if want != "" && want != have {
			return "", fmt.Errorf("%w: %s belongs to node %q, config says %q", ErrConfig, dir, have, want)
		}
		return have, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := want
	if id == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		id = "node-" + hex.EncodeToString(r[:])
	}
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	return id, nil
}

// writeFileAtomic writes and fsyncs a temporary file, renames it over
// path and fsyncs the directory, so path holds either nothing or all of b.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
