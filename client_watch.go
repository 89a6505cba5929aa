package skiff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	skiffpb "github.com/skiffkv/skiff/proto"
)

// Watch streams the changes below prefix (or to one key, with WatchKey)
// from any node, as Node.Watch does. When the node fails, the watch
// continues on another node from the last revision it delivered, so the
// caller sees no gap and no repeat; it ends when ctx ends, on Close, or
// with an error that resuming cannot fix (ErrCompacted, an invalid
// prefix, or ErrTooManyWatches from every node it tried in a round). A
// failure while the initial state is being sent ends the watch too: start
// it again.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) (*Watcher, error) {
	o := collectWatchOptions(opts)
	if o.exactKey {
		if err := validateKey(prefix, DefaultMaxKeySize); err != nil {
			return nil, err
		}
	} else if _, err := normalizePrefix(prefix, DefaultMaxKeySize); err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	w, wctx := newWatcher(ctx, o)
	cw := &clientWatch{c: c, w: w, prefix: prefix, o: o}
	first := make(chan error, 1)
	go func() {
		err := cw.run(wctx, first)
		if wctx.Err() != nil && !errors.Is(err, ErrCompacted) {
			err = ctx.Err()
		}
		w.finish(err)
	}()
	// Report errors known at the start (compacted, invalid) from Watch.
	if err := <-first; err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

type clientWatch struct {
	c      *Client
	w      *Watcher
	prefix string
	o      watchOptions
	synced bool // the initial state, if asked for, is complete
	rev    uint64
	resume bool // rev is the position to resume from
}

// run keeps a stream open on some node until the watch ends. first gets
// the outcome of the first stream's opening, once.
func (cw *clientWatch) run(ctx context.Context, first chan<- error) error {
	cw.rev, cw.resume = cw.o.after, cw.o.fromRev
	cw.synced = !cw.o.initial
	pause := 50 * time.Millisecond
	started := false // first has been answered
	end := func(err error) error {
		if !started {
			first <- err
		}
		return err
	}
	for {
		// A node at its MaxWatches refuses; another may have room, but if
		// every node refuses, waiting would hide the refusal.
		var refused, tried int
		var last error
		for _, addr := range cw.c.candidates(false) {
			opened := false
			err := cw.stream(ctx, addr, func() {
				opened = true
				if !started {
					started = true
					first <- nil
				}
			})
			if ctx.Err() != nil {
				return end(ctx.Err())
			}
			if final(err) || opened && !cw.synced {
				return end(err)
			}
			if opened {
				pause = 50 * time.Millisecond
			}
			tried, last = tried+1, err
			if errors.Is(err, ErrTooManyWatches) {
				refused++
			}
		}
		if tried > 0 && refused == tried {
			return end(last)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			end(fmt.Errorf("%w: %w", ErrUnavailable, ctxError(ctx, "opening a watch")))
			return ctx.Err()
		}
		pause = min(2*pause, time.Second)
	}
}

// final reports errors that another node would answer the same way.
func final(err error) bool {
	return errors.Is(err, ErrCompacted) || errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrKeyTooLarge) ||
		errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrClosed) && !isRemote(err)
}

func isRemote(err error) bool {
	var re *remoteError
	return errors.As(err, &re)
}

// stream runs one stream on addr until it fails. opened is called once the
// node has accepted the watch (its first message).
func (cw *clientWatch) stream(ctx context.Context, addr string, opened func()) error {
	cc, err := cw.c.conn(addr)
	if err != nil {
		return err
	}
	if !ready(ctx, cc) {
		return unreachable(ctx, addr, cc)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &skiffpb.WatchRequest{Prefix: cw.prefix, Exact: cw.o.exactKey, PrevValue: cw.o.prev,
		InitialState: !cw.synced, AfterRevision: cw.rev, FromRevision: cw.resume}
	st, err := skiffpb.NewKVClient(cc).Watch(sctx, req)
	if err != nil {
		return fromStatus(err)
	}
	// A node sends nothing until something happens; the watch counts as
	// open once the stream's header arrives.
	if md, err := st.Header(); err != nil || md == nil {
		// Without headers the stream ended at once; Recv has the status.
		if _, err = st.Recv(); err == nil || err == io.EOF {
			err = fmt.Errorf("%w: %s ended the watch", ErrUnavailable, addr)
		}
		return fromStatus(err)
	}
	opened()
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return fmt.Errorf("%w: %s ended the watch", ErrUnavailable, addr)
		}
		if err != nil {
			return fromStatus(err)
		}
		if err := cw.deliver(ctx, resp); err != nil {
			return err
		}
	}
}

func (cw *clientWatch) deliver(ctx context.Context, resp *skiffpb.WatchResponse) error {
	rev := func(i int) uint64 { return resp.Events[i].Kv.GetModRevision() }
	for i, ev := range resp.Events {
		e := Event{Type: EventPut, Key: ev.Kv.GetKey(), Value: cloneValue(ev.Kv.GetValue()), Revision: ev.Kv.GetModRevision(),
			CreateRevision: ev.Kv.GetCreateRevision(), Version: ev.Kv.GetVersion()}
		if ev.Type == skiffpb.Event_DELETE {
			e = Event{Type: EventDelete, Key: ev.Kv.GetKey(), Revision: ev.Kv.GetModRevision()}
		}
		if ev.Prev != nil {
			e.Prev = kvFromPB(ev.Prev)
		}
		if cw.synced && e.Revision <= cw.rev && cw.resume {
			continue // already delivered before a reconnect
		}
		after := cw.w.Revision()
		if cw.synced && resp.Revision > 0 {
			after = upTo(rev, len(resp.Events), i, resp.Revision)
		}
		if err := cw.w.offer(ctx, e, after); err != nil {
			return err
		}
	}
	if resp.InitialDone {
		if err := cw.w.offer(ctx, Event{Type: EventSynced, Revision: resp.Revision}, resp.Revision); err != nil {
			return err
		}
		cw.synced = true
	}
	if cw.synced && resp.Revision > 0 {
		cw.rev, cw.resume = max(cw.rev, resp.Revision), true
		cw.w.received(cw.rev)
	}
	return nil
}
