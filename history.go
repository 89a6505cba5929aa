package skiff

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/skiffkv/skiff/store"
)

// history is the node's record of recent changes, the source of every
// watch. The state machine appends each applied batch's changes in apply
// order; watchers read it with their own cursor, so publishing never waits
// for a watcher and a slow watcher costs memory only through the shared,
// bounded ring.
//
// The ring holds every change with a revision above floor. It is bounded
// by a count and by bytes; evicting the oldest change raises floor. A
// restart starts the history at the snapshot it loaded (the log replay
// after it is published as usual), and a snapshot installed or restored
// over the state resets it: watchers then end with ErrCompacted, since
// the jump between the two states is not a list of changes.
type history struct {
	mu       sync.RWMutex
	ring     []change // circular; len(ring) is the capacity
	start, n int
	bytes    int64
	maxBytes int64
	floor    uint64        // every change with revision > floor is in the ring
	head     uint64        // revision of the last published batch
	gen      uint64        // incremented by every reset
	notify   chan struct{} // closed and replaced on every publish

	cursors map[*cursor]struct{} // open subscriptions, for Status and metrics
}

// cursor is how far one subscription has read the history, so that its
// lag can be measured (skiff_watch_lag_revisions).
type cursor struct{ rev atomic.Uint64 }

func newHistory(maxEvents int, maxBytes int64) *history {
	return &history{ring: make([]change, max(maxEvents, 1)), maxBytes: maxBytes, notify: make(chan struct{}),
		cursors: map[*cursor]struct{}{}}
}

// publish appends a batch. It runs on the apply goroutine and never
// blocks on watchers.
func (h *history) publish(changes []change, rev uint64, reset bool) {
	h.mu.Lock()
	if reset {
		h.start, h.n, h.bytes = 0, 0, 0
		clear(h.ring)
		h.floor = rev
		h.gen++
	}
	for _, c := range changes {
		h.push(c)
	}
	h.head = max(h.head, rev)
	close(h.notify)
	h.notify = make(chan struct{})
	h.mu.Unlock()
}

func (h *history) push(c change) {
	for h.n > 0 && (h.n == len(h.ring) || h.bytes+changeSize(c) > h.maxBytes) {
		old := h.ring[h.start]
		h.ring[h.start] = change{}
		h.start = (h.start + 1) % len(h.ring)
		h.n--
		h.bytes -= changeSize(old)
		h.floor = max(h.floor, old.kv.ModRevision)
	}
	h.ring[(h.start+h.n)%len(h.ring)] = c
	h.n++
	h.bytes += changeSize(c)
}

func changeSize(c change) int64 {
	return int64(len(c.kv.Key)+len(c.kv.Value)+len(c.prev.Value)) + 64
}

func (h *history) at(i int) *change { return &h.ring[(h.start+i)%len(h.ring)] }

// position is where a reader of the history stands.
type position struct {
	rev uint64 // every change up to rev has been seen
	gen uint64 // the history generation rev belongs to
}

// matcher selects the changes a watch covers.
type matcher struct {
	key   string // exact key, or the subtree prefix ("" for all) with its '/'
	exact bool
}

func (m matcher) match(key string) bool {
	if m.exact {
		return key == m.key
	}
	return strings.HasPrefix(key, m.key)
}

// read returns matching changes after pos and the position after them,
// or, with nothing new, a channel closed on the next publish. A page holds
// at most limit changes and maxBytes of them (changeSize), and at least
// one change: it ends before the revision that would take it past either
// bound. One Raft entry's changes share a revision, and a position cannot
// split them, so they are never split between pages.
func (h *history) read(pos position, m matcher, limit int, maxBytes int64) ([]change, position, <-chan struct{}, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if pos.gen != h.gen {
		return nil, pos, nil, &CompactedError{Revision: pos.rev, Oldest: h.floor + 1, Reset: true}
	}
	if pos.rev < h.floor {
		return nil, pos, nil, &CompactedError{Revision: pos.rev, Oldest: h.floor + 1}
	}
	i := sort.Search(h.n, func(i int) bool { return h.at(i).kv.ModRevision > pos.rev })
	var out []change
	var size int64
	next := pos
	for ; i < h.n; i++ {
		c := h.at(i)
		full := len(out) >= limit || size+changeSize(*c) > maxBytes
		if len(out) > 0 && full && c.kv.ModRevision != next.rev {
			return out, next, nil, nil
		}
		if m.match(c.kv.Key) {
			out = append(out, *c)
			size += changeSize(*c)
		}
		next.rev = c.kv.ModRevision
	}
	next.rev = max(next.rev, h.head)
	if len(out) == 0 && next.rev == pos.rev {
		return nil, pos, h.notify, nil
	}
	return out, next, nil, nil
}

