package skiff

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/skiffkv/skiff/internal/bufpool"
	"github.com/skiffkv/skiff/internal/command"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// metaForwarded marks a request one node forwarded to another. Its
// receiver serves it only if it leads and never forwards it again, so a
// request cannot bounce between nodes with stale views of the leader.
const metaForwarded = "skiff-forwarded"

// connPool holds one gRPC connection per address, all dialed with the
// same options. Nodes use one for forwarding and joining (the Raft
// transport keeps its own connections); a Client uses one for everything.
type connPool struct {
	opts   []grpc.DialOption
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newConnPool(opts []grpc.DialOption) *connPool {
	return &connPool{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// dialOptions are the options of every connection skiff makes: TLS when
// tlsCfg is set, messages up to maxMsg, skiff's buffer pool, and quick
// reconnects (a restarted node should be reachable again within an
// election, not after gRPC's default 1s-120s backoff).
func dialOptions(tlsCfg *tls.Config, dialer func(context.Context, string) (net.Conn, error), maxMsg int) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		experimental.WithBufferPool(bufpool.Shared),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	}
	if dialer != nil {
		opts = append(opts, grpc.WithContextDialer(dialer))
	}
	return opts
}

// peerDialOptions are a node's options for dialing other nodes, the Raft
// transport's included.
func peerDialOptions(cfg Config) []grpc.DialOption {
	tlsCfg := cfg.PeerTLS
	if tlsCfg == nil && cfg.TLS != nil {
		tlsCfg = cfg.TLS.Clone()
	}
	opts := dialOptions(tlsCfg, cfg.Dialer, wireMessageLimit)
	if cfg.ClusterSecret != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(secretCreds(cfg.ClusterSecret)))
	}
	return opts
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// close closes every connection; later gets fail with ErrClosed.
func (p *connPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
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

// unreachable explains why conn to addr is not ready. gRPC keeps the
// reason its last connection attempt failed and gives it to a call that
// fails fast; a TLS failure is called one, since "unreachable" would send
// the operator looking at the network instead of the certificates.
func unreachable(ctx context.Context, addr string, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := skiffpb.NewClusterClient(conn).Status(ctx, &skiffpb.StatusRequest{})
	why := status.Convert(err).Message()
	if tlsFailure(why) {
		return fmt.Errorf("%w: %s: TLS failed (does the node use TLS, and does the client trust its certificate and present one it accepts?): %s",
			ErrUnavailable, addr, why)
	}
	if why == "" {
		return fmt.Errorf("%w: %s is unreachable", ErrUnavailable, addr)
	}
	return fmt.Errorf("%w: %s is unreachable: %s", ErrUnavailable, addr, why)
}

// tlsFailure reports whether a connection error is a TLS one: a failed
// handshake, or a plaintext client whose server speaks TLS (it answers
// with a TLS alert, which breaks the HTTP/2 preface).
func tlsFailure(msg string) bool {
	for _, s := range []string{"tls:", "x509:", "authentication handshake failed", "server preface", "first record does not look like a TLS handshake"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
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
		return nil, nil, fmt.Errorf("leader: %w", unreachable(ctx, addr, conn))
	}
	return metadata.AppendToOutgoingContext(ctx, metaForwarded, n.id), conn, nil
}

// forwardWrite sends a write to the leader. Once it was sent, a failure
// without a clear answer from the leader is ErrIndeterminate.
func (n *Node) forwardWrite(ctx context.Context, op command.Op) (*applyResult, error) {
	fctx, conn, err := n.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	kv := skiffpb.NewKVClient(conn)
	var res applyResult
	switch op.Kind {
	case command.Put:
		var resp *skiffpb.PutResponse
		resp, err = kv.Put(fctx, &skiffpb.PutRequest{Key: op.Key, Value: op.Value, Condition: conditionToPB(op)})
		if err == nil {
			res.kv = entryFromPB(resp.Kv)
			res.prev, res.had = entryFromPB(resp.Prev), resp.Prev != nil
		}
	case command.Delete:
		var resp *skiffpb.DeleteResponse
		resp, err = kv.Delete(fctx, &skiffpb.DeleteRequest{Key: op.Key, Condition: conditionToPB(op)})
		if err == nil {
			res.kv = store.Entry{Key: op.Key, ModRevision: resp.Revision}
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
