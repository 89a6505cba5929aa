package skiff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffkv/skiff/store"
)

// EventType says what an Event reports.
type EventType uint8

const (
	// EventPut: the key was created or updated (or, before EventSynced, is
	// part of the initial state).
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted.
	EventDelete
	// EventSynced ends the initial state (WithInitialState): the events
	// before it are the watched keys as of Revision, the events after it
	// are the changes since.
	EventSynced
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	case EventSynced:
		return "SYNCED"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change seen by a watch. Changes arrive in revision order,
// each revision once. Revision is the Raft index of the write (for the
// initial state, the key's ModRevision; for EventSynced, the revision of
// the initial state).
type Event struct {
	Type           EventType
	Key            string
	Value          []byte // nil for EventDelete
	Revision       uint64
	CreateRevision uint64
	Version        uint64
	// Prev is the key before the change, with WithPrevValue; nil when the
	// key did not exist.
	Prev *KeyValue
}

// WatchOption adjusts a watch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	after    uint64
	fromRev  bool
	initial  bool
	prev     bool
	exactKey bool
}

// WatchFrom starts the watch with the changes after revision rev (for
// example the last revision a previous watch delivered) instead of the
// current one. If the history no longer holds them, the watch fails with
// a *CompactedError (ErrCompacted).
func WatchFrom(rev uint64) WatchOption {
	return func(o *watchOptions) { o.after, o.fromRev = rev, true }
}

// WithInitialState begins the watch with every watched key as of one
// linearizable revision, then EventSynced, then the changes after it: a
// list and a watch without a gap or an overlap between them.
func WithInitialState() WatchOption { return func(o *watchOptions) { o.initial = true } }

// WithPrevValue fills Event.Prev.
func WithPrevValue() WatchOption { return func(o *watchOptions) { o.prev = true } }

// WatchKey watches the one key named instead of a subtree.
func WatchKey() WatchOption { return func(o *watchOptions) { o.exactKey = true } }

func collectWatchOptions(opts []WatchOption) watchOptions {
	var o watchOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// Watcher delivers a watch's events. Events is closed when the watch ends;
// Err then says why. Close ends it early.
type Watcher struct {
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}
	rev    atomic.Uint64

	mu     sync.Mutex
	err    error
	closed bool
}

// watchBuffer is how many events a Watcher holds for a slow reader. The
// node side holds nothing more per watcher: its changes stay in the
// shared history until the watcher reads them.
const watchBuffer = 256

func newWatcher(ctx context.Context) (*Watcher, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &Watcher{events: make(chan Event, watchBuffer), cancel: cancel, done: make(chan struct{})}, ctx
}

// Events returns the channel of events. It is closed when the watch ends.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err returns why the watch ended: nil after Close, the context's error
// when its context ended, otherwise an error such as a *CompactedError
// (ErrCompacted, ErrWatchLagged) or ErrClosed. It is nil while the watch
// runs.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Revision returns the revision up to which the watch has delivered every
// change; WatchFrom(Revision()) resumes it without a gap or a repeat.
func (w *Watcher) Revision() uint64 { return w.rev.Load() }

// Close ends the watch and waits until its resources are released. Events
// not yet received are dropped.
func (w *Watcher) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
}

// send delivers one event, unless the watch is ending.
func (w *Watcher) send(ctx context.Context, ev Event) error {
	select {
	case w.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Watcher) finish(err error) {
	w.mu.Lock()
	if w.closed {
		err = nil
	}
	w.err = err
	w.mu.Unlock()
	w.cancel()
	close(w.events)
	close(w.done)
}

// Watch streams the changes to the keys below prefix ("" for all; with
// WatchKey, to the one key prefix) as this node applies them, from the
// current revision or from WatchFrom's. It works on any node: a follower
// delivers the changes as it applies them. Watch returns an error at once
// for an invalid prefix or a compacted starting revision; later failures
// end the Watcher (see Watcher.Err).
//
// A watch never slows the node: changes are kept in a shared, bounded
// history (Config.WatchHistory) and each watch reads it at its own pace.
// A watch that falls behind the whole history ends with a *CompactedError
// that matches ErrWatchLagged and ErrCompacted and carries the last
// revision delivered.
func (n *Node) Watch(ctx context.Context, prefix string, opts ...WatchOption) (*Watcher, error) {
	o := collectWatchOptions(opts)
	sub, err := n.newSubscription(ctx, prefix, o)
	if err != nil {
		return nil, err
	}
	w, wctx := newWatcher(ctx)
	go func() {
		err := sub.run(wctx, func(b watchBatch) error { return w.deliver(wctx, b, o.prev) })
		if wctx.Err() != nil && !errors.Is(err, ErrClosed) {
			err = ctx.Err()
		}
		w.finish(err)
	}()
	return w, nil
}

// deliver turns a batch into events, copying values out of the store.
func (w *Watcher) deliver(ctx context.Context, b watchBatch, prev bool) error {
	for _, e := range b.initial {
		if err := w.send(ctx, Event{Type: EventPut, Key: e.Key, Value: cloneValue(e.Value), Revision: e.ModRevision,
			CreateRevision: e.CreateRevision, Version: e.Version}); err != nil {
			return err
		}
	}
	if b.synced {
		if err := w.send(ctx, Event{Type: EventSynced, Revision: b.rev}); err != nil {
			return err
		}
	}
	for _, c := range b.changes {
		if err := w.send(ctx, changeEvent(c, prev)); err != nil {
			return err
		}
	}
	if !b.initialPage {
		w.rev.Store(max(w.rev.Load(), b.rev))
	}
	return nil
}

func changeEvent(c change, prev bool) Event {
	ev := Event{Type: EventPut, Key: c.kv.Key, Value: cloneValue(c.kv.Value), Revision: c.kv.ModRevision,
		CreateRevision: c.kv.CreateRevision, Version: c.kv.Version}
	if c.deleted {
		ev = Event{Type: EventDelete, Key: c.kv.Key, Revision: c.kv.ModRevision}
	}
	if prev && c.hadPrev {
		kv := toKeyValue(c.prev, true)
		ev.Prev = &kv
	}
	return ev
}

func cloneValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return bytes.Clone(v)
}

