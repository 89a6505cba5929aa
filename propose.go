package skiff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/command"
)

// propose validates a write, then commits it through the leader. It
// retries while no leader is known or the leader changes before the write
// reached its log; a write that may have been appended is never retried
// (ErrIndeterminate).
func (n *Node) propose(ctx context.Context, op command.Op) (res *applyResult, err error) {
	if m := n.meter(); m != nil {
		defer func() { m.write(&op, err) }()
	}
	if n.isClosed() {
		return nil, n.errClosed()
	}
	if err := n.validateOp(op); err != nil {
		return nil, err
	}
	return onLeader(ctx, n, func(ctx context.Context, l leader) (*applyResult, error) { return l.apply(ctx, op) })
}

// applyLocal commits op through this node's Raft, which must lead.
func (n *Node) applyLocal(ctx context.Context, op command.Op) (*applyResult, error) {
	if err := n.checkQuota(op); err != nil {
		return nil, err
	}
	timeout := time.Until(deadline(ctx))
	if timeout <= 0 {
		return nil, ctxError(ctx, "proposing write")
	}
	m := n.meter()
	start := m.start()
	f := n.raft.Apply(command.Encode([]command.Op{op}), timeout)
	done, err := await(ctx, f)
	if !done {
		return nil, fmt.Errorf("%w: %w", ErrIndeterminate, ctxError(ctx, "waiting for commit"))
	}
	if err != nil {
		return nil, raftError(err, !errors.Is(err, raft.ErrEnqueueTimeout))
	}
	m.applied(start)
	res, ok := f.Response().(*entryResult)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unexpected apply response %T", ErrIndeterminate, f.Response())
	case res.err != nil:
		return nil, fmt.Errorf("%w: %w", ErrIndeterminate, res.err)
	case len(res.ops) != 1:
		return nil, fmt.Errorf("%w: %d results for one operation", ErrIndeterminate, len(res.ops))
	case res.ops[0].err != nil:
		return nil, res.ops[0].err
	}
	return &res.ops[0], nil
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(defaultTimeout)
	}
	return d
}

// checkQuota refuses a put that would grow the state beyond QuotaBytes.
// It is checked on the leader against the applied state before proposing,
// so writes already in flight can overshoot the quota by their own size.
func (n *Node) checkQuota(op command.Op) error {
	if op.Kind != command.Put || n.cfg.QuotaBytes <= 0 {
		return nil
	}
	view := n.fsm.store.View()
	grow := int64(len(op.Key) + len(op.Value))
	if view.Bytes()+grow <= n.cfg.QuotaBytes {
		return nil // fits even as a new key
	}
	if cur, ok := view.Get(op.Key); ok {
		grow -= int64(len(cur.Key) + len(cur.Value))
	}
	if grow > 0 && view.Bytes()+grow > n.cfg.QuotaBytes {
		return fmt.Errorf("%w: state is %d bytes, write adds %d, quota %d", ErrQuotaExceeded, view.Bytes(), grow, n.cfg.QuotaBytes)
	}
	return nil
}
