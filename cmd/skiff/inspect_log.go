package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	waltypes "github.com/hashicorp/raft-wal/types"
	"github.com/skiffkv/skiff/internal/boltcheck"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The log stores are read through bbolt opened read-only, which takes a
// shared lock on the file, with a short timeout. A running node holds an
// exclusive lock on its raft.db (or wal-meta.db) for as long as it runs,
// so inspect then gives up on the log at once and says the dir is in use;
// a node starting while inspect holds the shared lock waits for it (skiff
// opens raft.db with a one-second timeout), and inspect holds it for the
// length of one read pass.
const lockWait = 100 * time.Millisecond

// Raft's stable-store keys (hashicorp/raft api.go), which both log stores
// keep.
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

// inspectLogStore fills d's log-store fields from whichever store dir
// holds; snapIndex is the newest snapshot's index.
func inspectLogStore(dir string, snapIndex uint64, d *dirJSON) error {
	_, boltErr := os.Stat(filepath.Join(dir, boltFile))
	_, walErr := os.Stat(filepath.Join(dir, walDir))
	switch {
	case boltErr == nil && walErr == nil:
		d.LogStore = "boltdb and wal"
		return fmt.Errorf("%s holds both %s and %s/", dir, boltFile, walDir)
	case boltErr == nil:
		d.LogStore = "boltdb"
		return guarded(boltFile, func() error { return inspectBolt(filepath.Join(dir, boltFile), snapIndex, d) })
	case walErr == nil:
		d.LogStore = "wal"
		return guarded(walDir, func() error { return inspectWAL(filepath.Join(dir, walDir), snapIndex, d) })
	}
	d.LogStore = "none"
	return nil
}

func inspectBolt(path string, snapIndex uint64, d *dirJSON) error {
	// bbolt trusts its file; check its structure first, as the node does.
	if err := boltcheck.Check(path); err != nil {
		return fmt.Errorf("%s: %w", boltFile, err)
	}
	s, err := raftboltdb.New(raftboltdb.Options{Path: path,
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: lockWait}})
	if errors.Is(err, bolterrors.ErrTimeout) {
		d.InUse = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", boltFile, err)
	}
	defer s.Close()
	d.Term, _ = s.GetUint64(keyCurrentTerm)
	d.VoteTerm, _ = s.GetUint64(keyLastVoteTerm)
	if cand, err := s.Get(keyLastVoteCand); err == nil {
		d.VotedFor = string(cand)
	}
	first, err := s.FirstIndex()
	if err != nil {
		return fmt.Errorf("%s: %w", boltFile, err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return fmt.Errorf("%s: %w", boltFile, err)
	}
	t := logTally{snapIndex: snapIndex}
	for i := first; first > 0 && i <= last && t.problem == nil; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) && i <= snapIndex {
			continue // replaced by the snapshot; see logTally
		}
		if err != nil {
			t.problem = fmt.Errorf("log entry %d: %w", i, err)
			break
		}
		t.add(&l)
	}
	d.Log, err = t.result()
	return err
}

// inspectWAL reads raft-wal's metadata (which segments hold the log, and
// the stable store) from wal-meta.db, then the entries from the segment
// files, within the bounds the metadata gives each segment: a segment
// file may hold entries that a truncation has since dropped.
func inspectWAL(dir string, snapIndex uint64, d *dirJSON) error {
	state, err := readWALMeta(filepath.Join(dir, metadb.FileName), d)
	if err != nil || d.InUse {
		return err
	}
	filer := segment.NewFiler(dir, walfs.New())
	codec := &wal.BinaryCodec{}
	t := logTally{snapIndex: snapIndex}
	for _, seg := range state.Segments {
		after := max(seg.MinIndex, seg.BaseIndex, 1) - 1
		var before uint64
		if seg.MaxIndex > 0 { // sealed
			before = seg.MaxIndex + 1
		}
		err := filer.DumpSegment(seg.BaseIndex, seg.ID, after, before, func(_ waltypes.SegmentInfo, e waltypes.LogEntry) (bool, error) {
			var l raft.Log
			if err := codec.Decode(e.Data, &l); err != nil {
				return false, fmt.Errorf("log entry %d: %w", e.Index, err)
			}
			t.add(&l)
			return t.problem == nil, nil
		})
		if err != nil && t.problem == nil {
			t.problem = fmt.Errorf("segment %d: %w", seg.ID, err)
		}
	}
	d.Log, err = t.result()
	return err
}

// readWALMeta reads the WAL's persistent state and Raft's term and vote.
func readWALMeta(path string, d *dirJSON) (waltypes.PersistentState, error) {
	var state waltypes.PersistentState
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		d.InUse = true
		return state, nil
	}
	if err != nil {
		return state, fmt.Errorf("open %s: %w", metadb.FileName, err)
	}
	defer db.Close()
	return state, db.View(func(tx *bbolt.Tx) error {
		meta, stable := tx.Bucket([]byte(metadb.MetaBucket)), tx.Bucket([]byte(metadb.StableBucket))
		if meta == nil || stable == nil {
			return fmt.Errorf("%s lacks its buckets", metadb.FileName)
		}
		if raw := meta.Get([]byte(metadb.MetaKey)); raw != nil {
			if err := json.Unmarshal(raw, &state); err != nil {
				return fmt.Errorf("%s: %w", metadb.FileName, err)
			}
		}
		// raft-wal stores integers little-endian (wal.go, SetUint64).
		if b := stable.Get(keyCurrentTerm); len(b) == 8 {
			d.Term = binary.LittleEndian.Uint64(b)
		}
		if b := stable.Get(keyLastVoteTerm); len(b) == 8 {
			d.VoteTerm = binary.LittleEndian.Uint64(b)
		}
		d.VotedFor = string(stable.Get(keyLastVoteCand))
		return nil
	})
}
