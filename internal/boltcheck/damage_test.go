package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// Each recipe damages a file written by makeDB. The comments say what
// bbolt.Open (with skiff's options) does with the damaged file.
var recipes = []struct {
	name   string
	damage func(t testing.TB, path string, l pages)
	want   string // in Check's error; "" means the file is fine
}{
	{"first meta page zeroed", func(t testing.TB, path string, l pages) {
		// bbolt uses the other one.
		writeAt(t, path, 0, make([]byte, l.size))
	}, ""},
	{"both meta pages zeroed", func(t testing.TB, path string, l pages) {
		// bbolt.Open: "invalid database".
		writeAt(t, path, 0, make([]byte, 2*l.size))
	}, "neither meta page is valid"},
	{"root page names another page", func(t testing.TB, path string, l pages) {
		// Panics in the goroutine bbolt starts: "Page expected to be".
		writeAt(t, path, int64(l.logs)*l.size, u64(0))
	}, "its header names page 0"},
	{"leaf page marked as branch", func(t testing.TB, path string, l pages) {
		// Its elements read as branch elements name pages far away.
		writeAt(t, path, int64(l.leaf)*l.size+8, []byte{branchPage, 0})
	}, "bucket \"logs\": page"},
	{"page of a free id", func(t testing.TB, path string, l pages) {
		writeAt(t, path, int64(l.logs)*l.size+8, []byte{freelistPage, 0})
	}, "not a branch or leaf page"},
	{"truncated to the meta pages", func(t testing.TB, path string, l pages) {
		// SIGBUS in bbolt's goroutine.
		if err := os.Truncate(path, 2*l.size); err != nil {
			t.Fatal(err)
		}
	}, "the file is"},
	{"truncated to one page", func(t testing.TB, path string, l pages) {
		// bbolt.Open: "file size too small".
		if err := os.Truncate(path, l.size); err != nil {
			t.Fatal(err)
		}
	}, "meta page"},
	{"child beyond the allocated pages", func(t testing.TB, path string, l pages) {
		// Faults in bbolt's goroutine (an address far outside the map).
		writeAt(t, path, int64(l.logs)*l.size+pageHeaderSize+8, u64(1<<28))
	}, "outside the allocated pages"},
	{"child out of its key range", func(t testing.TB, path string, l pages) {
		writeAt(t, path, int64(l.logs)*l.size+pageHeaderSize+8, u64(l.leaf2))
	}, "is not below the next key"},
	{"page reached twice", func(t testing.TB, path string, l pages) {
		// "inner" made to share a page of "logs".
		p := readPage(t, path, l.size, l.outer)
		i := bytes.Index(p, []byte("inner"))
		if i < 0 {
			t.Fatal("no inner bucket in outer's root page")
		}
		writeAt(t, path, int64(l.outer)*l.size+int64(i+len("inner")), u64(l.leaf))
	}, "reached twice"},
	{"too many elements", func(t testing.TB, path string, l pages) {
		// bbolt: slice bounds out of range, in its goroutine.
		writeAt(t, path, int64(l.leaf)*l.size+10, []byte{0xff, 0xff})
	}, "elements do not fit"},
	{"key past the page", func(t testing.TB, path string, l pages) {
		writeAt(t, path, int64(l.leaf)*l.size+pageHeaderSize+8, u64(1<<31))
	}, "run past the page"},
	{"key out of order", func(t testing.TB, path string, l pages) {
		// The first key of the second leaf sorts after the parent's bound.
		writeAt(t, path, int64(l.leaf)*l.size+pageHeaderSize+4, []byte{0, 0, 0, 0})
	}, "key"},
	{"inline bucket not a leaf", func(t testing.TB, path string, l pages) {
		p := readPage(t, path, l.size, l.rootPage)
		i := bytes.Index(p, []byte("conf"))
		if i < 0 {
			t.Fatal("no conf bucket in the root page")
		}
		writeAt(t, path, int64(l.rootPage)*l.size+int64(i+len("conf")+bucketHeaderSize+8), []byte{branchPage, 0})
	}, "inline bucket with flags"},
	{"page size not a power of two", func(t testing.TB, path string, l pages) {
		for id := uint64(0); id < 2; id++ {
			setMeta(t, path, l.size, id, func(m []byte) { m[8], m[9] = 0x88, 0x13 }) // 5000
		}
	}, "page size 5000"},
	{"meta counts more pages than the file has", func(t testing.TB, path string, l pages) {
		for id := uint64(0); id < 2; id++ {
			setMeta(t, path, l.size, id, func(m []byte) { copy(m[40:], u64(1<<20)) })
		}
	}, "the file is"},
}

func TestFindsDamage(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			makeDB(t, path, skiffOptions)
			r.damage(t, path, layout(t, path))
			err := Check(path)
			if r.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("Check = %v, want ErrCorrupt mentioning %q", err, r.want)
			}
		})
	}
}

// A synced freelist is read by bbolt.Open; its page is checked too.
func TestFindsDamagedFreelist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	makeDB(t, path, nil)
	l := layout(t, path)
	meta := readPage(t, path, l.size, 0)
	free := readPage(t, path, l.size, 1)
	// The newer meta names the freelist bbolt reads; damage both.
	for _, m := range [][]byte{meta, free} {
		id := binary.LittleEndian.Uint64(m[pageHeaderSize+32:])
		writeAt(t, path, int64(id)*l.size+10, []byte{0xff, 0xff})
		writeAt(t, path, int64(id)*l.size+pageHeaderSize, u64(1<<40))
	}
	if err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "freelist") {
		t.Fatalf("Check = %v, want ErrCorrupt naming the freelist", err)
	}
}

// bbolt itself opens what Check accepts after damage it tolerates.
func TestBboltOpensWhatCheckAccepts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	makeDB(t, path, skiffOptions)
	recipes[0].damage(t, path, layout(t, path))
	if err := Check(path); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, skiffOptions)
	if err != nil {
		t.Fatalf("bbolt.Open after Check accepted: %v", err)
	}
	db.Close()
}
