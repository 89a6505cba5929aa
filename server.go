package skiff

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/skiffkv/skiff/internal/bufpool"
	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// listen opens the node's port, and the client port when clients have one
// of their own, and creates their gRPC servers.
func (n *Node) listen() error {
	var err error
	n.lis, n.addr, err = openListener(n.cfg.Listener, n.cfg.BindAddr, n.cfg.AdvertiseAddr, "BindAddr")
	if err != nil {
		return err
	}
	separate := n.cfg.ClientBindAddr != "" || n.cfg.ClientListener != nil
	n.clientAddr = n.addr
	if separate {
		n.clientLis, n.clientAddr, err = openListener(n.cfg.ClientListener, n.cfg.ClientBindAddr, n.cfg.ClientAdvertiseAddr, "ClientBindAddr")
		if err != nil {
			return err
		}
	}
	if err := n.checkExposure(); err != nil {
		return err
	}
	n.srv = n.newServer()
	n.peerReg = guardedRegistrar{srv: n.srv, n: n, peerPort: separate}
	svc := &service{n: n}
	skiffpb.RegisterKVServer(n.peerReg, svc)
	skiffpb.RegisterClusterServer(n.peerReg, svc)
	healthpb.RegisterHealthServer(n.peerReg, healthService{n: n})
	if separate {
		n.clientSrv = n.newServer()
		reg := guardedRegistrar{srv: n.clientSrv, n: n}
		csvc := &service{n: n, clientPort: true}
		skiffpb.RegisterKVServer(reg, csvc)
		skiffpb.RegisterClusterServer(reg, csvc)
		healthpb.RegisterHealthServer(reg, healthService{n: n})
	}
	return nil
}

// openListener returns l, or a listener on bind, and the address to
// advertise: advertise, or the bound address.
func openListener(l net.Listener, bind, advertise, field string) (net.Listener, string, error) {
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", bind); err != nil {
			return nil, "", fmt.Errorf("open node: %w", err)
		}
	}
	if advertise != "" {
		return l, advertise, nil
	}
	addr := l.Addr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			l.Close()
			return nil, "", fmt.Errorf("%w: %s %s is a wildcard address; set the advertised address too", ErrConfig, field, addr)
		}
	}
	return l, addr, nil
}

// checkExposure refuses to serve an open port (one that authenticates no
// peers) on an address other than loopback, unless the Config insists.
func (n *Node) checkExposure() error {
	if !n.auth.open {
		return nil
	}
	for _, l := range []net.Listener{n.lis, n.clientLis} {
		if l == nil || !exposed(l) {
			continue
		}
		if !n.cfg.InsecureOpen {
			return fmt.Errorf("%w: %s is not a loopback address and the node authenticates no peers, so anyone reaching it could forge Raft messages and change the membership: "+
				"set ClusterSecret (the same on every member) or PeerNames with mutual TLS, or set InsecureOpen to serve it open anyway", ErrConfig, l.Addr())
		}
		n.log.Warn("serving an open port: anyone who reaches it can do anything, forging Raft messages included (Config.InsecureOpen)", "addr", l.Addr().String())
	}
	return nil
}

// exposed reports whether l listens on the network beyond this host. A
// listener that is not TCP (in memory, a Unix socket) is not.
func exposed(l net.Listener) bool {
	a, ok := l.Addr().(*net.TCPAddr)
	return ok && !a.IP.IsLoopback()
}

// newServer creates a gRPC server with the options of every port.
func (n *Node) newServer() *grpc.Server {
	opts := append(serverKeepalive(),
		grpc.MaxRecvMsgSize(wireMessageLimit), grpc.MaxSendMsgSize(wireMessageLimit),
		grpc.MaxConcurrentStreams(maxStreams(n.cfg.MaxWatches)),
		experimental.BufferPool(bufpool.Shared),
		grpc.ForceServerCodecV2(lenientCodec{encoding.GetCodecV2(protoCodec)}),
	)
	if n.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(n.cfg.TLS)))
	}
	return grpc.NewServer(opts...)
}

// registrar registers services on the node's (peer) port behind the
// guard; every service on a port must be registered through a
// guardedRegistrar.
func (n *Node) registrar() grpc.ServiceRegistrar { return n.peerReg }

// guardedRegistrar wraps every handler of the services registered through
// it, so that each request passes the same checks before any service code
// sees it:
//
//   - a panic while serving is recovered, logged with its stack, and
//     answered with codes.Internal; the node keeps serving;
//   - a request that does not decode is ErrInvalidArgument, not gRPC's
//     codes.Internal;
//   - the caller must be allowed to make the call (authority.allow);
//   - the call waits for a leader no longer than an election timeout
//     (withPatience): a network caller can try another node;
//   - requests to the Raft transport are validated (validateRaftRequest).
//
// Wrapping the handlers, rather than adding interceptors, also covers the
// decoding, which gRPC runs before a unary interceptor is called.
type guardedRegistrar struct {
	srv      *grpc.Server
	n        *Node
	peerPort bool // a port for peers only (Config.ClientBindAddr is set)
}

