package skiff

import (
	"context"
	"errors"

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
	err := c.admin(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := skiffpb.NewClusterClient(cc).Members(ctx, &skiffpb.MembersRequest{})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, m := range resp.Members {
			out = append(out, Member{ID: m.Id, Address: m.Address, Voter: m.Voter, Leader: m.Leader})
		}
		return nil
	})
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
	return c.admin(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).AddMember(ctx, &skiffpb.AddMemberRequest{Id: id, Address: addr, Voter: voter})
		return err
	})
}

// RemoveServer removes a member, as Node.RemoveServer does.
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	return c.admin(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).RemoveMember(ctx, &skiffpb.RemoveMemberRequest{Id: id})
		return err
	})
}

// TransferLeadership moves leadership to member id (any suitable voter
// when id is empty), as Node.TransferLeadership does.
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	err := c.admin(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewClusterClient(cc).TransferLeadership(ctx, &skiffpb.TransferLeadershipRequest{Id: id})
		return err
	})
	if err == nil {
		c.mu.Lock()
		c.leader = ""
		c.mu.Unlock()
	}
	return err
}

// Leader returns the ID and address of the current leader, asking the
// cluster.
func (c *Client) Leader(ctx context.Context) (id, addr string, err error) {
	err = c.admin(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		st, err := skiffpb.NewClusterClient(cc).Status(ctx, &skiffpb.StatusRequest{})
		if err != nil {
			return err
		}
		if st.LeaderId == "" {
			return ErrNoLeader
		}
		id, addr = st.LeaderId, st.LeaderAddress
		return nil
	})
	if err == nil {
		c.setLeader(addr)
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

func (c *Client) admin(ctx context.Context, call func(context.Context, *grpc.ClientConn) error) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.attempts(ctx, true, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		err := fromStatus(call(ctx, cc))
		if err == nil {
			return true, nil
		}
		again := retryable(err) || errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrClosed)
		return again && ctx.Err() == nil, err
	})
}
