package skiff

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/skiffkv/skiff/internal/command"
	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc/metadata"
)

// service serves the KV and Cluster gRPC services on the node's port. It
// converts between protobuf and the Node API; the Node does the work, so
// network callers get exactly the embedded API's behaviour and errors.
type service struct {
	skiffpb.UnimplementedKVServer
	skiffpb.UnimplementedClusterServer
	n *Node
	// clientPort: this service answers on the clients' own port, where a
	// leader's address must be its client address (see Node.clientAddrOf).
	clientPort bool
}

// forwarded reports whether another node forwarded this request.
func forwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(metaForwarded)) > 0
}

// status converts a Node error for the wire, with the leader's address as
// a hint.
func (s *service) status(err error) error {
	return toStatus(err, s.leaderAddr())
}

// leaderAddr is the address of the leader for this service's callers.
func (s *service) leaderAddr() string {
	_, addr := s.n.Leader()
	if !s.clientPort || addr == "" {
		return addr
	}
	return s.n.clientAddrOf(addr)
}

// write serves a write. A forwarded one is applied here only if this node
// leads; anything else goes through the normal path.
func (s *service) write(ctx context.Context, op command.Op) (*applyResult, error) {
	n := s.n
	if !forwarded(ctx) {
		return n.propose(ctx, op)
	}
	if err := n.validateOp(op); err != nil {
		return nil, err
	}
	l, err := n.asLeader()
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return l.apply(ctx, op)
}

func (s *service) Put(ctx context.Context, req *skiffpb.PutRequest) (*skiffpb.PutResponse, error) {
	resp, err := s.put(ctx, req)
	if err != nil {
		return nil, s.status(err)
	}
	return resp, nil
}

// put serves a Put. The answer carries the key's revisions, not its
// value, which the caller has.
func (s *service) put(ctx context.Context, req *skiffpb.PutRequest) (*skiffpb.PutResponse, error) {
	op, err := opFromPut(req)
	if err != nil {
		return nil, err
	}
	res, err := s.write(ctx, op)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.PutResponse{Kv: entryToPB(res.kv)}
	if res.had {
		resp.Prev = entryToPB(res.prev)
	}
	return resp, nil
}

func (s *service) Delete(ctx context.Context, req *skiffpb.DeleteRequest) (*skiffpb.DeleteResponse, error) {
	resp, err := s.delete(ctx, req)
	if err != nil {
		return nil, s.status(err)
	}
	return resp, nil
}

func (s *service) delete(ctx context.Context, req *skiffpb.DeleteRequest) (*skiffpb.DeleteResponse, error) {
	op, err := opFromDelete(req)
	if err != nil {
		return nil, err
	}
	res, err := s.write(ctx, op)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.DeleteResponse{Revision: res.kv.ModRevision}
	if res.had {
		resp.Prev = entryToPB(res.prev)
	}
	return resp, nil
}

func readOpts(o *skiffpb.ReadOptions) []ReadOption {
	if o.GetStale() {
		return []ReadOption{Stale()}
	}
	return nil
}

func (s *service) Get(ctx context.Context, req *skiffpb.GetRequest) (*skiffpb.GetResponse, error) {
	kv, err := s.n.Get(ctx, req.Key, readOpts(req.Options)...)
	if err != nil {
		return nil, s.status(err)
	}
	return &skiffpb.GetResponse{Kv: kvToPB(kv), Revision: kv.ModRevision}, nil
}

func (s *service) Members(ctx context.Context, _ *skiffpb.MembersRequest) (*skiffpb.MembersResponse, error) {
	ms, err := s.n.Members(ctx)
	if err != nil {
		return nil, s.status(err)
	}
	resp := &skiffpb.MembersResponse{}
	for _, m := range ms {
		resp.Members = append(resp.Members, &skiffpb.Member{Id: m.ID, Address: m.Address, Voter: m.Voter, Leader: m.Leader,
			ClientAddress: m.ClientAddress})
	}
	return resp, nil
}

// change serves a membership change: one another node forwarded runs
// here if this node leads and nowhere else (forwarding never chains);
// any other goes through the node's door to the leader.
func (s *service) change(ctx context.Context, viaNode func() error, here func(leader) error) error {
	if !forwarded(ctx) {
		return s.status(viaNode())
	}
	l, err := s.n.asLeader()
	if err == nil {
		err = here(l)
	}
	return s.status(err)
}

func (s *service) AddMember(ctx context.Context, req *skiffpb.AddMemberRequest) (*skiffpb.AddMemberResponse, error) {
	err := s.change(ctx, func() error { return s.n.addMember(ctx, req.Id, req.Address, req.Voter) },
		func(l leader) error {
			if err := validateMember(req.Id, req.Address); err != nil {
				return err
			}
			return l.addMember(ctx, req.Id, req.Address, req.Voter)
		})
	if err != nil {
		return nil, err
	}
	return &skiffpb.AddMemberResponse{}, nil
}

func (s *service) RemoveMember(ctx context.Context, req *skiffpb.RemoveMemberRequest) (*skiffpb.RemoveMemberResponse, error) {
	err := s.change(ctx, func() error { return s.n.RemoveServer(ctx, req.Id) },
		func(l leader) error { return l.removeMember(ctx, req.Id) })
	if err != nil {
		return nil, err
	}
	return &skiffpb.RemoveMemberResponse{}, nil
}

