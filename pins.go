package skiff

import (
	"fmt"
	"sync"
	"time"

	"github.com/skiffkv/skiff/store"
)

// A listing over the network comes in pages, and each page is a separate
// request; yet a listing must show one state, as Node.List does. So a node
// keeps (pins) the view behind every page that ends with more, keyed by
// its revision, and a continuation naming that revision reads the same
// view again. Views are immutable and share their unchanged parts with the
// live state (copy-on-write), so a pin costs only what is rewritten while
// it is held.
//
// Pins are bounded in time and number, because a client may go away in
// the middle of a listing and never say so: a pin is dropped pinTTL after
// its last use, and past maxPins the least recently used one goes. A
// continuation whose view is gone fails with ErrCompacted, and the
// listing starts again from its first page (the Client does so itself).
const (
	pinTTL  = 60 * time.Second
	maxPins = 64
)

// viewPins is a node's table of pinned views. All methods are safe for
// concurrent use.
type viewPins struct {
	mu    sync.Mutex
	pins  map[uint64]*pinnedView // by revision
	timer *time.Timer            // drops expired pins while no listing runs
	now   func() time.Time       // replaced in tests
}

type pinnedView struct {
	view *store.View
	gen  uint64 // the history generation the view was read in
	used time.Time
}

func newViewPins() *viewPins {
	return &viewPins{pins: map[uint64]*pinnedView{}, now: time.Now}
}

// pin keeps view for continuations, or refreshes its pin. gen is the
// history generation read before the view was: a snapshot install or a
// restore starts a new generation, whose states may carry revisions that
// an older state had too, so a pin answers only in its own generation.
func (p *viewPins) pin(view *store.View, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.sweep(now)
	rev := view.Revision()
	if old, ok := p.pins[rev]; ok && old.gen == gen {
		old.used = now
		return
	}
	if _, ok := p.pins[rev]; !ok && len(p.pins) >= maxPins {
		p.evictOldest()
	}
	p.pins[rev] = &pinnedView{view: view, gen: gen, used: now}
	p.schedule(now)
}

// get returns the view pinned at rev in generation gen, and counts as a
// use of it.
func (p *viewPins) get(rev, gen uint64) (*store.View, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.sweep(now)
	pv, ok := p.pins[rev]
	if !ok || pv.gen != gen {
		return nil, fmt.Errorf("%w: this node no longer holds the state at revision %d that the listing was reading "+
			"(a state is kept %v after its last page, for %d listings at most); start the listing again",
			ErrCompacted, rev, pinTTL, maxPins)
	}
	pv.used = now
	return pv.view, nil
}

// sweep drops the pins unused for pinTTL.
func (p *viewPins) sweep(now time.Time) {
	for rev, pv := range p.pins {
		if now.Sub(pv.used) >= pinTTL {
			delete(p.pins, rev)
		}
	}
}

func (p *viewPins) evictOldest() {
	var oldest uint64
	var at time.Time
	for rev, pv := range p.pins {
		if at.IsZero() || pv.used.Before(at) {
			oldest, at = rev, pv.used
		}
	}
	delete(p.pins, oldest)
}

// schedule arms the timer for the next expiry, so that the views of
// listings abandoned half way are released even if no request comes.
func (p *viewPins) schedule(now time.Time) {
	if len(p.pins) == 0 {
		return
	}
	var next time.Time
	for _, pv := range p.pins {
		if next.IsZero() || pv.used.Before(next) {
			next = pv.used
		}
	}
	wait := next.Add(pinTTL).Sub(now)
	if p.timer == nil {
		p.timer = time.AfterFunc(wait, p.expire)
		return
	}
	p.timer.Reset(wait)
}

func (p *viewPins) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.sweep(now)
	p.schedule(now)
}

// clear drops every pin; the node is closing.
func (p *viewPins) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.pins)
	if p.timer != nil {
		p.timer.Stop()
	}
}
