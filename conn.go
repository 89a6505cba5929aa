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
	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Keepalive on every connection, both ways. Without it a peer that
// vanished without closing its connections (power lost, host blackholed)
// held a client's calls, and a watch, until the kernel gave up on TCP,
// many minutes later. A client pings an idle connection every
// keepaliveTime and drops it when no answer comes within
// keepaliveTimeout; a node accepts such pings (gRPC's default would
// answer pings this frequent with GOAWAY) and pings its own idle clients
// less often.
const (
	keepaliveTime       = 5 * time.Second
	keepaliveTimeout    = 3 * time.Second
	keepaliveMinPing    = 3 * time.Second // what a node accepts
	serverKeepaliveTime = 15 * time.Second
)

// serverKeepalive are the keepalive options of a node's gRPC server.
func serverKeepalive() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinPing, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: serverKeepaliveTime, Timeout: keepaliveTimeout}),
	}
}

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
// tlsCfg is set, messages up to maxMsg, skiff's buffer pool, keepalive,
// and quick reconnects (a restarted node should be reachable again within
// an election, not after gRPC's default 1s-120s backoff).
func dialOptions(tlsCfg *tls.Config, dialer func(context.Context, string) (net.Conn, error), maxMsg int) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = clientCreds(tlsCfg) // see ReloadingTLS
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		experimental.WithBufferPool(bufpool.Shared),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
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
