package skiff

import (
	"bytes"
	"context"
	"fmt"

	"github.com/skiffkv/skiff/internal/command"
	"github.com/skiffkv/skiff/store"
)

// KV is the key-value API. *Node implements it for the program that embeds
// a node; the network client implements the same interface, with the same
// errors, so code can be written once against KV.
//
// Writes return the revision they were committed at (the Raft log index).
// Reads are linearizable unless the Stale option is given.
type KV interface {
	// Put sets key to value.
	Put(ctx context.Context, key string, value []byte) (revision uint64, err error)
	// Create sets key only if it does not exist; otherwise ErrExists.
	Create(ctx context.Context, key string, value []byte) (revision uint64, err error)
	// CompareAndSwap sets key only if its ModRevision is modRevision;
	// otherwise (including when the key is absent) ErrRevisionMismatch.
	CompareAndSwap(ctx context.Context, key string, value []byte, modRevision uint64) (revision uint64, err error)
	// Get returns the key's value and revisions, or ErrNotFound.
	Get(ctx context.Context, key string, opts ...ReadOption) (*KeyValue, error)
	// Delete removes key. Deleting an absent key succeeds.
	Delete(ctx context.Context, key string) error
	// DeleteIf removes key only if its ModRevision is modRevision;
	// otherwise (including when the key is absent) ErrRevisionMismatch.
	DeleteIf(ctx context.Context, key string, modRevision uint64) error
	// List returns the keys below prefix in ascending order, from one
	// consistent revision. See WithLimit, WithAfter, WithKeysOnly.
	List(ctx context.Context, prefix string, opts ...ReadOption) (*ListResult, error)
	// Children lists the immediate children of prefix like a directory.
	Children(ctx context.Context, prefix string, opts ...ReadOption) ([]Child, error)
	// Prefixes returns the top-level namespaces (first segments of keys
	// that have more than one segment).
	Prefixes(ctx context.Context, opts ...ReadOption) ([]string, error)
	// Watch streams the changes below prefix (or to one key, with
	// WatchKey) in revision order. See Node.Watch.
	Watch(ctx context.Context, prefix string, opts ...WatchOption) (*Watcher, error)
}

var _ KV = (*Node)(nil)

// KeyValue is one key with its value and revisions. Revisions are Raft log
// indexes: CreateRevision is the write that created the key (since its
// last deletion), ModRevision the last write; Version counts writes since
// creation, starting at 1.
type KeyValue struct {
	Key            string
	Value          []byte
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
}

// ListResult is one page of a List. When More is set, pass the last key to
// WithAfter to get the next page. Revision is the state's revision the
// page was read at.
type ListResult struct {
	KVs      []KeyValue
	More     bool
	Revision uint64
}

// Child is an entry of a directory-style listing.
type Child struct {
	Name        string // one segment, without '/'
	IsKey       bool   // prefix/Name is itself a key
	HasChildren bool   // some keys lie below prefix/Name/
}

// ReadOption adjusts a read. Options that do not apply to a call are
// ignored.
type ReadOption func(*readOptions)

type readOptions struct {
	stale    bool
	limit    int
	after    string
	keysOnly bool
}

// Stale serves the read from the local node's state without contacting
// the leader: fast and available during a partition, but possibly behind
// the latest writes.
func Stale() ReadOption { return func(o *readOptions) { o.stale = true } }

// WithLimit returns at most n keys (List) or children (Children); 0 means
// no limit. A negative n is ErrInvalidArgument.
func WithLimit(n int) ReadOption { return func(o *readOptions) { o.limit = n } }

// WithAfter starts a List or Children strictly after the given key or
// child name: pass the last one of the previous page.
func WithAfter(key string) ReadOption { return func(o *readOptions) { o.after = key } }

// WithKeysOnly leaves values out of a List.
func WithKeysOnly() ReadOption { return func(o *readOptions) { o.keysOnly = true } }

func collectReadOptions(opts []ReadOption) (readOptions, error) {
	var o readOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.limit < 0 {
		return o, fmt.Errorf("%w: negative limit %d", ErrInvalidArgument, o.limit)
	}
	return o, nil
}

// Put sets key to value and returns the revision of the write.
func (n *Node) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return n.put(ctx, putOp(key, value))
}

// Create sets key to value only if key does not exist, and fails with an
// error wrapping ErrExists otherwise.
func (n *Node) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return n.put(ctx, ifAbsent(putOp(key, value)))
}

