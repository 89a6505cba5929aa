package skiff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	skiffpb "github.com/skiffkv/skiff/proto"
)

// propose validates a write, then commits it through the leader: locally
// when this node leads, forwarded otherwise. It retries while no leader
// is known or the leader changes before the write reached its log; a
// write that may have been appended is never retried (ErrIndeterminate).
func (n *Node) propose(ctx context.Context, cmd *skiffpb.Command) (*applyResult, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	if err := n.validateCommand(cmd); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return retry(ctx, n, func(ctx context.Context) (*applyResult, error) {
		if n.raft.State() == raft.Leader {
			return n.applyLocal(ctx, cmd)
		}
		return n.forwardWrite(ctx, cmd)
	})
}

// validateCommand rejects anything that must not reach the log.
func (n *Node) validateCommand(cmd *skiffpb.Command) error {
	var key string
	var cond *skiffpb.Condition
	switch op := cmd.GetOp().(type) {
	case *skiffpb.Command_Put:
		key, cond = op.Put.GetKey(), op.Put.GetCondition()
		if len(op.Put.GetValue()) > n.cfg.MaxValueSize {
			return fmt.Errorf("%w: %d bytes for %q, limit %d", ErrValueTooLarge, len(op.Put.GetValue()), truncKey(key), n.cfg.MaxValueSize)
		}
	case *skiffpb.Command_Delete:
		key, cond = op.Delete.GetKey(), op.Delete.GetCondition()
	default:
		return fmt.Errorf("%w: command has no operation", ErrInvalidArgument)
	}
	if err := validateKey(key, n.cfg.MaxKeySize); err != nil {
		return err
	}
	switch cond.GetKind() {
	case skiffpb.Condition_NONE, skiffpb.Condition_ABSENT:
	case skiffpb.Condition_MOD_REVISION:
		if cond.GetModRevision() == 0 {
			return fmt.Errorf("%w: revision 0 in a compare (use Create for absent keys)", ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("%w: unknown condition %d", ErrInvalidArgument, cond.GetKind())
	}
	return nil
}

func truncKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}

// applyLocal commits cmd through this node's Raft, which must lead.
func (n *Node) applyLocal(ctx context.Context, cmd *skiffpb.Command) (*applyResult, error) {
	if err := n.checkQuota(cmd); err != nil {
		return nil, err
	}
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	timeout := time.Until(deadline(ctx))
	if timeout <= 0 {
		return nil, ctxError(ctx, "proposing write")
	}
	f := n.raft.Apply(data, timeout)
	done, err := await(ctx, f)
	if !done {
		return nil, fmt.Errorf("%w: %w", ErrIndeterminate, ctxError(ctx, "waiting for commit"))
	}
	if err != nil {
		return nil, raftError(err, !errors.Is(err, raft.ErrEnqueueTimeout))
	}
	res, ok := f.Response().(*applyResult)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected apply response %T", ErrIndeterminate, f.Response())
	}
	if res.err != nil {
		return nil, res.err
	}
	return res, nil
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
func (n *Node) checkQuota(cmd *skiffpb.Command) error {
	put := cmd.GetPut()
	if put == nil || n.cfg.QuotaBytes <= 0 {
		return nil
	}
	view := n.fsm.store.View()
	grow := int64(len(put.Key) + len(put.Value))
	if view.Bytes()+grow <= n.cfg.QuotaBytes {
		return nil // fits even as a new key
	}
	if cur, ok := view.Get(put.Key); ok {
		grow -= int64(len(cur.Key) + len(cur.Value))
	}
	if grow > 0 && view.Bytes()+grow > n.cfg.QuotaBytes {
		return fmt.Errorf("%w: state is %d bytes, write adds %d, quota %d", ErrQuotaExceeded, view.Bytes(), grow, n.cfg.QuotaBytes)
	}
	return nil
}

// retryable errors are those where the operation certainly did not take
// effect and another attempt may reach a leader.
func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) ||
		(errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrIndeterminate))
}

// retry calls op until it succeeds, fails for good, the node closes or ctx
// ends. Between attempts it backs off from 5ms to 250ms; leader elections
// take about an election timeout.
func retry[T any](ctx context.Context, n *Node, op func(context.Context) (T, error)) (T, error) {
	backoff := 5 * time.Millisecond
	for {
		v, err := op(ctx)
		if err == nil || !retryable(err) {
			return v, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return v, ErrClosed
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%w: %w (last error: %v)", ErrNoLeader, ctxError(ctx, "waiting for a leader"), err)
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}
