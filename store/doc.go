// Package store holds the in-memory state of a skiff node: an ordered map
// from '/'-separated string keys to values, with the revision bookkeeping
// that watches and conditional writes need, and a snapshot codec.
//
// The package knows revisions, not Raft. A revision is a number chosen by
// the caller (the Raft log index of the command being applied); store only
// records it and checks that the applied revision never goes backwards.
//
// # Lifecycle
//
// A [Store] has exactly one writer, the state machine, and any number of
// readers. The writer opens a [Txn], applies one command's writes to it and
// commits it with the command's index:
//
//	t := s.Txn()
//	t.Put("users/alice", []byte("admin"), idx)
//	t.Commit(idx)
//
// Readers call [Store.View] and get an immutable [View]: a consistent,
// point-in-time image of every key at [View.Revision]. Taking a view is one
// atomic load and reading it takes no lock, so reads never wait for writes
// and writes never wait for reads. A view stays valid, unchanged, for as
// long as it is referenced.
//
// # How views stay immutable
//
// The map is a copy-on-write B-tree (github.com/google/btree). A Txn works
// on a lazy clone of the current tree: the first write to any node copies
// that node and its path to the root, so the published tree is never
// written. Commit publishes the transaction's tree as the new view. The cost
// of a write is therefore O(log n) node copies; the cost of a view is O(1).
//
// # Snapshots
//
// [View.WriteTo] streams a view in a versioned, checksummed binary format
// and [ReadView] decodes one, building the tree in key order; [Store.Reset]
// installs the result. A decoded view keeps keys and values in the large
// blocks they were read into instead of one allocation per key, so a block
// stays in memory while any entry from it is live. Overwriting or deleting
// keys therefore frees memory in block-sized steps, and a later restore
// compacts it completely.
//
// # Keys
//
// Keys are not validated here; the caller decides which strings are legal.
// Prefix operations ([View.Range], [View.Children], [View.Prefixes]) treat
// '/' as the segment separator: the prefix "users" means the subtree
// "users/…" and never matches "usersx" or the key "users" itself.
package store
