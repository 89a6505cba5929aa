package skiff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// One retry policy serves every caller that retries: a node waiting for a
// leader, a node forwarding to one, the network client moving between
// nodes, a node joining. Its parts:
//
//   - what may be retried: notApplied, the one rule for errors that prove
//     an operation took no effect;
//   - how long each attempt may take: as long as the node behind it keeps
//     answering a health check every election timeout (watchNode), so that
//     a leader that froze or vanished costs about two election timeouts,
//     not the caller's whole deadline, while a busy leader is left to
//     finish;
//   - how long to pause between attempts: capped exponential backoff with
//     jitter (backoff), so that many callers retrying after one failure do
//     not come back in step.

// notApplied reports whether err proves that the operation took no
// effect, so that it may be sent again, anywhere: no leader was known, a
// node answered that it does not lead (and so did not apply it), the
// connection was never made, or a node refused it because it was closing.
// An operation that failed in any other way after it was sent is
// ErrIndeterminate, never this.
func notApplied(err error) bool {
	if err == nil || errors.Is(err, ErrIndeterminate) {
		return false
	}
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) ||
		errors.Is(err, ErrUnavailable) || (errors.Is(err, ErrClosed) && isRemote(err))
}

// neverSent reports whether a gRPC call failed while connecting, before
// any request could be written: gRPC fails such calls with the dial error.
// A connection that breaks after the request left fails differently
// ("error reading from server", "transport is closing").
func neverSent(err error) bool {
	var re *remoteError
	if !errors.As(err, &re) || len(re.errs) != 1 || re.errs[0] != ErrUnavailable {
		return false
	}
	return strings.Contains(re.msg, "Error while dialing") || strings.Contains(re.msg, "connection refused")
}

// sentError classifies the failure of a write that was sent: an answer
// from a node stands (its ErrNotLeader means it did not apply the write);
// a connection that could not be made means the request never left; and
// anything else leaves the outcome unknown.
func sentError(ctx context.Context, err error) error {
	if isSkiffError(err) && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) {
		return err
	}
	if neverSent(err) {
		return err
	}
	if unresponsive(ctx) {
		return fmt.Errorf("%w: %w", ErrIndeterminate, errUnresponsive)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrIndeterminate, ctxError(ctx, "waiting for the leader"))
	}
	return fmt.Errorf("%w: %w", ErrIndeterminate, err)
}

// minProbe is the least time between a node's health checks during an
// attempt, and the least it has to answer one, whatever the election
// timeout: a round trip on a loaded machine.
const minProbe = 500 * time.Millisecond

// probeEvery is how often a node is checked during an attempt (see
// watchNode): every election timeout.
func probeEvery(election time.Duration) time.Duration { return max(election, minProbe) }

// backoff is a capped exponential backoff with jitter: each pause is
// drawn between half and all of the current step, and the step doubles
// up to max.
type backoff struct {
	step, max time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{step: base, max: max} }

// wait pauses before the next attempt. It returns ctx's error if ctx ends
// first, and errStopped if stop is closed first.
func (b *backoff) wait(ctx context.Context, stop <-chan struct{}) error {
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(2*b.step, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return errStopped
	}
}

var errStopped = errors.New("stopped")
