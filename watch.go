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
	// deliver, when set, hands each event to the caller instead of the
	// Watcher's channel (Typed.Watch decodes on the way).
	deliver func(ctx context.Context, ev Event) error
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
	events  chan Event
	deliver func(ctx context.Context, ev Event) error // see watchOptions.deliver
	cancel  context.CancelFunc
	done    chan struct{}
	rev     atomic.Uint64 // every change up to it has been handed to the caller

	mu     sync.Mutex
	err    error
	closed bool
}

// newWatcher returns a Watcher whose events go to its channel, or to
// o.deliver. The channel has no buffer: an event counts as received
// (Revision) only once the caller has taken it, and changes not yet taken
// wait in the node's shared history, not in the Watcher.
func newWatcher(ctx context.Context, o watchOptions) (*Watcher, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &Watcher{events: make(chan Event), deliver: o.deliver, cancel: cancel, done: make(chan struct{})}, ctx
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

// Revision returns the revision up to which the caller has received every
// change. Once the watch has ended (after Close, or once Events is
// closed) it counts exactly the events the caller took: WatchFrom(
// Revision()), on this node or another, resumes the watch without a gap
// or a repeat. While the watch runs it also counts the one event Events
// is offering at that moment, if any. Before the initial state is
// complete (WithInitialState) it stays where the watch started.
func (w *Watcher) Revision() uint64 { return w.rev.Load() }

// received records that the caller has every change up to rev.
func (w *Watcher) received(rev uint64) {
	if rev > w.rev.Load() {
		w.rev.Store(rev) // one goroutine delivers, so no other writer races
	}
}

// offer hands ev to the caller, counting it in Revision as up to after
// from the moment it is offered (so that a caller who took it and then
// asks finds it counted), and withdrawing that count if the watch ends
// before the caller took it.
func (w *Watcher) offer(ctx context.Context, ev Event, after uint64) error {
	before := w.rev.Load()
	w.received(after)
	if err := w.send(ctx, ev); err != nil {
		w.rev.Store(before)
		return err
	}
	return nil
}

// upTo is what Revision may say once the i-th of changes has been handed
// over, revs[i] being each change's revision and end the batch's revision:
// the changes of one revision are handed over together or not at all.
func upTo(revs func(i int) uint64, n, i int, end uint64) uint64 {
	switch {
	case i == n-1:
		return end
	case revs(i+1) > revs(i):
		return revs(i)
	}
	return revs(i) - 1
}

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
	if w.deliver != nil {
		return w.deliver(ctx, ev)
	}
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
	w, wctx := newWatcher(ctx, o)
	go func() {
		err := sub.run(wctx, func(b watchBatch) error { return w.handOver(wctx, b, o.prev) })
		if wctx.Err() != nil && !errors.Is(err, ErrClosed) {
			err = ctx.Err()
		}
		w.finish(err)
	}()
	return w, nil
}

// handOver turns a batch into events, copying values out of the store,
// and hands them to the caller one by one, moving Revision as it goes.
func (w *Watcher) handOver(ctx context.Context, b watchBatch, prev bool) error {
	for _, e := range b.initial {
		if err := w.send(ctx, Event{Type: EventPut, Key: e.Key, Value: cloneValue(e.Value), Revision: e.ModRevision,
			CreateRevision: e.CreateRevision, Version: e.Version}); err != nil {
			return err
		}
	}
	if b.synced {
		if err := w.offer(ctx, Event{Type: EventSynced, Revision: b.rev}, b.rev); err != nil {
			return err
		}
	}
	rev := func(i int) uint64 { return b.changes[i].kv.ModRevision }
	for i, c := range b.changes {
		if err := w.offer(ctx, changeEvent(c, prev), upTo(rev, len(b.changes), i, b.rev)); err != nil {
			return err
		}
	}
	if !b.initialPage {
		w.received(b.rev)
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
	cur := h.join()
	defer h.leave(cur)
	pos := s.start
	if s.o.initial {
		var err error
		if pos, err = s.sendInitial(ctx, send); err != nil {
			return err
		}
	}
	p := progress{sent: pos.rev, at: time.Now()}
	for {
		cur.rev.Store(pos.rev)
		changes, next, wait, err := h.read(pos, s.m, watchPage, pageBytes)
		if err != nil {
			var ce *CompactedError
			if errors.As(err, &ce) && !ce.Reset {
				ce.Lagged = true
				s.n.meter().lagged()
			}
			return err
		}
		pos = next
		if len(changes) > 0 || p.due(pos.rev) {
			if err := send(watchBatch{changes: changes, rev: pos.rev}); err != nil {
				return err
			}
			p = progress{sent: pos.rev, at: time.Now()}
		}
		if wait == nil {
			continue
		}
		timer, stop := p.timer(pos.rev)
		select {
		case <-wait:
		case <-timer:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-s.n.ctx.Done():
			stop()
			return s.n.errClosed()
		}
		stop()
	}
}

// progress is what a watch has reported: the revision it last sent and
// when. A watch whose position moved past it without a matching change
// reports the new position once progressEvery has passed since it last
// sent anything, even when nothing else happens meanwhile.
type progress struct {
	sent uint64
	at   time.Time
}

func (p progress) due(rev uint64) bool {
	return rev > p.sent && time.Since(p.at) >= progressEvery
}

// timer returns a channel that fires when progress up to rev becomes due,
// or nil when there is nothing to report; stop releases it.
func (p progress) timer(rev uint64) (<-chan time.Time, func() bool) {
	if rev <= p.sent {
		return nil, func() bool { return false }
	}
	t := time.NewTimer(max(0, progressEvery-time.Since(p.at)))
	return t.C, t.Stop
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