// CompareAndSwap sets key to value only if the key's ModRevision equals
// modRevision, and fails with an error wrapping ErrRevisionMismatch
// otherwise. Of many concurrent swaps from the same revision exactly one
// succeeds.
func (n *Node) CompareAndSwap(ctx context.Context, key string, value []byte, modRevision uint64) (uint64, error) {
	return n.put(ctx, ifRevision(putOp(key, value), modRevision))
}

func (n *Node) put(ctx context.Context, op command.Op) (uint64, error) {
	res, err := n.propose(ctx, op)
	if err != nil {
		return 0, err
	}
	return res.kv.ModRevision, nil
}

// Delete removes key. Deleting a key that does not exist succeeds.
func (n *Node) Delete(ctx context.Context, key string) error {
	_, err := n.propose(ctx, deleteOp(key))
	return err
}

// DeleteIf removes key only if its ModRevision equals modRevision, and
// fails with an error wrapping ErrRevisionMismatch otherwise.
func (n *Node) DeleteIf(ctx context.Context, key string, modRevision uint64) error {
	_, err := n.propose(ctx, ifRevision(deleteOp(key), modRevision))
	return err
}

// Get returns key's value and revisions, or an error wrapping ErrNotFound.
func (n *Node) Get(ctx context.Context, key string, opts ...ReadOption) (_ *KeyValue, err error) {
	defer n.meter().read(readGet, &err)
	o, err := collectReadOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := validateKey(key, n.cfg.MaxKeySize); err != nil {
		return nil, err
	}
	view, err := n.view(ctx, o.stale)
	if err != nil {
		return nil, err
	}
	e, ok := view.Get(key)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	kv := toKeyValue(e, true)
	return &kv, nil
}

// List returns the keys below prefix ("" for all) in ascending byte order,
// read from one consistent revision. The prefix matches whole segments:
// "users" lists "users/alice" but neither "users" itself nor "usersx/y".
func (n *Node) List(ctx context.Context, prefix string, opts ...ReadOption) (_ *ListResult, err error) {
	defer n.meter().read(readList, &err)
	view, prefix, o, err := n.subtreeView(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	return listView(view, prefix, o), nil
}

// subtreeView validates a prefix read and returns the view to read it
// from, the prefix without its trailing '/', and the options.
func (n *Node) subtreeView(ctx context.Context, prefix string, opts []ReadOption) (*store.View, string, readOptions, error) {
	o, err := collectReadOptions(opts)
	if err != nil {
		return nil, "", o, err
	}
	if prefix, err = normalizePrefix(prefix, n.cfg.MaxKeySize); err != nil {
		return nil, "", o, err
	}
	view, err := n.view(ctx, o.stale)
	return view, prefix, o, err
}

func listView(view *store.View, prefix string, o readOptions) *ListResult {
	res := &ListResult{Revision: view.Revision()}
	view.Range(prefix, o.after, func(e store.Entry) bool {
		if o.limit > 0 && len(res.KVs) == o.limit {
			res.More = true
			return false
		}
		res.KVs = append(res.KVs, toKeyValue(e, !o.keysOnly))
		return true
	})
	return res
}

// Children lists the immediate children of prefix ("" for the top level)
// like a directory listing, in ascending name order.
func (n *Node) Children(ctx context.Context, prefix string, opts ...ReadOption) (_ []Child, err error) {
	defer n.meter().read(readChildren, &err)
	view, prefix, o, err := n.subtreeView(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	return toChildren(view.Children(prefix, o.after, o.limit)), nil
}

func toChildren(cs []store.Child) []Child {
	out := make([]Child, len(cs))
	for i, c := range cs {
		out[i] = Child{Name: c.Name, IsKey: c.IsKey, HasChildren: c.HasChildren}
	}
	return out
}

// Prefixes returns the top-level namespaces: the distinct first segments
// of keys with more than one segment, ascending.
func (n *Node) Prefixes(ctx context.Context, opts ...ReadOption) (_ []string, err error) {
	defer n.meter().read(readPrefixes, &err)
	o, err := collectReadOptions(opts)
	if err != nil {
		return nil, err
	}
	view, err := n.view(ctx, o.stale)
	if err != nil {
		return nil, err
	}
	return view.Prefixes(), nil
}

// toKeyValue copies an entry out of the store, so callers may modify it.
func toKeyValue(e store.Entry, withValue bool) KeyValue {
	kv := KeyValue{Key: e.Key, CreateRevision: e.CreateRevision, ModRevision: e.ModRevision, Version: e.Version}
	if withValue {
		kv.Value = bytes.Clone(e.Value)
		if kv.Value == nil {
			kv.Value = []byte{}
		}
	}
	return kv
}
