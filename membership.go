package skiff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	skiffpb "github.com/skiffkv/skiff/proto"
)

// Member is one server in the cluster's configuration.
type Member struct {
	ID      string
	Address string // for peers: its Raft address
	// ClientAddress is where clients reach it: Address, unless members
	// serve clients on ports of their own (Config.ClientBindAddr); empty
	// while this node has not learned it yet.
	ClientAddress string
	Voter         bool // votes and counts towards commits; false for a non-voter
	Leader        bool
}

// Members returns the cluster's configuration as this node knows it (the
// latest one, possibly not yet committed), ordered as Raft keeps it.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if n.isClosed() {
		return nil, n.errClosed()
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err, false)
	}
	_, leader := n.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{
			ID:            string(s.ID),
			Address:       string(s.Address),
			ClientAddress: string(s.Address),
			Voter:         s.Suffrage == raft.Voter,
			Leader:        s.ID == leader,
		}
		if n.clientLis != nil {
			m.ClientAddress = n.clientAddrOf(m.Address)
		}
		out = append(out, m)
	}
	return out, nil
}

// AddVoter adds a voting member, or promotes a non-voter. A server that
// is not a voter yet is added as a non-voter first and promoted once it
// has caught up with the leader's log: a voter that cannot be reached, or
// that is still far behind, counts towards the quorum without helping to
// reach it. If it does not catch up before ctx ends, AddVoter fails with
// ErrTimeout and the server stays a non-voter; calling AddVoter again
// promotes it once it has caught up.
//
// Adding a member that already exists with the same ID and address is a
// no-op; the same ID with a new address updates the address. An address
// that another ID uses is ErrMemberConflict; one that is not host:port is
// ErrInvalidArgument. Called on a follower, it is forwarded to the leader.
//
// Mind the quorum: a cluster of one voter that adds a second needs both
// to commit anything, so it stops if either fails; three voters tolerate
// one failure, five tolerate two.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.addMember(ctx, id, addr, true)
}

// AddNonvoter adds a member that receives the log but does not vote, with
// the same rules as AddVoter. An existing voter stays a voter.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	return n.addMember(ctx, id, addr, false)
}

func (n *Node) addMember(ctx context.Context, id, addr string, voter bool) error {
	if err := validateMember(id, addr); err != nil {
		return err
	}
	return n.changeOnLeader(ctx, func(ctx context.Context, l leader) error { return l.addMember(ctx, id, addr, voter) })
}

// validateMember checks a member's ID and address.
func validateMember(id, addr string) error {
	if err := validateID(id); err != nil {
		return err
	}
	if err := validateAddr(addr); err != nil {
		return fmt.Errorf("member %q: %w", id, err)
	}
	return nil
}

// validateAddr checks that addr is host:port with a port in 1-65535.
func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%w: address %q is not host:port", ErrInvalidArgument, addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w: address %q has no valid port", ErrInvalidArgument, addr)
	}
	return nil
}

func (n *Node) addMemberLocal(ctx context.Context, id, addr string, voter bool) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftError(err, false)
	}
	isVoter, moved := false, ""
	for _, s := range f.Configuration().Servers {
		switch {
		case string(s.ID) == id && string(s.Address) == addr && (s.Suffrage == raft.Voter || !voter):
			return nil
		case string(s.ID) != id && string(s.Address) == addr:
			return fmt.Errorf("%w: address %s belongs to member %q", ErrMemberConflict, addr, s.ID)
		case string(s.ID) == id:
			isVoter = s.Suffrage == raft.Voter
			if string(s.Address) != addr {
				moved = string(s.Address)
			}
		}
	}
	if moved != "" {
		// Raft's calls to the old address may be waiting for it to come
		// back (awaitPeer); drop them, so that replication turns to the
		// new address at once.
		defer n.dropPeer(moved)
	}
	if !voter || !isVoter {
		// A new member, a non-voter, or a non-voter on the way to voter.
		if err := n.changeMember(ctx, id, addr, false); err != nil {
			return err
		}
		if !voter {
			return nil
		}
		if err := n.awaitCatchUp(ctx, id, addr); err != nil {
			return err
		}
	}
	return n.changeMember(ctx, id, addr, true)
}