// watchBatch is what a subscription hands to its consumer: a page of the
// initial state, the marker ending it, or changes up to rev.
type watchBatch struct {
	initial     []store.Entry
	initialPage bool // initial holds a page of the initial state
	synced      bool // the initial state is complete as of rev
	changes     []change
	rev         uint64
}

// subscription is one watch's reader of the history.
type subscription struct {
	n      *Node
	m      matcher
	prefix string // validated, without trailing '/'
	o      watchOptions
	start  position // when !o.initial
}

// watchPage bounds the changes or initial entries in one batch; pageBytes
// bounds their size.
const watchPage = 256

// progressEvery is how often a watch with no matching changes still
// reports the revision it has reached, so it can resume from a recent
// revision.
const progressEvery = time.Second

func (n *Node) newSubscription(ctx context.Context, prefix string, o watchOptions) (*subscription, error) {
	if n.isClosed() {
		return nil, n.errClosed()
	}
	s := &subscription{n: n, o: o}
	var err error
	if o.exactKey {
		err = validateKey(prefix, n.cfg.MaxKeySize)
		s.prefix, s.m = prefix, matcher{key: prefix, exact: true}
	} else {
		s.prefix, err = normalizePrefix(prefix, n.cfg.MaxKeySize)
		s.m = matcher{key: dirPrefix(s.prefix)}
	}
	if err != nil {
		return nil, err
	}
	if err := n.checkStart(ctx, o); err != nil {
		return nil, err
	}
	if !o.initial {
		if s.start, err = n.hist.startAt(o.after, !o.fromRev); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkStart refuses a WatchFrom revision the cluster has not reached: the
// watch would wait, silent, until it had. A revision this node has not
// applied yet may still be one the cluster has (this node lags), so the
// leader is asked.
func (n *Node) checkStart(ctx context.Context, o watchOptions) error {
	if !o.fromRev || o.after <= n.fsm.appliedIndex() {
		return nil
	}
	view, err := n.view(ctx, false)
	if err != nil {
		return fmt.Errorf("watch from revision %d, beyond this node's %d: %w", o.after, n.fsm.appliedIndex(), err)
	}
	// A restored backup's state has an older revision than the index it
	// was applied at.
	if at := max(view.Revision(), n.fsm.appliedIndex()); o.after > at {
		return fmt.Errorf("%w: watch from revision %d: the cluster is at revision %d", ErrInvalidArgument, o.after, at)
	}
	return nil
}

func dirPrefix(p string) string {
	if p == "" {
		return ""
	}
	return p + "/"
}

// run feeds batches to send until ctx ends, the node closes, send fails
// or the watch falls out of the history. send may block; that delays
// only this watch.
func (s *subscription) run(ctx context.Context, send func(watchBatch) error) error {
	h := s.n.hist
	h.addWatcher(1)
	defer h.addWatcher(-1)
	pos := s.start
	if s.o.initial {
		var err error
		if pos, err = s.sendInitial(ctx, send); err != nil {
			return err
		}
	}
	lastSent := time.Now()
	for {
		changes, next, wait, err := h.read(pos, s.m, watchPage, pageBytes)
		if err != nil {
			var ce *CompactedError
			if errors.As(err, &ce) && !ce.Reset {
				ce.Lagged = true
			}
			return err
		}
		if len(changes) > 0 || next.rev > pos.rev && time.Since(lastSent) >= progressEvery {
			if err := send(watchBatch{changes: changes, rev: next.rev}); err != nil {
				return err
			}
			lastSent = time.Now()
		}
		pos = next
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.n.ctx.Done():
			return ErrClosed
		}
	}
}

// sendInitial sends the watched keys from one linearizable view, then the
// EventSynced marker, and returns the position right after that view.
func (s *subscription) sendInitial(ctx context.Context, send func(watchBatch) error) (position, error) {
	gen := s.n.hist.generation()
	view, err := s.n.view(ctx, false)
	if err != nil {
		return position{}, err
	}
	pos, err := s.n.hist.viewPosition(view, gen)
	if err != nil {
		return position{}, err
	}
	var page []store.Entry
	size := 0
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		err := send(watchBatch{initial: page, initialPage: true})
		page, size = nil, 0
		return err
	}
	if s.m.exact {
		if e, ok := view.Get(s.prefix); ok {
			page = append(page, e)
		}
	} else {
		view.Range(s.prefix, "", func(e store.Entry) bool {
			if len(page) > 0 && size+entrySize(e) > pageBytes {
				err = flush()
			}
			page = append(page, e)
			size += entrySize(e)
			if len(page) == watchPage {
				err = flush()
			}
			return err == nil
		})
	}
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = send(watchBatch{synced: true, rev: pos.rev})
	}
	return pos, err
}
