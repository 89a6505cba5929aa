package skiff

import (
	"context"
	"errors"
	"fmt"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// Membership changes are idempotent (re-adding a member as it is, or
// removing one twice, changes nothing more), so unlike writes they are
// retried on another node when the outcome of an attempt is unknown.

// Members returns the cluster's members as the leader (or, without one,
// any node) knows them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out []Member
	err := c.admin(ctx, false, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := skiffpb.NewClusterClient(cc).Members(ctx, &skiffpb.MembersRequest{})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, m := range resp.Members {
			out = append(out, Member{ID: m.Id, Address: m.Address, ClientAddress: m.ClientAddress, Voter: m.Voter, Leader: m.Leader})
		}
		return nil
	})
	if err == nil {
		c.learnMembers(out)
	}
	return out, err
}

// AddVoter adds a voting member, as Node.AddVoter does.
func (c *Client) AddVoter(ctx context.Context, id, addr string) error {
	return c.addMember(ctx, id, addr, true)
}

// AddNonvoter adds a non-voting member, as Node.AddNonvoter does.
func (c *Client) AddNonvoter(ctx context.Context, id, addr string) error {
	return c.addMember(ctx, id, addr, false)
}

func (c *Client) addMember(ctx context.Context, id, addr string, voter bool) error {
	return c.admin(ctx, true, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).AddMember(ctx, &skiffpb.AddMemberRequest{Id: id, Address: addr, Voter: voter})
		return err
	})
}

// RemoveServer removes a member, as Node.RemoveServer does.
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	return c.admin(ctx, true, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).RemoveMember(ctx, &skiffpb.RemoveMemberRequest{Id: id})
		return err
	})
}

// TransferLeadership moves leadership to member id (any suitable voter
// when id is empty), as Node.TransferLeadership does.
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	err := c.admin(ctx, true, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).TransferLeadership(ctx, &skiffpb.TransferLeadershipRequest{Id: id})
		return err
	})
	if err == nil {
		c.route.mu.Lock()
		c.route.leader = ""
		c.route.mu.Unlock()
	}
	return err
}

// Leader returns the ID and address of the current leader, asking every
// node at once and believing the answer with the highest term (a leader
// cut off from its peers still names itself for a while), without
// waiting for a node that does not answer if a majority did.
func (c *Client) Leader(ctx context.Context) (id, addr string, err error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	id, addr, err = c.findLeader(ctx)
	if err == nil && id == "" {
		err = fmt.Errorf("%w: no node knows a leader", ErrNoLeader)
	}
	return id, addr, err
}

// Status returns the status of the node at addr.
func (c *Client) Status(ctx context.Context, addr string) (Status, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	cc, err := c.conn(addr)
	if err != nil {
		return Status{}, err
	}
	st, err := skiffpb.NewClusterClient(cc).Status(ctx, &skiffpb.StatusRequest{})
	if err != nil {
		return Status{}, fromStatus(err)
	}
	return Status{
		ID: st.Id, Address: st.Address, State: st.State, LeaderID: st.LeaderId, LeaderAddress: st.LeaderAddress,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		LastSnapshotIndex: st.LastSnapshotIndex, Keys: int(st.Keys), Bytes: st.Bytes, ClientAddress: st.ClientAddress,
	}, nil
}

// admin runs a membership call on the leader, retrying it on another node
// when its outcome is unknown: membership changes are idempotent. A change
// gets the call's whole deadline per attempt (see attempts); a read of the
// members, one attempt budget.
func (c *Client) admin(ctx context.Context, change bool, call func(context.Context, *grpc.ClientConn) error) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.attempts(ctx, true, change, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		err := fromStatus(call(ctx, cc))
		if err == nil {
			return true, nil
		}
		again := notApplied(err) || errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrClosed)
		return again && ctx.Err() == nil, err
	})
}
