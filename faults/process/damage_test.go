package process

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// A stopped node's files are damaged in one of these ways. Each damage
// reaches state the node must read when it opens (an entry it had
// applied past its snapshot, or that snapshot), so Open must refuse it
// with ErrCorrupt rather than start on it.
const (
	flipEntry    = "flip a byte of an applied entry past the snapshot"
	truncateLog  = "truncate the log file at the first copy of an applied entry past the snapshot"
	flipSnapshot = "flip a byte in the middle of the newest snapshot"
)

// entryMark is in the command of every workload write (its key), and in
// nothing Raft writes itself; a byte flipped inside it is inside skiff's
// checksummed command.
var entryMark = []byte(workloadPrefix + "/k")

// damage damages dir, the data dir of a node that is not running, in a
// way chosen by rng, and says what it did; "" when there was nothing to
// damage yet (no snapshot and no applied write).
func damage(t testing.TB, dir string, rng *rand.Rand) string {
	t.Helper()
	applied := readUint(t, filepath.Join(dir, "applied-index"))
	snapIndex, snapFile := newestSnapshot(t, dir)
	kind := []string{flipEntry, truncateLog, flipSnapshot}[rng.IntN(3)]
	wal := dirExists(filepath.Join(dir, "wal"))
	idx, data := appliedEntry(t, dir, wal, snapIndex, applied)
	switch {
	case data == nil && snapFile == "":
		return ""
	case data == nil:
		kind = flipSnapshot // everything applied is in the snapshot
	case kind == flipSnapshot && snapFile == "":
		kind = flipEntry
	}
	switch kind {
	case flipSnapshot:
		flipAt(t, snapFile, fileSize(t, snapFile)/2)
		return kind + " " + snapFile
	case flipEntry:
		// Every copy: bbolt leaves old copies of a page in free pages.
		off := int64(bytes.Index(data, entryMark) + 1)
		for _, f := range logFiles(t, dir, wal) {
			for _, at := range occurrences(t, f, data) {
				flipAt(t, f, at+off)
			}
		}
	default:
		// From the entry's first copy on, everything goes: the page or
		// segment that holds the entry now is at or after that copy.
		for _, f := range logFiles(t, dir, wal) {
			if at := occurrences(t, f, data); len(at) > 0 {
				truncate(t, f, at[0])
				break
			}
		}
	}
	return fmtDamage(kind, idx, applied, snapIndex)
}

func fmtDamage(kind string, idx, applied, snap uint64) string {
	return kind + " (entry " + strconv.FormatUint(idx, 10) + "; applied " + strconv.FormatUint(applied, 10) +
		", snapshot " + strconv.FormatUint(snap, 10) + ")"
}

// appliedEntry returns the newest entry in (snapIndex, applied] that is
// a workload write, and its data; nil when there is none.
func appliedEntry(t testing.TB, dir string, wal bool, snapIndex, applied uint64) (uint64, []byte) {
	t.Helper()
	var get func(uint64) []byte
	if wal {
		get = walEntries(t, filepath.Join(dir, "wal"))
	} else {
		get = boltEntries(t, filepath.Join(dir, "raft.db"))
	}
	defer get(0)
	for idx := applied; idx > snapIndex; idx-- {
		if data := get(idx); bytes.Contains(data, entryMark) {
			return idx, data
		}
	}
	return 0, nil
}

// boltEntries opens raft.db read-only (which does not walk the file) and
// returns a function that reads an entry's raw stored value; index 0
// closes the file.
func boltEntries(t testing.TB, path string) func(uint64) []byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s to damage it: %v", path, err)
	}
	return func(idx uint64) []byte {
		if idx == 0 {
			db.Close()
			return nil
		}
		var v []byte
		_ = db.View(func(tx *bbolt.Tx) error {
			v = bytes.Clone(tx.Bucket([]byte("logs")).Get(binary.BigEndian.AppendUint64(nil, idx)))
			return nil
		})
		return v
	}
}

// walEntries opens the WAL and returns a function that reads an entry's
// data (stored as is in a segment); index 0 closes the WAL.
func walEntries(t testing.TB, path string) func(uint64) []byte {
	t.Helper()
	w, err := raftwal.Open(path)
	if err != nil {
		t.Fatalf("open %s to damage it: %v", path, err)
	}
	return func(idx uint64) []byte {
		if idx == 0 {
			w.Close()
			return nil
		}
		var l raft.Log
		if err := w.GetLog(idx, &l); err != nil {
			return nil
		}
		return l.Data
	}
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
