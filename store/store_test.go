package store

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// op is one write, committed in its own transaction at rev.
type op struct {
	del  bool
	key  string
	val  string
	rev  uint64
	prev *Entry // the previous entry Put or Delete must return; nil: none
}

// ent is shorthand for an expected entry.
func ent(key, val string, create, mod, version uint64) *Entry {
	return &Entry{Key: key, Value: []byte(val), CreateRevision: create, ModRevision: mod, Version: version}
}

func sameEntry(a, b Entry) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version
}

func fmtEntry(ent Entry, ok bool) string {
	if !ok {
		return "<absent>"
	}
	return fmt.Sprintf("{%q %q c%d m%d v%d}", ent.Key, ent.Value, ent.CreateRevision, ent.ModRevision, ent.Version)
}

var txnTests = []struct {
	name      string
	ops       []op
	want      map[string]*Entry // nil: absent
	wantBytes int64
}{{
	name:      "create",
	ops:       []op{{key: "a", val: "1", rev: 5}},
	want:      map[string]*Entry{"a": ent("a", "1", 5, 5, 1)},
	wantBytes: 2,
}, {
	name: "overwrite keeps create revision",
	ops: []op{
		{key: "a", val: "1", rev: 5},
		{key: "a", val: "22", rev: 6, prev: ent("a", "1", 5, 5, 1)},
		{key: "a", val: "333", rev: 9, prev: ent("a", "22", 5, 6, 2)},
	},
	want:      map[string]*Entry{"a": ent("a", "333", 5, 9, 3)},
	wantBytes: 4,
}, {
	name: "delete",
	ops: []op{
		{key: "a", val: "1", rev: 1},
		{key: "b", val: "2", rev: 2},
		{del: true, key: "a", rev: 3, prev: ent("a", "1", 1, 1, 1)},
	},
	want:      map[string]*Entry{"a": nil, "b": ent("b", "2", 2, 2, 1)},
	wantBytes: 2,
}, {
	name:      "delete missing",
	ops:       []op{{del: true, key: "a", rev: 1}},
	want:      map[string]*Entry{"a": nil},
	wantBytes: 0,
}, {
	name: "recreate after delete starts over",
	ops: []op{
		{key: "a", val: "1", rev: 1},
		{key: "a", val: "2", rev: 2, prev: ent("a", "1", 1, 1, 1)},
		{del: true, key: "a", rev: 3, prev: ent("a", "2", 1, 2, 2)},
		{key: "a", val: "3", rev: 4},
	},
	want:      map[string]*Entry{"a": ent("a", "3", 4, 4, 1)},
	wantBytes: 2,
}, {
	name: "empty value",
	ops:  []op{{key: "k", val: "", rev: 1}},
	want: map[string]*Entry{"k": ent("k", "", 1, 1, 1)}, wantBytes: 1,
}}

func TestTxnRevisions(t *testing.T) {
	for _, tt := range txnTests {
		t.Run(tt.name, func(t *testing.T) {
			v := applyOps(t, tt.ops)
			for key, want := range tt.want {
				if got, ok := v.Get(key); ok != (want != nil) || ok && !sameEntry(got, *want) {
					t.Errorf("Get(%q) = %s, want %s", key, fmtEntry(got, ok), fmtEntry(deref(want)))
				}
			}
			if got := v.Bytes(); got != tt.wantBytes {
				t.Errorf("Bytes() = %d, want %d", got, tt.wantBytes)
			}
			if got, want := v.Revision(), tt.ops[len(tt.ops)-1].rev; got != want {
				t.Errorf("Revision() = %d, want %d", got, want)
			}
		})
	}
}

// applyOps commits each op in its own transaction, checking the previous
// entry it returns, and returns the final view.
func applyOps(t *testing.T, ops []op) *View {
	t.Helper()
	s := New()
	for _, o := range ops {
		txn := s.Txn()
		var prev Entry
		var existed bool
		if o.del {
			prev, existed = txn.Delete(o.key, o.rev)
		} else {
			prev, existed = txn.Put(o.key, []byte(o.val), o.rev)
		}
		if existed != (o.prev != nil) || existed && !sameEntry(prev, *o.prev) {
			t.Errorf("rev %d: previous entry of %q = %s, want %s", o.rev, o.key,
				fmtEntry(prev, existed), fmtEntry(deref(o.prev)))
		}
		txn.Commit(o.rev)
	}
	return s.View()
}

