package skiff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/command"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Writes, the read index of linearizable reads, and membership changes
// run on the leader. This file is the one place that decides where: on
// this node's Raft when it leads, else forwarded over gRPC to the leader
// it knows (findLeader); and onLeader is the one loop that retries when
// the leader is not there yet, under the policy of retry.go.

// leader is what the calls that need the leader ask of it. localLeader
// and remoteLeader are the two kinds; tests may supply others.
type leader interface {
	apply(ctx context.Context, op command.Op) (*applyResult, error)
	readIndex(ctx context.Context) (uint64, error)
	addMember(ctx context.Context, id, addr string, voter bool) error
	removeMember(ctx context.Context, id string) error
	transferLeadership(ctx context.Context, id string) error
}

var (
	_ leader = localLeader{}
	_ leader = remoteLeader{}
)

// metaForwarded marks a request one node forwarded to another. Its
// receiver serves it only if it leads and never forwards it again, so a
// request cannot bounce between nodes with stale views of the leader.
const metaForwarded = "skiff-forwarded"

// findLeader returns where calls for the leader go now: this node, or the
// leader it knows, once a connection to it is ready.
func (n *Node) findLeader(ctx context.Context) (leader, error) {
	if n.raft.State() == raft.Leader {
		return localLeader{n}, nil
	}
	_, addr := n.Leader()
	if addr == "" {
		if n.removed() {
			return nil, fmt.Errorf("%w: %w: node %s is no longer a member of the cluster", ErrNoLeader, errRemoved, n.id)
		}
		return nil, fmt.Errorf("%w: node %s knows no leader", ErrNoLeader, n.id)
	}
	if addr == n.addr {
		return nil, fmt.Errorf("%w: leadership is changing", ErrNotLeader)
	}
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, err
	}
	if !ready(ctx, conn) {
		return nil, fmt.Errorf("leader: %w", unreachable(ctx, addr, conn))
	}
	return remoteLeader{n: n, addr: addr, conn: conn}, nil
}

// asLeader returns this node as the leader for a request another node
// forwarded, or ErrNotLeader: a forwarded request is never forwarded again.
func (n *Node) asLeader() (leader, error) {
	if n.isClosed() {
		return nil, n.errClosed()
	}
	if n.raft.State() != raft.Leader {
		return nil, fmt.Errorf("%w: %s does not lead", ErrNotLeader, n.id)
	}
	return localLeader{n}, nil
}

// patienceKey holds, in a request's context, how long a node waits for a
// leader before it answers ErrNoLeader. The guard sets it for every call
// that comes over the network: such a caller can try another node, which
// may know a leader this one does not. A call from the embedding program
// has no other node to try and waits until its context ends.
type patienceKey struct{}

func withPatience(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, patienceKey{}, d)
}

// onLeader runs call on the leader. While each failure proves the call
// took no effect (notApplied) it tries again after a pause, until the
// caller's context ends or its patience (see patienceKey) runs out.
func onLeader[T any](ctx context.Context, n *Node, call func(context.Context, leader) (T, error)) (T, error) {
	var zero T
	if n.isClosed() {
		return zero, n.errClosed()
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	giveUp := deadline(ctx)
	if p, ok := ctx.Value(patienceKey{}).(time.Duration); ok && time.Now().Add(p).Before(giveUp) {
		giveUp = time.Now().Add(p)
	}
	b := newBackoff(10*time.Millisecond, 250*time.Millisecond)
	for {
		find := n.findLeader
		if n.leaderAt != nil {
			find = n.leaderAt
		}
		l, err := find(ctx)
		if err == nil {
			var v T
			if v, err = call(ctx, l); err == nil {
				return v, nil
			}
		}
		switch {
		case n.isClosed():
			return zero, n.closedDuring(err)
		case !notApplied(err), errors.Is(err, errRemoved):
			return zero, err
		case time.Now().After(giveUp):
			return zero, fmt.Errorf("%w: %v", ErrNoLeader, err)
		}
		if werr := b.wait(ctx, n.ctx.Done()); werr == errStopped {
			return zero, n.closedDuring(err)
		} else if werr != nil {
			return zero, fmt.Errorf("%w: %w (last error: %v)", ErrNoLeader, ctxError(ctx, "waiting for a leader"), err)
		}
	}
}

// errRemoved says a node was removed from the cluster: waiting will not
// bring it a leader. It matches ErrNotMember; the error that carries it
// also matches ErrNoLeader, so that a client tries another node.
var errRemoved = fmt.Errorf("%w: removed", ErrNotMember)

// removed reports whether this node knows a configuration of the
// cluster and is not in it. A node that is joining knows none yet.
func (n *Node) removed() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		if string(s.ID) == n.id {
			return false
		}
	}
	return len(servers) > 0
}

