package skiff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// The client coalesces concurrent Puts, Deletes and Gets into Batch calls:
// a round trip costs far more than the work of one small operation, and
// a node serves a batch of writes with one Raft append and a batch of
// linearizable reads with one read index. A call that finds no batch in
// flight is sent at once, so a lone caller pays no delay; calls arriving
// while batches are in flight wait for the next one.
//
// Each operation keeps its own outcome. A batch of writes that fails after
// it was sent makes every write in it indeterminate, exactly as a single
// write would be; reads are retried on another node.
//
// A batch is bounded by bytes as well as by count: the client chose to put
// these operations together, so the message must never grow too large
// because of that choice (100 concurrent Puts of 1 MiB are 100 MiB, past
// every node's message limit). A batch holds at most maxBatchSize
// operations and batchBytes of keys and values, but always its first
// operation, so an operation goes alone if it must. A node answers the
// Gets of a batch up to a byte budget of its own and marks the others
// NOT_RUN (errNotRun); those go again in a later batch.

const (
	maxBatchSenders = 4   // batches in flight per kind of operation
	maxBatchSize    = 128 // operations per batch
)

// batchBytes is the byte budget of a batch: pageBytes, or half the
// message limit when the client was given a smaller one.
func (b *batcher) batchBytes() int { return min(pageBytes, b.c.opts.maxMsg/2) }

// opSize is what an operation adds to a batch request, near enough.
func opSize(op *skiffpb.Op) int {
	switch o := op.Op.(type) {
	case *skiffpb.Op_Put:
		return len(o.Put.GetKey()) + len(o.Put.GetValue()) + entryOverhead
	case *skiffpb.Op_Delete:
		return len(o.Delete.GetKey()) + entryOverhead
	case *skiffpb.Op_Get:
		return len(o.Get.GetKey()) + entryOverhead
	}
	return entryOverhead
}

type batchKind int

const (
	batchWrites batchKind = iota // to the leader; never resent once sent
	batchReads                   // linearizable, to the leader first
	batchStale                   // to any node
)

type batcher struct {
	c       *Client
	kind    batchKind
	mu      sync.Mutex
	queue   []*batchCall
	senders int
}

// batchCall states.
const (
	callQueued int32 = iota
	callTaken
	callAbandoned
)

type batchCall struct {
	ctx   context.Context
	op    *skiffpb.Op
	state atomic.Int32
	res   *skiffpb.OpResult
	err   error
	done  chan struct{}
	// last is the error of an earlier attempt that proved the call took
	// no effect; pause spaces out the attempts that follow it.
	last  error
	pause *backoff
}

// do runs op in a batch and returns its result, or the error that ended
// it. ctx must have a deadline.
func (b *batcher) do(ctx context.Context, op *skiffpb.Op) (*skiffpb.OpResult, error) {
	call := &batchCall{ctx: ctx, op: op, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, call)
	start := b.senders < maxBatchSenders
	if start {
		b.senders++
	}
	b.mu.Unlock()
	if start {
		// A caller that finds itself alone sends its call itself, saving
		// a goroutine handoff; a batch with other callers in it goes to a
		// goroutine, since their deadlines may be later than this one's.
		batch := b.take()
		if len(batch) == 1 && batch[0] == call {
			b.run(batch)
			batch = nil
		}
		if batch != nil || !b.idle() {
			go b.send(batch)
		}
	}
	select {
	case <-call.done:
		return call.res, call.err
	case <-ctx.Done():
		if call.state.CompareAndSwap(callQueued, callAbandoned) {
			if call.last != nil { // sent before, and proved not applied
				return nil, fmt.Errorf("%w (last error: %w)", ctxError(ctx, "waiting for a leader"), call.last)
			}
			return nil, ctxError(ctx, "waiting to be sent") // never sent
		}
		if b.kind == batchWrites {
			return nil, fmt.Errorf("%w: %w", ErrIndeterminate, ctxError(ctx, "waiting for the write"))
		}
		return nil, ctxError(ctx, "waiting for the read")
	}
}

// send runs batch, if any, then sends batches until the queue is empty,
// and gives up its sender slot.
func (b *batcher) send(batch []*batchCall) {
	for {
		if len(batch) > 0 {
			b.run(batch)
		}
		if batch = b.take(); len(batch) == 0 && b.idle() {
			return
		}
	}
}

// take removes the next batch from the queue, in order, skipping calls
// whose callers gave up: up to maxBatchSize calls and batchBytes, but at
// least one call.
func (b *batcher) take() []*batchCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*batchCall
	size, full, budget := 0, false, b.batchBytes()
	rest := b.queue[:0]
	for _, call := range b.queue {
		if !full {
			n := opSize(call.op)
			full = len(batch) == maxBatchSize || len(batch) > 0 && size+n > budget
			if !full {
				if call.state.CompareAndSwap(callQueued, callTaken) {
					batch = append(batch, call)
					size += n
				}
				continue
			}
		}
		rest = append(rest, call)
	}
	clear(b.queue[len(rest):])
	b.queue = rest
	return batch
}

// idle gives up a sender slot if no call is queued, and reports whether
// it did.
func (b *batcher) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) > 0 {
		return false
	}
	b.senders--
	return true
}

