package store

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
)

// degree is the B-tree degree: a node holds degree-1 to 2*degree-1 entries.
// Larger nodes make the tree shallower (faster snapshot loads, fewer
// pointers) but make every commit copy more bytes on its path to the root.
// 32 keeps a 1M-key tree four levels deep; see BenchmarkReadView1M and
// BenchmarkTxnPut before changing it.
const degree = 32

// Entry is one key's current state. An Entry returned by any method is a
// copy the caller may keep.
//
// Value is shared with the store and every view: nobody may modify its
// bytes. An empty value may come back as nil.
type Entry struct {
	Key            string
	Value          []byte
	CreateRevision uint64 // revision that created the key (since its last deletion)
	ModRevision    uint64 // revision of the last write
	Version        uint64 // number of writes since creation, 1 after create
}

// item is what the tree holds: the key, and the rest of the entry behind
// a pointer. Keeping items small (24 bytes) keeps the copy-on-write cheap:
// the first write to a node in a transaction copies the whole node.
type item struct {
	key string
	v   *entryVal // never modified once the item is in a published tree
}

type entryVal struct {
	value                []byte
	create, mod, version uint64
}

func (it item) entry() Entry {
	return Entry{Key: it.key, Value: it.v.value, CreateRevision: it.v.create, ModRevision: it.v.mod, Version: it.v.version}
}

// size is what the item counts towards View.Bytes.
func (it item) size() int64 { return int64(len(it.key) + len(it.v.value)) }

func lessItem(a, b item) bool { return a.key < b.key }

type tree = btree.BTreeG[item]

func newTree() *tree { return btree.NewG(degree, lessItem) }

// cloneTree returns a writable copy-on-write clone of t without writing to
// t. btree's Clone replaces the copy-on-write context of the tree it is
// called on, and t may be a published tree that readers are traversing, so
// Clone is called on a private copy of t's header instead.
func cloneTree(t *tree) *tree {
	hdr := *t
	return hdr.Clone()
}

// Store is the state of the key space. It has a single writer, which
// changes the state through Txn and Reset, and any number of concurrent
// readers, which use View.
type Store struct {
	// mu is held by the open Txn from Txn() until Commit or Discard, and by
	// Reset; it serializes writers. Readers never take it.
	mu  sync.Mutex
	cur atomic.Pointer[View] // never nil
}

// New returns an empty store at revision 0.
func New() *Store {
	s := &Store{}
	s.cur.Store(&View{tree: newTree()})
	return s
}

// View returns the current state as an immutable view. It is one atomic
// load and is safe to call from any goroutine, including during a Txn,
// which it does not see until Commit.
func (s *Store) View() *View { return s.cur.Load() }

// Txn begins a write transaction on a private copy of the current state.
//
// Only one transaction may be open at a time: Txn blocks until the previous
// transaction has been committed or discarded (and so deadlocks if the same
// goroutine still holds one open). The returned Txn must be used by one
// goroutine at a time and must end with Commit or Discard.
func (s *Store) Txn() *Txn {
	s.mu.Lock()
	base := s.cur.Load()
	return &Txn{s: s, base: base, tree: cloneTree(base.tree), bytes: base.bytes}
}

// Reset replaces the whole state with v, which becomes the current view
// (for example a view decoded by ReadView when restoring a snapshot). The
// revision may go backwards. Reset waits for an open Txn to finish. The
// store never writes to v, so v may also be a view of another store.
func (s *Store) Reset(v *View) {
	if v == nil {
		panic("store: Reset with nil View")
	}
	s.mu.Lock()
	s.cur.Store(v)
	s.mu.Unlock()
}

// Txn is a write transaction. It sees its own writes; nobody else sees them
// until Commit. Put and Delete panic after Commit or Discard; Get and Bytes
// keep working on the final state.
type Txn struct {
	s     *Store
	base  *View // the view the transaction started from
	tree  *tree // private until Commit publishes it
	bytes int64
	done  bool
}

// Get returns the entry for key as the transaction currently sees it.
func (t *Txn) Get(key string) (Entry, bool) {
	it, ok := t.tree.Get(item{key: key})
	if !ok {
		return Entry{}, false
	}
	return it.entry(), true
}

// Put sets key to value at revision rev and returns the previous entry.
// ModRevision becomes rev and Version grows by one; a new key (including one
// that was deleted before) gets CreateRevision rev and Version 1.
//
// Put keeps value without copying it: the caller must not modify it later.
func (t *Txn) Put(key string, value []byte, rev uint64) (prev Entry, existed bool) {
	t.mustBeOpen("Put")
	v := &entryVal{value: value, create: rev, mod: rev, version: 1}
	old, existed := t.tree.ReplaceOrInsert(item{key: key, v: v})
	if existed {
		// v is not visible to anyone until Commit, so it may still change.
		v.create, v.version = old.v.create, old.v.version+1
		t.bytes -= old.size()
		prev = old.entry()
	}
	t.bytes += int64(len(key) + len(value))
	return prev, existed
}

// Delete removes key and returns the entry it had. The revision is not
// recorded in the store (a deleted key leaves nothing behind); it is taken
// so that every write names the revision it belongs to.
func (t *Txn) Delete(key string, rev uint64) (prev Entry, existed bool) {
	t.mustBeOpen("Delete")
	old, existed := t.tree.Delete(item{key: key})
	if !existed {
		return Entry{}, false
	}
	t.bytes -= old.size()
	return old.entry(), true
}

// Bytes returns the sum of len(key)+len(value) over all keys, including the
// transaction's pending writes: what View.Bytes will report after Commit.
// A quota check can compare it against a limit before committing.
func (t *Txn) Bytes() int64 { return t.bytes }

// Commit publishes the transaction's state as the current view, with
// Revision rev, and ends the transaction. rev is the applied index and must
// not be below the revision the transaction started from; if it is, Commit
// discards the transaction and panics. Commit after Commit or Discard does
// nothing.
func (t *Txn) Commit(rev uint64) {
	if t.done {
		return
	}
	if rev < t.base.rev {
		t.Discard()
		panic(fmt.Sprintf("store: Commit(%d) below current revision %d", rev, t.base.rev))
	}
	t.done = true
	t.s.cur.Store(&View{tree: t.tree, rev: rev, bytes: t.bytes})
	t.s.mu.Unlock()
}

// Discard drops the transaction's writes and ends it. Discard after Commit
// or Discard does nothing, so it can be deferred right after Txn().
func (t *Txn) Discard() {
	if t.done {
		return
	}
	t.done = true
	t.tree = t.base.tree
	t.bytes = t.base.bytes
	t.s.mu.Unlock()
}

func (t *Txn) mustBeOpen(op string) {
	if t.done {
		panic("store: " + op + " on a finished Txn")
	}
}
