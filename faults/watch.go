package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiffkv/skiff"
)

// WatchSegment is one watch from its start to its end: the revision its
// initial state was read at (Synced; 0 if it ended before the initial
// state was complete), the changes after it, and why it ended.
type WatchSegment struct {
	Synced uint64
	Events []skiff.Event
	Err    error // nil while it runs or when it was closed
}

// WatchLog records a watch over a run. When the watch ends with
// ErrCompacted (the node cannot resume it, a snapshot reset its history),
// or ends in any way while it sends its initial state (the client does
// not resume those, by its contract: "start it again"), the log starts a
// new segment with a fresh watch; any other end is recorded and the log
// stops. It is safe for concurrent use.
type WatchLog struct {
	mu       sync.Mutex
	segments []*WatchSegment
	cond     chan struct{} // closed and replaced on every event
	done     chan struct{}
}

// RecordWatch watches everything below prefix on kv, with its initial
// state, until ctx ends.
func RecordWatch(ctx context.Context, kv skiff.KV, prefix string) *WatchLog {
	l := &WatchLog{cond: make(chan struct{}), done: make(chan struct{})}
	go l.run(ctx, kv, prefix)
	return l
}

func (l *WatchLog) run(ctx context.Context, kv skiff.KV, prefix string) {
	defer close(l.done)
	for ctx.Err() == nil {
		w, err := kv.Watch(ctx, prefix, skiff.WithInitialState())
		if err != nil {
			// No node could start it (none reachable, say): try again.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		seg := &WatchSegment{}
		l.mu.Lock()
		l.segments = append(l.segments, seg)
		l.mu.Unlock()
		synced := false
		for ev := range w.Events() {
			l.mu.Lock()
			switch {
			case ev.Type == skiff.EventSynced:
				seg.Synced, synced = ev.Revision, true
			case synced:
				seg.Events = append(seg.Events, ev)
			}
			close(l.cond)
			l.cond = make(chan struct{})
			l.mu.Unlock()
		}
		err = w.Err()
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		seg.Err = err
		l.mu.Unlock()
		if synced && !errors.Is(err, skiff.ErrCompacted) {
			return
		}
	}
}

// WaitFor waits until the watch has delivered the state at revision rev
// or later (a change, or the initial state of a watch that started over),
// or ctx ends.
func (l *WatchLog) WaitFor(ctx context.Context, rev uint64) error {
	for {
		l.mu.Lock()
		var last uint64
		if n := len(l.segments); n > 0 {
			// A watch that started over has rev in its initial state.
			last = l.segments[n-1].Synced
			if evs := l.segments[n-1].Events; len(evs) > 0 {
				last = evs[len(evs)-1].Revision
			}
		}
		cond := l.cond
		l.mu.Unlock()
		if last >= rev {
			return nil
		}
		select {
		case <-cond:
		case <-l.done:
			return fmt.Errorf("the watch ended before revision %d (last %d)", rev, last)
		case <-ctx.Done():
			return fmt.Errorf("the watch had delivered up to %d, not %d: %w", last, rev, ctx.Err())
		}
	}
}

// Segments returns the segments so far; call it once the watch's context
// has ended and its goroutine has returned (Wait).
func (l *WatchLog) Segments() []*WatchSegment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*WatchSegment(nil), l.segments...)
}

// Wait waits until the watch has stopped.
func (l *WatchLog) Wait() { <-l.done }

// CheckWatch checks a watch against the history of the same run: within a
// segment, changes come in increasing revision order, once each; a change
// to a key the history writes names a value written to that key; a change
// at the revision of an acknowledged write is that write; and no
// acknowledged write between the segment's start and its last change is
// missing. A segment may end only
// with ErrCompacted or when the run closes it, unless it ended while it
// sent its initial state.
func CheckWatch(segs []*WatchSegment, ops []Op) error {
	byRev := map[uint64]Op{}
	written := map[string]string{} // value -> key
	keys := map[string]bool{}      // the keys the history writes
	for _, o := range ops {
		if o.Kind != List && o.Kind != Get {
			keys[o.Key] = true
		}
		if o.Outcome == OK && o.OutRev > 0 {
			byRev[o.OutRev] = o
		}
		if o.Value != "" && o.Outcome != Failed {
			written[o.Value] = o.Key
		}
	}
	for i, s := range segs {
		if s.Synced > 0 && s.Err != nil && !errors.Is(s.Err, skiff.ErrCompacted) {
			return fmt.Errorf("watch segment %d ended with %v, want ErrCompacted or no error", i, s.Err)
		}
		last := s.Synced
		got := map[uint64]bool{}
		for _, ev := range s.Events {
			if ev.Revision <= last {
				return fmt.Errorf("watch segment %d: %s %q at revision %d after revision %d", i, ev.Type, ev.Key, ev.Revision, last)
			}
			last = ev.Revision
			got[ev.Revision] = true
			if err := checkEvent(ev, byRev, written, keys); err != nil {
				return fmt.Errorf("watch segment %d: %w", i, err)
			}
		}
		for rev, w := range byRev {
			if rev > s.Synced && rev <= last && !got[rev] {
				return fmt.Errorf("watch segment %d (revisions %d-%d) misses the acknowledged %s %q=%q at %d",
					i, s.Synced, last, w.Kind, w.Key, w.Value, rev)
			}
		}
	}
	return nil
}

func checkEvent(ev skiff.Event, byRev map[uint64]Op, written map[string]string, keys map[string]bool) error {
	w, acked := byRev[ev.Revision]
	switch {
	case acked && (ev.Type != skiff.EventPut || ev.Key != w.Key || string(ev.Value) != w.Value):
		return fmt.Errorf("%s %q=%q at %d, but the write acknowledged at %d set %q=%q", ev.Type, ev.Key, ev.Value, ev.Revision, ev.Revision, w.Key, w.Value)
	case ev.Type == skiff.EventPut && keys[ev.Key] && written[string(ev.Value)] != ev.Key:
		return fmt.Errorf("put %q=%q at %d: no such write was made", ev.Key, ev.Value, ev.Revision)
	}
	return nil
}