// closedDuring is the error of a call that the node's closing cut short:
// ErrClosed, or ErrIndeterminate when a write may have been applied.
func (n *Node) closedDuring(err error) error {
	if err != nil && errors.Is(err, ErrIndeterminate) {
		return fmt.Errorf("%w: %w", err, n.errClosed())
	}
	return n.errClosed()
}

// localLeader runs calls on this node's Raft.
type localLeader struct{ n *Node }

func (l localLeader) apply(ctx context.Context, op command.Op) (*applyResult, error) {
	return l.n.applyLocal(ctx, op)
}

func (l localLeader) readIndex(ctx context.Context) (uint64, error) { return l.n.reads.index(ctx) }

func (l localLeader) addMember(ctx context.Context, id, addr string, voter bool) error {
	return l.n.addMemberLocal(ctx, id, addr, voter)
}

func (l localLeader) removeMember(ctx context.Context, id string) error {
	return l.n.removeMemberLocal(ctx, id)
}

func (l localLeader) transferLeadership(ctx context.Context, id string) error {
	return l.n.transferLocal(ctx, id)
}

// remoteLeader forwards calls to the leader at addr. Writes and read
// indexes last only while the leader answers health checks (watchNode): a
// leader that froze or vanished must not hold them until the caller's
// deadline. Membership changes get the caller's whole deadline: a new
// voter may need long to catch up, and they are safe to repeat.
type remoteLeader struct {
	n    *Node
	addr string
	conn *grpc.ClientConn
}

// forwarded marks ctx's outgoing request as forwarded.
func (r remoteLeader) forwarded(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, metaForwarded, r.n.id)
}

func (r remoteLeader) apply(ctx context.Context, op command.Op) (_ *applyResult, err error) {
	defer r.n.meter().forward("write", &err)
	actx, cancel := watchNode(ctx, r.conn, probeEvery(r.n.cfg.ElectionTimeout))
	defer cancel()
	actx = r.forwarded(actx)
	kv := skiffpb.NewKVClient(r.conn)
	var res applyResult
	switch op.Kind {
	case command.Put:
		var resp *skiffpb.PutResponse
		resp, err = kv.Put(actx, &skiffpb.PutRequest{Key: op.Key, Value: op.Value, Condition: conditionToPB(op)})
		if err == nil {
			res.kv = entryFromPB(resp.Kv)
			res.prev, res.had = entryFromPB(resp.Prev), resp.Prev != nil
		}
	case command.Delete:
		var resp *skiffpb.DeleteResponse
		resp, err = kv.Delete(actx, &skiffpb.DeleteRequest{Key: op.Key, Condition: conditionToPB(op)})
		if err == nil {
			res.kv = store.Entry{Key: op.Key, ModRevision: resp.Revision}
			res.deleted = true
		}
	}
	if err != nil {
		return nil, sentError(actx, fromStatus(err))
	}
	return &res, nil
}

func (r remoteLeader) readIndex(ctx context.Context) (_ uint64, err error) {
	defer r.n.meter().forward("read_index", &err)
	actx, cancel := watchNode(ctx, r.conn, probeEvery(r.n.cfg.ElectionTimeout))
	defer cancel()
	resp, err := skiffpb.NewClusterClient(r.conn).ReadIndex(r.forwarded(actx), &skiffpb.ReadIndexRequest{})
	if err != nil {
		return 0, attemptError(actx, fromStatus(err))
	}
	return resp.Index, nil
}

func (r remoteLeader) addMember(ctx context.Context, id, addr string, voter bool) (err error) {
	defer r.n.meter().forward("membership", &err)
	_, err = skiffpb.NewClusterClient(r.conn).AddMember(r.forwarded(ctx), &skiffpb.AddMemberRequest{Id: id, Address: addr, Voter: voter})
	return fromStatus(err)
}

func (r remoteLeader) removeMember(ctx context.Context, id string) (err error) {
	defer r.n.meter().forward("membership", &err)
	_, err = skiffpb.NewClusterClient(r.conn).RemoveMember(r.forwarded(ctx), &skiffpb.RemoveMemberRequest{Id: id})
	return fromStatus(err)
}

func (r remoteLeader) transferLeadership(ctx context.Context, id string) (err error) {
	defer r.n.meter().forward("membership", &err)
	_, err = skiffpb.NewClusterClient(r.conn).TransferLeadership(r.forwarded(ctx), &skiffpb.TransferLeadershipRequest{Id: id})
	return fromStatus(err)
}

// attemptError is the error of a read-only attempt that failed: one whose
// node stopped answering says nothing about the read, so another attempt
// may follow (ErrUnavailable).
func attemptError(attempt context.Context, err error) error {
	if unresponsive(attempt) {
		return fmt.Errorf("%w: %w", ErrUnavailable, errUnresponsive)
	}
	return err
}