func deref(p *Entry) (Entry, bool) {
	if p == nil {
		return Entry{}, false
	}
	return *p, true
}

func TestTxnSeesOwnWrites(t *testing.T) {
	s := New()
	txn := s.Txn()
	txn.Put("a", []byte("1"), 1)
	txn.Put("b", []byte("22"), 1)
	if got, ok := txn.Get("a"); !ok || string(got.Value) != "1" {
		t.Errorf("Txn.Get(%q) = %s, want value 1", "a", fmtEntry(got, ok))
	}
	if got := txn.Bytes(); got != 5 {
		t.Errorf("Txn.Bytes() = %d, want 5", got)
	}
	if got, ok := s.View().Get("a"); ok {
		t.Errorf("View().Get(%q) before Commit = %s, want absent", "a", fmtEntry(got, ok))
	}
	txn.Commit(1)
	txn.Commit(2) // no effect after Commit
	if got := s.View().Revision(); got != 1 {
		t.Errorf("Revision() after second Commit = %d, want 1", got)
	}
}

func TestTxnDiscard(t *testing.T) {
	s := New()
	txn := s.Txn()
	txn.Put("keep", []byte("v"), 1)
	txn.Commit(1)
	before := s.View()

	txn = s.Txn()
	txn.Put("drop", []byte("x"), 2)
	txn.Delete("keep", 2)
	txn.Discard()
	txn.Discard() // no effect after Discard

	if got := s.View(); got != before {
		t.Errorf("View() after Discard = %p, want the view before it %p", got, before)
	}
	if got, ok := txn.Get("keep"); !ok {
		t.Errorf("discarded Txn.Get(%q) = %s, want the base entry", "keep", fmtEntry(got, ok))
	}
	if got, ok := txn.Get("drop"); ok {
		t.Errorf("discarded Txn.Get(%q) = %s, want absent", "drop", fmtEntry(got, ok))
	}
	if got := txn.Bytes(); got != before.Bytes() {
		t.Errorf("discarded Txn.Bytes() = %d, want %d", got, before.Bytes())
	}
	mustPanic(t, "Put after Discard", func() { txn.Put("x", nil, 3) })
	mustPanic(t, "Delete after Discard", func() { txn.Delete("x", 3) })

	// The lock was released: a new transaction can start.
	txn = s.Txn()
	txn.Put("next", []byte("y"), 3)
	txn.Commit(3)
	if got := s.View().Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
}