// changeMember adds id as a voter or a non-voter (or updates its address)
// and waits for the change to commit.
func (n *Node) changeMember(ctx context.Context, id, addr string, voter bool) error {
	timeout := time.Until(deadline(ctx))
	var fut raft.IndexFuture
	if voter {
		fut = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	} else {
		fut = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	}
	if err := wait(ctx, fut, "waiting for the cluster"); err != nil {
		return err
	}
	n.log.Info("member added", "member", id, "addr", addr, "voter", voter)
	return nil
}

// awaitCatchUp waits until the member at addr has applied what this
// leader had committed when the wait began, asking the member itself. It
// leaves part of ctx's time for the promotion that follows.
func (n *Node) awaitCatchUp(ctx context.Context, id, addr string) error {
	target := n.raft.CommitIndex()
	rest := time.Until(deadline(ctx))
	ctx, cancel := context.WithTimeout(ctx, rest-min(time.Second, rest/4))
	defer cancel()
	var applied uint64
	var last error
	for {
		st, err := n.memberStatus(ctx, addr)
		if err == nil && st.AppliedIndex >= target {
			return nil
		}
		if err == nil {
			applied = st.AppliedIndex
		}
		last = err
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			why := fmt.Sprintf("has applied %d of %d entries", applied, target)
			if last != nil {
				why = fmt.Sprintf("cannot be reached (%v)", last)
			}
			return fmt.Errorf("%w: %q was added as a non-voter, but %s: it stays a non-voter; call AddVoter again once it has caught up",
				ErrTimeout, id, why)
		case <-n.ctx.Done():
			t.Stop()
			return n.errClosed()
		}
	}
}

// memberStatus asks the member at addr for its status.
func (n *Node) memberStatus(ctx context.Context, addr string) (*skiffpb.StatusResponse, error) {
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := skiffpb.NewClusterClient(conn).Status(ctx, &skiffpb.StatusRequest{})
	return st, fromStatus(err)
}

// RemoveServer removes a member. Removing the leader makes it step down
// once the change commits. Removing an unknown ID is ErrNotMember.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	// A removal that took effect can still fail: Raft may answer that
	// leadership was lost when the leader stepped down as the change
	// committed (always possible when it removed itself). The change is
	// then retried, and finds the member gone: that is what was asked.
	tried := false
	err := n.changeOnLeader(ctx, func(ctx context.Context, l leader) error {
		err := l.removeMember(ctx, id)
		if tried && errors.Is(err, ErrNotMember) {
			return nil
		}
		tried = true
		return err
	})
	if id == n.id && errors.Is(err, errRemoved) {
		return nil
	}
	return err
}

func (n *Node) removeMemberLocal(ctx context.Context, id string) error {
	if _, err := n.member(id); err != nil {
		return err
	}
	if err := wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, time.Until(deadline(ctx))), "waiting for the cluster"); err != nil {
		return err
	}
	n.log.Info("member removed", "member", id)
	return nil
}

// TransferLeadership asks the leader to hand leadership to the member id,
// or to the most up-to-date voter when id is empty, and waits until it has.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if id != "" {
		if err := validateID(id); err != nil {
			return err
		}
	}
	return n.changeOnLeader(ctx, func(ctx context.Context, l leader) error { return l.transferLeadership(ctx, id) })
}

func (n *Node) transferLocal(ctx context.Context, id string) error {
	if id == "" {
		if err := n.otherVoter(); err != nil {
			return err
		}
		return wait(ctx, n.raft.LeadershipTransfer(), "waiting for the cluster")
	}
	m, err := n.member(id)
	if err != nil {
		return err
	}
	if !m.Voter {
		return fmt.Errorf("%w: %q is not a voter", ErrInvalidArgument, id)
	}
	if id == n.id {
		return nil
	}
	return wait(ctx, n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(m.Address)), "waiting for the cluster")
}

// changeOnLeader runs a membership change on the leader (see onLeader).
// Membership changes are idempotent, so they may be retried.
func (n *Node) changeOnLeader(ctx context.Context, change func(context.Context, leader) error) error {
	_, err := onLeader(ctx, n, func(ctx context.Context, l leader) (struct{}, error) { return struct{}{}, change(ctx, l) })
	return err
}

