package skiff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// The client's side of the door to the leader: which node a call goes to,
// how long one attempt may take, and when it moves on. It follows the
// retry policy of retry.go: an attempt gets a budget derived from the
// cluster's election timeout, never the caller's whole deadline, so that a
// leader that froze or was cut off costs one budget; a node that failed
// an attempt is tried last for a while (it is suspect); and the leader is
// learned from what the cluster says, not from the old leader alone.

// route is what a Client knows about where to send calls.
type route struct {
	mu       sync.Mutex
	leader   string               // address of the last known leader, "" if unknown
	members  []string             // client addresses of the members, learned from the cluster
	next     int                  // round-robin start for calls that need no leader
	suspects map[string]time.Time // nodes that failed an attempt, tried last until then
	election time.Duration        // the cluster's election timeout, from Status
}

// defaultElection is the election timeout assumed before a node says.
const defaultElection = time.Second

func (r *route) electionTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.election <= 0 {
		return defaultElection
	}
	return r.election
}

// candidates returns the addresses to try, in order: the leader first when
// wanted and known, then the others starting at a rotating position, and
// suspect nodes last.
func (c *Client) candidates(preferLeader bool) []string {
	r := &c.route
	r.mu.Lock()
	defer r.mu.Unlock()
	var good, bad []string
	seen := map[string]bool{}
	add := func(a string) {
		if a == "" || seen[a] {
			return
		}
		seen[a] = true
		if until, ok := r.suspects[a]; ok && time.Now().Before(until) {
			bad = append(bad, a)
		} else {
			good = append(good, a)
		}
	}
	if preferLeader {
		add(r.leader)
	}
	r.next++
	for i := range c.seeds {
		add(c.seeds[(r.next+i)%len(c.seeds)])
	}
	for i := range r.members {
		add(r.members[(r.next+i)%len(r.members)])
	}
	add(r.leader)
	return append(good, bad...)
}

// learnMembers makes the members' client addresses places to go, besides
// the addresses the client was dialed with: a client given one address
// must not be lost when that node is.
func (c *Client) learnMembers(ms []Member) {
	var addrs []string
	for _, m := range ms {
		if m.ClientAddress != "" {
			addrs = append(addrs, m.ClientAddress)
		}
	}
	c.route.mu.Lock()
	c.route.members = addrs
	c.route.mu.Unlock()
}

func (c *Client) setLeader(addr string) {
	if addr == "" {
		return
	}
	c.route.mu.Lock()
	c.route.leader = addr
	c.route.mu.Unlock()
}

func (c *Client) forgetLeader(addr string) {
	c.route.mu.Lock()
	if c.route.leader == addr {
		c.route.leader = ""
	}
	c.route.mu.Unlock()
}

// suspect makes addr a node to try last, for two election timeouts.
func (c *Client) suspect(addr string) {
	r := &c.route
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.suspects == nil {
		r.suspects = map[string]time.Time{}
	}
	r.suspects[addr] = time.Now().Add(2 * max(r.election, defaultElection))
	if r.leader == addr {
		r.leader = ""
	}
}

// trusted clears addr's suspicion after it answered.
func (c *Client) trusted(addr string) {
	c.route.mu.Lock()
	delete(c.route.suspects, addr)
	c.route.mu.Unlock()
}

// learn updates the route from an attempt's failure at addr: the leader
// hint it carries, or that addr is not, or no longer, a place to go.
func (c *Client) learn(addr string, err error) {
	if hint := leaderHint(err); hint != "" && hint != addr {
		c.setLeader(hint)
	} else if notApplied(err) || errors.Is(err, ErrClosed) {
		c.forgetLeader(addr)
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrUnavailable) {
		c.suspect(addr)
	}
}

// attempts calls try on nodes, one attempt budget each, until it reports
// done, or that the error is final, or every node was tried; then it
// starts over after a pause, until ctx ends. try returns (true, nil) on
// success and (retry, err) otherwise. With whole, an attempt may take
// what is left of ctx: a membership change may wait for a new voter to
// catch up, and repeating one is harmless.
func (c *Client) attempts(ctx context.Context, preferLeader, whole bool,
	try func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error)) error {
	b := newBackoff(20*time.Millisecond, 500*time.Millisecond)
	var last error
	for {
		for _, addr := range c.candidates(preferLeader) {
			if ctx.Err() != nil {
				break
			}
			again, err := c.attempt(ctx, addr, whole, try)
			if err == nil {
				c.trusted(addr)
				return nil
			}
			last = err
			c.learn(addr, err)
			if !again {
				return err
			}
		}
		if b.wait(ctx, nil) != nil {
			if errors.Is(last, ErrIndeterminate) || isSkiffError(last) && !notApplied(last) && !errors.Is(last, ErrUnavailable) {
				return last
			}
			return fmt.Errorf("%w: %w (last error: %v)", ErrUnavailable, ctxError(ctx, "reaching the cluster"), last)
		}
	}
}

