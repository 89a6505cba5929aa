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
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// listen opens the node's port and creates its gRPC server.
func (n *Node) listen() error {
	lis := n.cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", n.cfg.BindAddr); err != nil {
			return fmt.Errorf("open node: %w", err)
		}
	}
	n.lis = lis
	n.addr = n.cfg.AdvertiseAddr
	if n.addr == "" {
		n.addr = lis.Addr().String()
		if host, _, err := net.SplitHostPort(n.addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				return fmt.Errorf("%w: BindAddr %s is a wildcard address; set AdvertiseAddr", ErrConfig, n.addr)
			}
		}
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(wireMessageLimit), grpc.MaxSendMsgSize(wireMessageLimit),
		grpc.MaxConcurrentStreams(maxStreams(n.cfg.MaxWatches)),
		experimental.BufferPool(bufpool.Shared),
		grpc.ForceServerCodecV2(lenientCodec{encoding.GetCodecV2(protoCodec)}),
	}
	if n.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(n.cfg.TLS)))
	}
	n.srv = grpc.NewServer(opts...)
	svc := &service{n: n}
	reg := n.registrar()
	skiffpb.RegisterKVServer(reg, svc)
	skiffpb.RegisterClusterServer(reg, svc)
	return nil
}

// registrar registers services on the node's server behind the guard.
func (n *Node) registrar() grpc.ServiceRegistrar { return guardedRegistrar{srv: n.srv, n: n} }

// guardedRegistrar wraps every handler of the services registered through
// it, so that each request passes the same checks before any service code
// sees it:
//
//   - a panic while serving is recovered, logged with its stack, and
//     answered with codes.Internal; the node keeps serving;
//   - a request that does not decode is ErrInvalidArgument, not gRPC's
//     codes.Internal;
//   - requests to the Raft transport are validated (validateRaftRequest).
//
// Wrapping the handlers, rather than adding interceptors, also covers the
// decoding, which gRPC runs before a unary interceptor is called.
type guardedRegistrar struct {
	srv *grpc.Server
	n   *Node
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
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (resp any, err error) {
		defer r.recover(method, &err)
		return h(srv, ctx, func(m any) error {
			if err := dec(m); err != nil {
				return err // gRPC has answered the call already
			}
			if err := decodeFailure(m); err != nil {
				return undecodable(method, err)
			}
			if raftMsgs {
				return wireStatus(validateRaftRequest(m, true))
			}
			return nil
		}, ic)
	}
}

func (r guardedRegistrar) stream(method string, h grpc.StreamHandler, raftMsgs bool) grpc.StreamHandler {
	return func(srv any, ss grpc.ServerStream) (err error) {
		defer r.recover(method, &err)
		return h(srv, &guardedStream{ServerStream: ss, method: method, raftMsgs: raftMsgs})
	}
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
	method   string
	raftMsgs bool
	received int
}

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
