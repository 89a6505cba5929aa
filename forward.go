package skiff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/skiffkv/skiff/internal/bufpool"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
)

// metaForwarded marks a request one node forwarded to another. Its
// receiver serves it only if it leads and never forwards it again, so a
// request cannot bounce between nodes with stale views of the leader.
const metaForwarded = "skiff-forwarded"

// peerPool holds one gRPC connection per peer address, for forwarding and
// joining. The Raft transport keeps its own connections.
type peerPool struct {
	n      *Node
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newPeerPool(n *Node) *peerPool {
	return &peerPool{n: n, conns: map[string]*grpc.ClientConn{}}
}

// dialOptions are used for every connection to another node, the Raft
// transport's included.
func (p *peerPool) dialOptions() []grpc.DialOption {
	cfg := p.n.cfg
	creds := insecure.NewCredentials()
	switch {
	case cfg.PeerTLS != nil:
		creds = credentials.NewTLS(cfg.PeerTLS)
	case cfg.TLS != nil:
		creds = credentials.NewTLS(cfg.TLS.Clone())
	}
	maxMsg := 64*(cfg.MaxKeySize+cfg.MaxValueSize) + 1<<20
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		experimental.WithBufferPool(bufpool.Shared),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		// Reconnect quickly: a restarted peer should be reachable again
		// within an election, not after gRPC's default 1s-120s backoff.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	}
	if cfg.Dialer != nil {
		opts = append(opts, grpc.WithContextDialer(cfg.Dialer))
	}
	return opts
}

func (p *peerPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, p.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// ready waits, briefly, for conn to be connected. A request sent on a
// connected channel may have reached the peer when it fails; one refused
// before that certainly did not, and may be sent elsewhere.
func ready(ctx context.Context, conn *grpc.ClientConn) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return true
		case connectivity.Idle:
			conn.Connect()
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		}
		if !conn.WaitForStateChange(ctx, s) {
			return false
		}
	}
}

// leaderConn returns a connection to the leader this node knows of, with
// an outgoing context marking the request as forwarded.
func (n *Node) leaderConn(ctx context.Context) (context.Context, *grpc.ClientConn, error) {
	_, addr := n.Leader()
	if addr == "" {
		return nil, nil, fmt.Errorf("%w: node %s knows no leader", ErrNoLeader, n.id)
	}
	if addr == n.addr {
		return nil, nil, fmt.Errorf("%w: leadership is changing", ErrNotLeader)
	}
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, nil, err
	}
	if !ready(ctx, conn) {
		return nil, nil, fmt.Errorf("%w: leader %s is unreachable", ErrUnavailable, addr)
	}
	return metadata.AppendToOutgoingContext(ctx, metaForwarded, n.id), conn, nil
}

// forwardWrite sends a write to the leader. Once it was sent, a failure
// without a clear answer from the leader is ErrIndeterminate.
func (n *Node) forwardWrite(ctx context.Context, cmd *skiffpb.Command) (*applyResult, error) {
	fctx, conn, err := n.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	kv := skiffpb.NewKVClient(conn)
	var res applyResult
	switch op := cmd.Op.(type) {
	case *skiffpb.Command_Put:
		var resp *skiffpb.PutResponse
		if resp, err = kv.Put(fctx, op.Put); err == nil {
			res.kv = entryFromPB(resp.Kv)
			res.prev, res.had = entryFromPB(resp.Prev), resp.Prev != nil
		}
	case *skiffpb.Command_Delete:
		var resp *skiffpb.DeleteResponse
		if resp, err = kv.Delete(fctx, op.Delete); err == nil {
			res.kv = store.Entry{Key: op.Delete.Key, ModRevision: resp.Revision}
			res.deleted = true
		}
	}
	if err != nil {
		return nil, sentError(ctx, fromStatus(err))
	}
	return &res, nil
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
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrIndeterminate, ctxError(ctx, "waiting for the leader"))
	}
	return fmt.Errorf("%w: %w", ErrIndeterminate, err)
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

// forwardReadIndex asks the leader for a read index.
func (n *Node) forwardReadIndex(ctx context.Context) (uint64, error) {
	fctx, conn, err := n.leaderConn(ctx)
	if err != nil {
		return 0, err
	}
	resp, err := skiffpb.NewClusterClient(conn).ReadIndex(fctx, &skiffpb.ReadIndexRequest{})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.Index, nil
}

func entryFromPB(kv *skiffpb.KeyValue) store.Entry {
	if kv == nil {
		return store.Entry{}
	}
	return store.Entry{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}

func entryToPB(e store.Entry) *skiffpb.KeyValue {
	return &skiffpb.KeyValue{Key: e.Key, Value: e.Value, CreateRevision: e.CreateRevision, ModRevision: e.ModRevision, Version: e.Version}
}

func kvToPB(kv *KeyValue) *skiffpb.KeyValue {
	return &skiffpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}