func (s *service) TransferLeadership(ctx context.Context, req *skiffpb.TransferLeadershipRequest) (*skiffpb.TransferLeadershipResponse, error) {
	err := s.change(ctx, func() error { return s.n.TransferLeadership(ctx, req.Id) },
		func(l leader) error { return l.transferLeadership(ctx, req.Id) })
	if err != nil {
		return nil, err
	}
	return &skiffpb.TransferLeadershipResponse{}, nil
}

// ReadIndex serves a follower's read: a commit index every acknowledged
// write is at or below, confirmed by this node still leading.
func (s *service) ReadIndex(ctx context.Context, _ *skiffpb.ReadIndexRequest) (*skiffpb.ReadIndexResponse, error) {
	l, err := s.n.asLeader()
	if err != nil {
		return nil, s.status(err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idx, err := l.readIndex(ctx)
	if err != nil {
		return nil, s.status(err)
	}
	return &skiffpb.ReadIndexResponse{Index: idx}, nil
}

func (s *service) Status(ctx context.Context, _ *skiffpb.StatusRequest) (*skiffpb.StatusResponse, error) {
	st := s.n.Status()
	return &skiffpb.StatusResponse{
		Id: st.ID, Address: st.Address, State: st.State, LeaderId: st.LeaderID, LeaderAddress: s.leaderAddr(),
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		LastSnapshotIndex: st.LastSnapshotIndex, Keys: int64(st.Keys), Bytes: st.Bytes, ClientAddress: st.ClientAddress,
		ElectionTimeoutMs: s.n.cfg.ElectionTimeout.Milliseconds(),
	}, nil
}

// Watch streams a watch's batches. The stream ends when the client goes
// away, the node closes, or the watch fails (for example with a
// *CompactedError, whose revisions travel in the status).
func (s *service) Watch(req *skiffpb.WatchRequest, stream skiffpb.KV_WatchServer) error {
	if s.n.netWatches.Add(1) > int64(s.n.cfg.MaxWatches) {
		s.n.netWatches.Add(-1)
		return s.status(fmt.Errorf("%w: %s already serves %d watches (Config.MaxWatches)", ErrTooManyWatches, s.n.id, s.n.cfg.MaxWatches))
	}
	defer s.n.netWatches.Add(-1)
	o := watchOptions{after: req.AfterRevision, fromRev: req.FromRevision, initial: req.InitialState,
		prev: req.PrevValue, exactKey: req.Exact}
	sub, err := s.n.newSubscription(stream.Context(), req.Prefix, o)
	if err != nil {
		return s.status(err)
	}
	// The headers tell the client the watch is open before any event.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	err = sub.run(stream.Context(), func(b watchBatch) error {
		resp := &skiffpb.WatchResponse{InitialDone: b.synced}
		if !b.initialPage {
			resp.Revision = b.rev
		}
		for _, e := range b.initial {
			resp.Events = append(resp.Events, &skiffpb.Event{Type: skiffpb.Event_PUT, Kv: entryToPB(e)})
		}
		for _, c := range b.changes {
			ev := &skiffpb.Event{Type: skiffpb.Event_PUT, Kv: entryToPB(c.kv)}
			if c.deleted {
				ev.Type = skiffpb.Event_DELETE
				ev.Kv = &skiffpb.KeyValue{Key: c.kv.Key, ModRevision: c.kv.ModRevision}
			}
			if o.prev && c.hadPrev {
				ev.Prev = entryToPB(c.prev)
			}
			resp.Events = append(resp.Events, ev)
		}
		return stream.Send(resp)
	})
	if stream.Context().Err() != nil {
		return nil
	}
	return s.status(err)
}

// clientAddrs remembers the client addresses of other members, by their
// peer address, when members serve clients on ports of their own.
type clientAddrs struct {
	mu      sync.Mutex
	known   map[string]clientAddr
	pending map[string]bool
}

type clientAddr struct {
	addr    string
	learned time.Time
}

// clientAddrTTL is how long a learned client address is used before it
// is looked up again (a member may come back on another port).
const clientAddrTTL = time.Minute

// clientAddrOf returns the client address of the member whose peer
// address is addr: this node's own, or one learned from that member's
// Status. While an address is being looked up, in the background, it
// returns "": it is only ever used as a hint.
func (n *Node) clientAddrOf(addr string) string {
	if addr == n.addr {
		return n.clientAddr
	}
	c := &n.clientAddrs
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.known[addr]; ok && time.Since(k.learned) < clientAddrTTL {
		return k.addr
	}
	if !c.pending[addr] && !n.isClosed() {
		if c.pending == nil {
			c.pending, c.known = map[string]bool{}, map[string]clientAddr{}
		}
		c.pending[addr] = true
		go n.lookUpClientAddr(addr)
	}
	return c.known[addr].addr
}

func (n *Node) lookUpClientAddr(addr string) {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	var st *skiffpb.StatusResponse
	conn, err := n.peers.get(addr)
	if err == nil {
		st, err = skiffpb.NewClusterClient(conn).Status(ctx, &skiffpb.StatusRequest{})
	}
	c := &n.clientAddrs
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, addr)
	if err == nil && st.ClientAddress != "" {
		c.known[addr] = clientAddr{addr: st.ClientAddress, learned: time.Now()}
	}
}