// startAt returns the position for a watch starting after revision rev
// (0: after the newest change), or ErrCompacted if changes after rev are
// no longer held.
func (h *history) startAt(rev uint64, fromNow bool) (position, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if fromNow {
		return position{rev: h.head, gen: h.gen}, nil
	}
	if rev < h.floor {
		return position{}, &CompactedError{Revision: rev, Oldest: h.floor + 1}
	}
	return position{rev: rev, gen: h.gen}, nil
}

// viewPosition returns the position right after the state in view, which
// must have been taken while the history was at generation gen.
func (h *history) viewPosition(view *store.View, gen uint64) (position, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if gen != h.gen {
		return position{}, fmt.Errorf("%w: the state was replaced while it was read", ErrUnavailable)
	}
	// A restored backup's state carries an older revision than the index
	// it was installed at; the history starts at that index.
	return position{rev: max(view.Revision(), h.floor), gen: gen}, nil
}

func (h *history) generation() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.gen
}

// join registers a subscription's cursor, placed at the newest change:
// a watch that has just started is not behind.
func (h *history) join() *cursor {
	c := &cursor{}
	h.mu.Lock()
	c.rev.Store(h.head)
	h.cursors[c] = struct{}{}
	h.mu.Unlock()
	return c
}

func (h *history) leave(c *cursor) {
	h.mu.Lock()
	delete(h.cursors, c)
	h.mu.Unlock()
}

func (h *history) watcherCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.cursors)
}

// historyStats is what metrics report of the history.
type historyStats struct {
	oldest, newest uint64 // the revisions a watch can start after: oldest-1 to newest
	changes        int
	bytes          int64
	watchers       int
	maxLag         uint64 // revisions between newest and the furthest-behind cursor
}

func (h *history) stats() historyStats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := historyStats{oldest: h.floor + 1, newest: h.head, changes: h.n, bytes: h.bytes, watchers: len(h.cursors)}
	for c := range h.cursors {
		if rev := c.rev.Load(); rev < h.head {
			s.maxLag = max(s.maxLag, h.head-rev)
		}
	}
	return s
}

// CompactedError reports that a watch asked for changes the history no
// longer holds. It matches ErrCompacted with errors.Is. To go on, list
// the current state (WithInitialState) and watch from there.
type CompactedError struct {
	Revision uint64 // the watch wanted the changes after this revision
	Oldest   uint64 // the oldest revision the history still holds changes from
	Reset    bool   // the whole state was replaced (snapshot install or restore)
	Lagged   bool   // a running watch fell behind the history; also matches ErrWatchLagged
}

func (e *CompactedError) Error() string {
	if e.Lagged {
		return fmt.Sprintf("%v: %v: delivered up to revision %d, the oldest available is %d", ErrWatchLagged, ErrCompacted, e.Revision, e.Oldest)
	}
	if e.Reset {
		return fmt.Sprintf("%v: the state was replaced after revision %d; changes are available from %d", ErrCompacted, e.Revision, e.Oldest)
	}
	return fmt.Sprintf("%v: changes after revision %d are gone; the oldest available is %d", ErrCompacted, e.Revision, e.Oldest)
}

func (e *CompactedError) Is(target error) bool {
	return target == ErrCompacted || e.Lagged && target == ErrWatchLagged
}