// run sends one batch and hands out the results. Each attempt sends only
// the calls whose callers still wait: a caller who gave up was told that
// a write's outcome is unknown, and may read the key to settle it, so the
// write must not go out after that.
func (b *batcher) run(batch []*batchCall) {
	var last time.Time
	for _, call := range batch {
		last = later(last, deadline(call.ctx))
	}
	ctx, cancel := context.WithDeadline(context.Background(), last)
	defer cancel()
	var resp *skiffpb.BatchResponse
	var from string       // the node that answered
	var sent []*batchCall // the calls of the last attempt, in resp's order
	err := b.c.attempts(ctx, b.kind != batchStale, false, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		if sent = waiting(batch); len(sent) == 0 {
			return false, context.Canceled // every caller gave up
		}
		req := &skiffpb.BatchRequest{Ops: make([]*skiffpb.Op, len(sent))}
		for i, call := range sent {
			req.Ops[i] = call.op
		}
		var err error
		from = addr
		resp, err = b.attempt(ctx, cc, req)
		return err != nil && ctx.Err() == nil && b.retry(err), err
	})
	var again []*batchCall
	j := 0 // sent is batch without the calls of callers who gave up
	for _, call := range batch {
		i := -1
		if j < len(sent) && sent[j] == call {
			i, j = j, j+1
		}
		switch {
		case err != nil:
			call.err = err
		case i < 0:
			call.err = context.Canceled // its caller gave up; never sent
		case i < len(resp.Results) && notRun(resp.Results[i]):
			again = append(again, call)
			continue
		case i < len(resp.Results) && b.resend(call, from, resp.Results[i]):
			continue
		case i < len(resp.Results):
			call.res = resp.Results[i]
		default:
			call.err = fmt.Errorf("%w: batch answer has %d results for %d operations", ErrUnavailable, len(resp.Results), len(sent))
		}
		close(call.done)
	}
	b.requeue(again)
}

// waiting returns the calls of batch whose callers still wait.
func waiting(batch []*batchCall) []*batchCall {
	out := make([]*batchCall, 0, len(batch))
	for _, call := range batch {
		if call.ctx.Err() == nil {
			out = append(out, call)
		}
	}
	return out
}

// resend sends a call again, after a pause, when its result proves it
// took no effect for want of a leader (notApplied): the node it reached
// knew none within its patience and answered at once, so that the call
// can go elsewhere. The pause grows for each resend of the same call; the
// call ends when its caller's context does.
func (b *batcher) resend(call *batchCall, from string, res *skiffpb.OpResult) bool {
	oe := res.GetError()
	if oe == nil {
		return false
	}
	err := fromOpError(oe)
	if !notApplied(err) || call.ctx.Err() != nil {
		return false
	}
	b.c.learn(from, err)
	call.last = err
	if call.pause == nil {
		call.pause = newBackoff(20*time.Millisecond, 500*time.Millisecond)
	}
	// Queued again from now on, so that a caller who gives up during the
	// pause gets its call back as not sent (do); one who gave up is not
	// sent again (take skips it).
	call.state.Store(callQueued)
	go func() {
		if call.pause.wait(call.ctx, nil) == nil && call.state.Load() == callQueued {
			b.mu.Lock()
			b.queue = append([]*batchCall{call}, b.queue...)
			b.mu.Unlock()
			b.wake()
		}
	}()
	return true
}

// wake starts a sender if none is running and calls are queued: calls
// resent after a pause may find every sender gone.
func (b *batcher) wake() {
	b.mu.Lock()
	start := b.senders < maxBatchSenders && len(b.queue) > 0
	if start {
		b.senders++
	}
	b.mu.Unlock()
	if start {
		go b.send(nil)
	}
}

// notRun reports a Get the node did not run (errNotRun).
func notRun(res *skiffpb.OpResult) bool {
	oe := res.GetError()
	return oe != nil && errors.Is(fromOpError(oe), errNotRun)
}

// requeue puts calls a node did not run back at the head of the queue, in
// their order, for the next batch. A node runs at least the first Get of
// a batch, so each batch makes progress. The senders see the queue is not
// empty before they give up their slot (idle), so the calls go out.
func (b *batcher) requeue(calls []*batchCall) {
	if len(calls) == 0 {
		return
	}
	for _, call := range calls {
		call.state.Store(callQueued)
	}
	b.mu.Lock()
	b.queue = append(calls, b.queue...)
	b.mu.Unlock()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// attempt sends the batch to one node. For reads, an answer whose reads
// all failed for want of a leader counts as a failed attempt, so the
// batch moves to another node.
func (b *batcher) attempt(ctx context.Context, cc *grpc.ClientConn, req *skiffpb.BatchRequest) (*skiffpb.BatchResponse, error) {
	resp, err := skiffpb.NewKVClient(cc).Batch(ctx, req)
	if err == nil && b.kind != batchStale {
		b.c.setLeader(resp.Leader) // go straight to it next time
	}
	if err != nil {
		err = fromStatus(err)
		if b.kind == batchWrites && !neverSent(err) {
			return nil, sentError(ctx, err)
		}
		return nil, err
	}
	if b.kind != batchWrites && len(resp.Results) > 0 {
		if oe := resp.Results[0].GetError(); oe != nil {
			if err := fromOpError(oe); notApplied(err) || errors.Is(err, ErrTimeout) {
				return nil, err
			}
		}
	}
	return resp, nil
}

// retry says whether a failed attempt may go to another node.
func (b *batcher) retry(err error) bool {
	if b.kind == batchWrites {
		return neverSent(err) || (errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)) && !errors.Is(err, ErrIndeterminate)
	}
	return notApplied(err) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed)
}

// batchOp runs one operation through the right batcher and returns its
// result, with a failure of the operation itself as an error.
func (c *Client) batchOp(ctx context.Context, kind batchKind, op *skiffpb.Op) (*skiffpb.OpResult, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	res, err := c.batchers[kind].do(ctx, op)
	if err != nil {
		return nil, err
	}
	if oe := res.GetError(); oe != nil {
		err := fromOpError(oe)
		if hint := leaderHint(err); hint != "" {
			c.setLeader(hint)
		}
		return nil, err
	}
	return res, nil
}
