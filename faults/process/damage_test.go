package process

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"go.etcd.io/bbolt"
)

// A stopped node's files are damaged in one of these ways. The first
// three reach state the node must read when it opens (an entry it had
// applied past its snapshot, or that snapshot), so Open must refuse them
// with ErrCorrupt rather than start on them. The last damages an entry
// the node logged but had not recorded as applied: Open may pass it, and
// the node must then stop with ErrCorrupt when it comes to apply it, or
// drop it as a torn write and take it again from the leader; it must
// never apply it.
const (
	flipEntry     = "flip a byte of an applied entry past the snapshot"
	truncateLog   = "truncate the log file at the first copy of an applied entry past the snapshot"
	flipSnapshot  = "flip a byte in the middle of the newest snapshot"
	flipUnapplied = "flip a byte of a logged entry past the recorded applied index"
)

// entryMark is in the command of every workload write (its key), and in
// nothing Raft writes itself; a byte flipped inside it is inside skiff's
// checksummed command.
var entryMark = []byte(workloadPrefix + "/k")

// damage damages dir, the data dir of a node that is not running, in a
// way chosen by rng. It returns the kind of damage and what it did; ""
// when there was nothing to damage yet (no snapshot and no applied write).
func damage(t testing.TB, dir string, rng *rand.Rand) (kind, what string) {
	t.Helper()
	applied := readUint(t, filepath.Join(dir, "applied-index"))
	snapIndex, snapFile := newestSnapshot(t, dir)
	kind = []string{flipEntry, truncateLog, flipSnapshot, flipUnapplied}[rng.IntN(4)]
	wal := dirExists(filepath.Join(dir, "wal"))
	logs := openLog(t, dir, wal)
	idx, data := logs.newest(snapIndex, applied)
	if kind == flipUnapplied {
		if i, d := logs.newest(applied, logs.last); d != nil {
			idx, data = i, d
		} else {
			kind = flipEntry // nothing logged past the applied index
		}
	}
	logs.close()
	switch {
	case data == nil && snapFile == "":
		return "", ""
	case data == nil:
		kind = flipSnapshot // everything applied is in the snapshot
	case kind == flipSnapshot && snapFile == "":
		kind = flipEntry
	}
	switch kind {
	case flipSnapshot:
		flipAt(t, snapFile, fileSize(t, snapFile)/2)
		return kind, kind + " " + snapFile
	case truncateLog:
		// From the entry's first copy on, everything goes: the page or
		// segment that holds the entry now is at or after that copy.
		for _, f := range logFiles(t, dir, wal) {
			if at := occurrences(t, f, data); len(at) > 0 {
				truncate(t, f, at[0])
				break
			}
		}
	default:
		// Every copy: bbolt leaves old copies of a page in free pages.
		off := int64(bytes.Index(data, entryMark) + 1)
		for _, f := range logFiles(t, dir, wal) {
			for _, at := range occurrences(t, f, data) {
				flipAt(t, f, at+off)
			}
		}
	}
	return kind, fmt.Sprintf("%s (entry %d; applied %d, snapshot %d, last %d)", kind, idx, applied, snapIndex, logs.last)
}

// logReader reads entries of a stopped node's log store: their stored
// bytes (raft.db's whole value, or the WAL entry's data, which a segment
// holds as is).
type logReader struct {
	get   func(idx uint64) []byte // nil for an entry that is not there
	last  uint64
	close func()
}

// newest returns the newest entry in (after, upto] that is a workload
// write, and its bytes; nil when there is none.
func (l logReader) newest(after, upto uint64) (uint64, []byte) {
	for idx := upto; idx > after; idx-- {
		if data := l.get(idx); bytes.Contains(data, entryMark) {
			return idx, data
		}
	}
	return 0, nil
}

func openLog(t testing.TB, dir string, wal bool) logReader {
	t.Helper()
	if wal {
		return walEntries(t, filepath.Join(dir, "wal"))
	}
	return boltEntries(t, filepath.Join(dir, "raft.db"))
}

// boltEntries opens raft.db read-only, which does not walk the file.
func boltEntries(t testing.TB, path string) logReader {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s to damage it: %v", path, err)
	}
	r := logReader{close: func() { db.Close() }}
	r.get = func(idx uint64) []byte {
		var v []byte
		_ = db.View(func(tx *bbolt.Tx) error {
			v = bytes.Clone(tx.Bucket([]byte("logs")).Get(binary.BigEndian.AppendUint64(nil, idx)))
			return nil
		})
		return v
	}
	_ = db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket([]byte("logs")).Cursor().Last(); k != nil {
			r.last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return r
}

// walEntries opens the WAL as the node would.
func walEntries(t testing.TB, path string) logReader {
	t.Helper()
	w, err := raftwal.Open(path)
	if err != nil {
		t.Fatalf("open %s to damage it: %v", path, err)
	}
	last, err := w.LastIndex()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	get := func(idx uint64) []byte {
		var l raft.Log
		if err := w.GetLog(idx, &l); err != nil {
			return nil
		}
		return l.Data
	}
	return logReader{get: get, last: last, close: func() { w.Close() }}
}

// logFiles returns the files of the node's log store.
func logFiles(t testing.TB, dir string, wal bool) []string {
	t.Helper()
	if !wal {
		return []string{filepath.Join(dir, "raft.db")}
	}
	files, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no WAL segments in %s: %v", dir, err)
	}
	return files
}

// newestSnapshot returns the index and state file of dir's newest
// snapshot, or 0 and "" when it has none.
func newestSnapshot(t testing.TB, dir string) (uint64, string) {
	t.Helper()
	metas, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	var index uint64
	var file string
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if meta.Index > index {
			index, file = meta.Index, filepath.Join(filepath.Dir(m), "state.bin")
		}
	}
	return index, file
}

func occurrences(t testing.TB, path string, data []byte) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for off := 0; ; {
		i := bytes.Index(b[off:], data)
		if i < 0 {
			return out
		}
		out = append(out, int64(off+i))
		off += i + 1
	}
}

func flipAt(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// readUint reads a number from a file; a file that is not there is 0.
func readUint(t testing.TB, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