func (r guardedRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = slices.Clone(desc.Methods)
	d.Streams = slices.Clone(desc.Streams)
	raftMsgs := desc.ServiceName == raftService
	for i, m := range d.Methods {
		d.Methods[i].Handler = r.unary("/"+d.ServiceName+"/"+m.MethodName, m.Handler, raftMsgs)
	}
	for i, s := range d.Streams {
		d.Streams[i].Handler = r.stream("/"+d.ServiceName+"/"+s.StreamName, s.Handler, raftMsgs)
	}
	r.srv.RegisterService(&d, impl)
}

func (r guardedRegistrar) unary(method string, h grpc.MethodHandler, raftMsgs bool) grpc.MethodHandler {
	need, ok := methodAccess[method]
	if !ok {
		need = accessPeer
	}
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (resp any, err error) {
		defer r.recover(method, &err)
		if err := r.n.auth.allow(ctx, need, method, r.peerPort); err != nil {
			return nil, r.refuse(method, err)
		}
		ctx = withPatience(ctx, r.n.cfg.ElectionTimeout)
		return h(srv, ctx, func(m any) error {
			if err := dec(m); err != nil {
				return err // gRPC has answered the call already
			}
			if err := decodeFailure(m); err != nil {
				return undecodable(method, err)
			}
			if more := batchAccess(m); more > need {
				if err := r.n.auth.allow(ctx, more, method, r.peerPort); err != nil {
					return r.refuse(method, err)
				}
			}
			if raftMsgs {
				return wireStatus(validateRaftRequest(m, true))
			}
			return nil
		}, ic)
	}
}

func (r guardedRegistrar) stream(method string, h grpc.StreamHandler, raftMsgs bool) grpc.StreamHandler {
	need, ok := methodAccess[method]
	if !ok {
		need = accessPeer
	}
	return func(srv any, ss grpc.ServerStream) (err error) {
		defer r.recover(method, &err)
		if err := r.n.auth.allow(ss.Context(), need, method, r.peerPort); err != nil {
			return r.refuse(method, err)
		}
		ctx := withPatience(ss.Context(), r.n.cfg.ElectionTimeout)
		return h(srv, &guardedStream{ServerStream: ss, ctx: ctx, method: method, raftMsgs: raftMsgs})
	}
}

// refuse logs a refused call (at debug level: a stranger must not be able
// to flood the logs) and returns its answer.
func (r guardedRegistrar) refuse(method string, err error) error {
	r.n.log.Debug("call refused", "method", method, "err", err)
	return wireStatus(err)
}

// recover turns a panic in a handler into an Internal error for the
// caller and a log line with the stack for the operator.
func (r guardedRegistrar) recover(method string, err *error) {
	if p := recover(); p != nil {
		r.n.log.Error("recovered from a panic while serving a request", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "skiff: internal error serving %s (the node logged it)", method)
	}
}

// guardedStream applies the same checks to each message a stream receives.
type guardedStream struct {
	grpc.ServerStream
	ctx      context.Context
	method   string
	raftMsgs bool
	received int
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := decodeFailure(m); err != nil {
		return undecodable(s.method, err)
	}
	s.received++
	if s.raftMsgs {
		return wireStatus(validateRaftRequest(m, s.received == 1))
	}
	return nil
}

// undecodable is the answer to a request that did not decode.
func undecodable(method string, err error) error {
	return wireStatus(fmt.Errorf("%w: malformed %s request: %v", ErrInvalidArgument, method, err))
}

// protoCodec is the name gRPC registers its protobuf codec under.
const protoCodec = "proto"

// lenientCodec is the server's codec. gRPC answers a message its codec
// cannot decode with codes.Internal itself, before any handler can choose
// the answer; so this codec never fails. It records the failure for the
// message instead, and the guard, which checks every message it lets
// through, answers ErrInvalidArgument.
type lenientCodec struct{ encoding.CodecV2 }

// undecoded holds, for each message the codec failed to decode, the
// error, until the guard takes it.
var undecoded sync.Map

func (c lenientCodec) Unmarshal(data mem.BufferSlice, m any) error {
	if err := c.CodecV2.Unmarshal(data, m); err != nil {
		undecoded.Store(m, err)
	}
	return nil
}

// decodeFailure returns the error the codec met decoding m, if any.
func decodeFailure(m any) error {
	if err, ok := undecoded.LoadAndDelete(m); ok {
		return err.(error)
	}
	return nil
}

// wireStatus converts an error for the wire without a leader hint.
func wireStatus(err error) error { return toStatus(err, "") }