// otherVoter fails unless a voter other than this node exists, to hand
// leadership to.
func (n *Node) otherVoter() error {
	ms, err := n.Members(context.Background())
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Voter && m.ID != n.id {
			return nil
		}
	}
	return fmt.Errorf("%w: no other voter to hand leadership to", ErrInvalidArgument)
}

func (n *Node) member(id string) (Member, error) {
	ms, err := n.Members(context.Background())
	if err != nil {
		return Member{}, err
	}
	for _, m := range ms {
		if m.ID == id {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%w: %q", ErrNotMember, id)
}

// wait waits for a Raft future whose change, like a membership change, is
// safe to retry; what names it in a timeout.
func wait(ctx context.Context, f raft.Future, what string) error {
	done, err := await(ctx, f)
	switch {
	case !done:
		return ctxError(ctx, what)
	case err != nil:
		return raftError(err, false)
	}
	return nil
}

// await waits until f is done or ctx ends, and returns whether f is done
// and, if so, its error. A future outlives an ended wait; Raft completes it.
func await(ctx context.Context, f raft.Future) (done bool, err error) {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return true, err
	case <-ctx.Done():
		return false, nil
	}
}

// join asks the members in Config.Join to add this fresh node, trying
// each in turn with backoff until one succeeds or ctx ends (10 seconds
// when it has no deadline). Any member will do: followers forward to the
// leader.
func (n *Node) join(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	req := &skiffpb.AddMemberRequest{Id: n.id, Address: n.addr, Voter: !n.cfg.JoinAsNonvoter}
	via, err := n.askToAdd(ctx, n.cfg.Join, req)
	if err != nil {
		return fmt.Errorf("join via %v: %w", n.cfg.Join, err)
	}
	n.log.Info("joined cluster", "via", via)
	return nil
}

// askToAdd sends req to the members at addrs, one after another with a
// pause after each failure, until one accepts it, one refuses it for
// good, or ctx ends. It returns the address that accepted.
func (n *Node) askToAdd(ctx context.Context, addrs []string, req *skiffpb.AddMemberRequest) (string, error) {
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	for i := 0; ; i++ {
		addr := addrs[i%len(addrs)]
		err := n.joinVia(ctx, addr, req)
		switch {
		case err == nil:
			return addr, nil
		case errors.Is(err, ErrMemberConflict) || errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrConfig) || errors.Is(err, ErrPermissionDenied):
			return addr, err
		}
		n.log.Warn("asking a member to add this node failed", "via", addr, "err", err)
		if werr := b.wait(ctx, n.ctx.Done()); werr == errStopped {
			return "", n.errClosed()
		} else if werr != nil {
			return "", fmt.Errorf("%w (last error: %v)", ctxError(ctx, "waiting for a member to add this node"), err)
		}
	}
}

// checkAddress compares this node's address with the one the cluster's
// configuration records for its ID. A node restarted on another port
// (BindAddr with port 0, say) is not reached at the old one: Raft's
// messages go there, so the node would never hear from a leader. It logs
// a warning and asks the other members, in the background, to record the
// new address, which succeeds whenever a leader and one of them can be
// reached.
func (n *Node) checkAddress() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var recorded string
	var others []string
	voter := false
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.id {
			recorded, voter = string(s.Address), s.Suffrage == raft.Voter
		} else {
			others = append(others, string(s.Address))
		}
	}
	if recorded == "" || recorded == n.addr || len(others) == 0 {
		return
	}
	n.log.Warn("this node's address is not the one the cluster recorded: the other members cannot reach it until the new one is recorded, which this node now asks them to do. A data dir that outlives its process needs a fixed port (BindAddr or AdvertiseAddr).",
		"recorded", recorded, "now", n.addr)
	req := &skiffpb.AddMemberRequest{Id: n.id, Address: n.addr, Voter: voter}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if via, err := n.askToAdd(n.ctx, others, req); err == nil {
			n.log.Info("the cluster recorded this node's new address", "addr", n.addr, "via", via)
		} else if !errors.Is(err, ErrClosed) {
			n.log.Error("the cluster did not record this node's new address", "addr", n.addr, "err", err)
		}
	}()
}

func (n *Node) joinVia(ctx context.Context, addr string, req *skiffpb.AddMemberRequest) error {
	conn, err := n.peers.get(addr)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = skiffpb.NewClusterClient(conn).AddMember(cctx, req)
	return fromStatus(err)
}
