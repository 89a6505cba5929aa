package skiff

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"
)

// SetWALSegmentSize sets raft-wal's segment size for log stores opened
// from now on and returns a function that restores the previous size.
// Tests that use it must not run in parallel with others.
func SetWALSegmentSize(size int) (restore func()) {
	old := walSegmentSize
	walSegmentSize = size
	return func() { walSegmentSize = old }
}

// ErrorFromStatus converts a gRPC error the way the client does.
func ErrorFromStatus(err error) error { return fromStatus(err) }

// LogEntryData returns the data of the Raft log entry at index idx as
// node n stores it.
func LogEntryData(n *Node, idx uint64) ([]byte, error) {
	var l raft.Log
	if err := n.logs.GetLog(idx, &l); err != nil {
		return nil, err
	}
	return l.Data, nil
}

// LastLog returns the index and term of the last entry in n's log.
func LastLog(n *Node) (index, term uint64) {
	term, _ = strconv.ParseUint(n.raft.Stats()["last_log_term"], 10, 64)
	return n.raft.LastIndex(), term
}

// SetListPageHook calls f after each page a Client's listing receives
// (see testHookListPage) and returns a function that removes it. Tests
// that use it must not run in parallel with others.
func SetListPageHook(f func(page int)) (restore func()) {
	testHookListPage = f
	return func() { testHookListPage = nil }
}

// DropListingPins makes n forget the states it keeps for listings in
// progress, as if they had expired.
func DropListingPins(n *Node) { n.pins.clear() }

// ClientLeader returns the leader address the client would go to first.
func ClientLeader(c *Client) string {
	c.route.mu.Lock()
	defer c.route.mu.Unlock()
	return c.route.leader
}

// LoseLeadershipAfterRemoval makes n's next removal of a member report,
// once the removal has taken effect, that leadership was lost: what Raft
// answers now and then when a leader steps down as the change commits
// (always possible when it removed itself).
func LoseLeadershipAfterRemoval(n *Node) {
	var once sync.Once
	n.leaderAt = func(ctx context.Context) (leader, error) {
		l, err := n.findLeader(ctx)
		if err != nil {
			return nil, err
		}
		return removalThenLost{leader: l, once: &once}, nil
	}
}

type removalThenLost struct {
	leader
	once *sync.Once
}

func (r removalThenLost) removeMember(ctx context.Context, id string) error {
	if err := r.leader.removeMember(ctx, id); err != nil {
		return err
	}
	lost := false
	r.once.Do(func() { lost = true })
	if lost {
		return fmt.Errorf("%w: %w", ErrNotLeader, raft.ErrLeadershipLost)
	}
	return nil
}

// WriteQueue returns how many senders of writes the client runs and how
// many writes wait in its queue, not yet taken into a batch.
func WriteQueue(c *Client) (senders, queued int) {
	b := c.batchers[batchWrites]
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.senders, len(b.queue)
}
