package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// skiffOptions open a file the way skiff opens raft.db: without a synced
// freelist, so that Open walks every page.
var skiffOptions = &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}

// makeDB writes a database with what raft.db holds and more: a bucket big
// enough for branch pages ("logs"), a small one kept inline ("conf"),
// buckets in a bucket, and a value spanning overflow pages.
func makeDB(t testing.TB, path string, opts *bbolt.Options) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		logs, err := tx.CreateBucket([]byte("logs"))
		if err != nil {
			return err
		}
		for i := uint64(1); i <= 500; i++ {
			if err := logs.Put(binary.BigEndian.AppendUint64(nil, i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		conf, err := tx.CreateBucket([]byte("conf"))
		if err != nil {
			return err
		}
		if err := conf.Put([]byte("CurrentTerm"), []byte{0, 0, 0, 0, 0, 0, 0, 7}); err != nil {
			return err
		}
		outer, err := tx.CreateBucket([]byte("outer"))
		if err != nil {
			return err
		}
		inner, err := outer.CreateBucket([]byte("inner"))
		if err != nil {
			return err
		}
		return inner.Put([]byte("big"), bytes.Repeat([]byte("x"), 20000))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Free some pages, as truncating the Raft log does.
	err = db.Update(func(tx *bbolt.Tx) error {
		logs := tx.Bucket([]byte("logs"))
		for i := uint64(1); i <= 100; i++ {
			if err := logs.Delete(binary.BigEndian.AppendUint64(nil, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pages describes where things are in a file written by makeDB.
type pages struct {
	size     int64  // page size
	logs     uint64 // root of "logs", a branch page
	leaf     uint64 // first child of that root
	leaf2    uint64 // second child
	rootPage uint64 // the root bucket's page, as the newer meta says
	outer    uint64 // root of "outer", which holds "inner"
}

// layout finds the pages a damage recipe needs, reading the file with
// bbolt in read-only mode, which does not walk the file.
func layout(t testing.TB, path string) pages {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var l pages
	err = db.View(func(tx *bbolt.Tx) error {
		l.size = int64(db.Info().PageSize)
		l.logs = uint64(tx.Bucket([]byte("logs")).Root())
		l.outer = uint64(tx.Bucket([]byte("outer")).Root())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := readPage(t, path, l.size, l.logs)
	if h := header(p); h.flags != branchPage {
		t.Fatalf("logs root page %d has flags %#x, want a branch page", l.logs, h.flags)
	}
	l.leaf = binary.LittleEndian.Uint64(p[pageHeaderSize+8:])
	l.leaf2 = binary.LittleEndian.Uint64(p[pageHeaderSize+elementSize+8:])
	m0, m1 := parseMeta(readPage(t, path, l.size, 0)), parseMeta(readPage(t, path, l.size, 1))
	if m1.txid > m0.txid {
		m0 = m1
	}
	l.rootPage = m0.root
	return l
}

func readPage(t testing.TB, path string, size int64, id uint64) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[int64(id)*size : int64(id+1)*size]
}

func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestAcceptsWhatBboltWrites(t *testing.T) {
	cases := []struct {
		name string
		opts *bbolt.Options
		fill bool
	}{
		{"new and empty, freelist not synced", skiffOptions, false},
		{"new and empty, freelist synced", nil, false},
		{"buckets, overflow, freed pages, freelist not synced", skiffOptions, true},
		{"buckets, overflow, freed pages, freelist synced", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			if c.fill {
				makeDB(t, path, c.opts)
			} else {
				db, err := bbolt.Open(path, 0o600, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			if err := Check(path); err != nil {
				t.Fatalf("Check(%s) = %v, want nil", c.name, err)
			}
		})
	}
}

func TestNothingToCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("Check(missing file) = %v, want nil", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(empty); err != nil {
		t.Fatalf("Check(empty file) = %v, want nil", err)
	}
}

// A file that cannot be read is not reported as damaged.
func TestReadErrorIsNotDamage(t *testing.T) {
	err := Check(t.TempDir()) // a directory: open works, reading fails
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check(a directory) = %v, want a read error that is not ErrCorrupt", err)
	}
}

// setMeta rewrites meta page id with change applied and a valid checksum.
func setMeta(t testing.TB, path string, size int64, id uint64, change func(m []byte)) {
	t.Helper()
	m := append([]byte(nil), readPage(t, path, size, id)[pageHeaderSize:pageHeaderSize+metaSize]...)
	change(m)
	h := fnv.New64a()
	h.Write(m[:metaChecksum])
	binary.LittleEndian.PutUint64(m[metaChecksum:], h.Sum64())
	writeAt(t, path, int64(id)*size+pageHeaderSize, m)
}