// attempt makes one attempt at addr, which lasts while the node answers
// health checks (watchNode), or, with whole, until ctx ends. A node whose
// connection is not ready is not tried: the call was never sent. An
// attempt whose node stopped answering may be tried elsewhere, unless it
// was a write that may have been applied (ErrIndeterminate).
func (c *Client) attempt(ctx context.Context, addr string, whole bool,
	try func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error)) (bool, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return false, err
	}
	if !ready(ctx, cc) {
		return ctx.Err() == nil, unreachable(ctx, addr, cc)
	}
	var actx context.Context
	var cancel context.CancelFunc
	if whole {
		actx, cancel = context.WithCancel(ctx)
	} else {
		actx, cancel = watchNode(ctx, cc, probeEvery(c.route.electionTimeout()))
	}
	defer cancel()
	again, err := try(actx, addr, cc)
	if err != nil && unresponsive(actx) && !errors.Is(err, ErrIndeterminate) {
		err = fmt.Errorf("%w: %s: %w", ErrUnavailable, addr, errUnresponsive)
		again = ctx.Err() == nil
	}
	return again, err
}

// findLeader asks every node at once who leads and believes the answer
// with the highest term: a leader cut off from its peers still names
// itself for a while, at its old term, and a frozen one does not answer.
// It also learns the cluster's election timeout. It fails only when no
// node answered.
func (c *Client) findLeader(ctx context.Context) (id, addr string, err error) {
	addrs := c.candidates(false)
	type answer struct {
		addr string
		st   *skiffpb.StatusResponse
		err  error
	}
	answers := make(chan answer, len(addrs))
	for _, a := range addrs {
		go func() {
			st, err := c.status(ctx, a)
			answers <- answer{a, st, err}
		}()
	}
	var best *skiffpb.StatusResponse
	for n := 1; n <= len(addrs); n++ {
		a := <-answers
		switch {
		case a.err != nil:
			err = a.err
			c.learn(a.addr, a.err)
		case best == nil || a.st.LeaderId != "" && (best.LeaderId == "" || a.st.Term > best.Term):
			best = a.st
			c.trusted(a.addr)
		}
		if n > len(addrs)/2 && best != nil && best.LeaderId != "" {
			break // a majority answered; a frozen node will not
		}
	}
	if best == nil {
		return "", "", err
	}
	c.route.mu.Lock()
	if best.ElectionTimeoutMs > 0 {
		c.route.election = time.Duration(best.ElectionTimeoutMs) * time.Millisecond
	}
	c.route.mu.Unlock()
	c.setLeader(best.LeaderAddress)
	return best.LeaderId, best.LeaderAddress, nil
}

// status asks the node at addr for its status; the node has an election
// timeout to answer.
func (c *Client) status(ctx context.Context, addr string) (*skiffpb.StatusResponse, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeEvery(c.route.electionTimeout()))
	defer cancel()
	if !ready(ctx, cc) {
		return nil, unreachable(ctx, addr, cc)
	}
	st, err := skiffpb.NewClusterClient(cc).Status(ctx, &skiffpb.StatusRequest{})
	return st, fromStatus(err)
}

// connect waits until a node answers, asking all of them again after a
// pause while none does, until ctx ends: a service started together with
// its cluster may come up first. A refusal of its credentials is final.
func (c *Client) connect(ctx context.Context) error {
	b := newBackoff(50*time.Millisecond, time.Second)
	for {
		_, _, err := c.findLeader(ctx)
		if err == nil {
			_, _ = c.Members(ctx) // learns where the other members are; best effort
			return nil
		}
		if errors.Is(err, ErrPermissionDenied) {
			return err
		}
		if b.wait(ctx, nil) != nil {
			if errors.Is(err, ErrUnavailable) {
				return fmt.Errorf("no node answered within the dial timeout: %w", err)
			}
			return fmt.Errorf("%w: no node answered within the dial timeout: %w", ErrUnavailable, err)
		}
	}
}