func TestCommitBelowRevisionPanics(t *testing.T) {
	s := New()
	txn := s.Txn()
	txn.Commit(10)
	txn = s.Txn()
	txn.Put("a", []byte("1"), 9)
	mustPanic(t, "Commit(9) at revision 10", func() { txn.Commit(9) })
	if _, ok := s.View().Get("a"); ok {
		t.Errorf("Get(%q) after failed Commit found the key, want absent", "a")
	}
	s.Txn().Discard() // the failed Commit released the lock
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestViewIsImmutable(t *testing.T) {
	s := New()
	txn := s.Txn()
	for i := range 1000 {
		txn.Put(fmt.Sprintf("k/%04d", i), []byte("old"), 1)
	}
	txn.Commit(1)
	v := s.View()

	txn = s.Txn()
	for i := range 1000 {
		switch i % 3 {
		case 0:
			txn.Put(fmt.Sprintf("k/%04d", i), []byte("new"), 2)
		case 1:
			txn.Delete(fmt.Sprintf("k/%04d", i), 2)
		}
		txn.Put(fmt.Sprintf("k/%04d-added", i), []byte("new"), 2)
	}
	txn.Commit(2)

	if v.Revision() != 1 || v.Len() != 1000 || v.Bytes() != 1000*(6+3) {
		t.Errorf("old view: Revision, Len, Bytes = %d, %d, %d, want 1, 1000, 9000",
			v.Revision(), v.Len(), v.Bytes())
	}
	n := 0
	v.Range("", "", func(ent Entry) bool {
		want := fmt.Sprintf("k/%04d", n)
		if ent.Key != want || string(ent.Value) != "old" || ent.ModRevision != 1 {
			t.Errorf("old view entry %d = %s, want {%q \"old\" m1}", n, fmtEntry(ent, true), want)
		}
		n++
		return true
	})
	if n != 1000 {
		t.Errorf("old view Range saw %d keys, want 1000", n)
	}
	if got := s.View().Len(); got != 1000-333+1000 {
		t.Errorf("new view Len() = %d, want %d", got, 1000-333+1000)
	}
}

func TestResetInstallsDecodedView(t *testing.T) {
	src := viewOf(t, 300, 1)
	v := roundTrip(t, src)
	s := New()
	s.Reset(v)
	if got := s.View(); got != v {
		t.Fatalf("View() after Reset = %p, want %p", got, v)
	}
	txn := s.Txn()
	txn.Put("k/0000", []byte("changed"), 5)
	txn.Delete("k/0001", 5)
	txn.Put("zzz", []byte("new"), 5)
	txn.Commit(5)
	if got, _ := v.Get("k/0000"); string(got.Value) == "changed" {
		t.Errorf("decoded view changed after a write to the store")
	}
	if got, ok := s.View().Get("k/0000"); !ok || got.Version != 2 || string(got.Value) != "changed" {
		t.Errorf("Get(%q) = %s, want version 2 value changed", "k/0000", fmtEntry(got, ok))
	}
	if got, want := s.View().Len(), v.Len(); got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	mustPanic(t, "Reset(nil)", func() { s.Reset(nil) })
}

// TestConcurrentReaders checks, under -race, that readers see consistent
// views while one writer commits and another goroutine encodes snapshots.
func TestConcurrentReaders(t *testing.T) {
	const (
		keys    = 200
		commits = 2000
	)
	s := New()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			for !stop.Load() {
				v := s.View()
				if r == 0 {
					checkSnapshot(t, v)
				} else {
					checkConsistent(t, v)
				}
			}
		})
	}
	for rev := uint64(1); rev <= commits; rev++ {
		txn := s.Txn()
		// Every commit rewrites "rev" and a spread of keys, all with the
		// commit's revision as value, and deletes one.
		txn.Put("rev", []byte(strconv.FormatUint(rev, 10)), rev)
		for i := range 10 {
			k := fmt.Sprintf("k/%03d", (int(rev)*7+i*31)%keys)
			txn.Put(k, []byte(strconv.FormatUint(rev, 10)), rev)
		}
		txn.Delete(fmt.Sprintf("k/%03d", int(rev)*13%keys), rev)
		txn.Commit(rev)
	}
	stop.Store(true)
	wg.Wait()
}

// checkConsistent checks that v agrees with itself: no value is newer than
// the view, and Len and Bytes match a full scan.
func checkConsistent(t *testing.T, v *View) {
	n, size := 0, int64(0)
	v.Range("", "", func(ent Entry) bool {
		n++
		size += int64(len(ent.Key) + len(ent.Value))
		if r, _ := strconv.ParseUint(string(ent.Value), 10, 64); r > v.Revision() || r != ent.ModRevision {
			t.Errorf("view at %d: %s has a value from revision %d", v.Revision(), fmtEntry(ent, true), r)
		}
		return true
	})
	if n != v.Len() || size != v.Bytes() {
		t.Errorf("view at %d: scan found %d keys, %d bytes; Len() = %d, Bytes() = %d",
			v.Revision(), n, size, v.Len(), v.Bytes())
	}
}

func checkSnapshot(t *testing.T, v *View) {
	var buf bytes.Buffer
	if _, err := v.WriteTo(&buf); err != nil {
		t.Errorf("WriteTo: %v", err)
		return
	}
	got, err := ReadView(&buf)
	if err != nil {
		t.Errorf("ReadView: %v", err)
		return
	}
	if diff := diffViews(got, v); diff != "" {
		t.Errorf("snapshot taken during writes: %s", diff)
	}
}
