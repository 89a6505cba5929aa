package skiff

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// A handler that panics answers Internal and the server keeps serving:
// the guard recovers what the service code did not.
func TestGuardRecoversPanics(t *testing.T) {
	n := &Node{log: slog.New(slog.DiscardHandler), auth: newAuthority(Config{})}
	n.srv = grpc.NewServer()
	calls := 0
	desc := grpc.ServiceDesc{
		ServiceName: "test.Panicky",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(emptypb.Empty)); err != nil {
				return nil, err
			}
			calls++
			if calls == 1 {
				var m map[string]int
				m["boom"]++ // nil map: panics
			}
			return new(emptypb.Empty), nil
		}}},
	}
	guardedRegistrar{srv: n.srv, n: n}.RegisterService(&desc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.srv.Serve(lis)
	defer n.srv.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = cc.Invoke(context.Background(), "/test.Panicky/Call", new(emptypb.Empty), new(emptypb.Empty))
	if status.Code(err) != codes.Internal {
		t.Fatalf("first call: err = %v, want Internal", err)
	}
	if err := cc.Invoke(context.Background(), "/test.Panicky/Call", new(emptypb.Empty), new(emptypb.Empty)); err != nil {
		t.Fatalf("second call: %v", err)
	}
}

// Requests hashicorp/raft would panic on are refused before they reach
// it; well-formed ones pass.
func TestValidateRaftRequest(t *testing.T) {
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a:1"}}})
	h := &raftpb.RPCHeader{ProtocolVersion: 3}
	entries := func(es ...*raftpb.Log) *raftpb.AppendEntriesRequest {
		return &raftpb.AppendEntriesRequest{RpcHeader: h, Term: 5, PrevLogEntry: 9, Entries: es}
	}
	cases := []struct {
		name string
		msg  any
		ok   bool
	}{
		{"heartbeat", &raftpb.AppendEntriesRequest{RpcHeader: h, Term: 5}, true},
		{"entries", entries(&raftpb.Log{Index: 10, Term: 5}, &raftpb.Log{Index: 11, Term: 5, Type: raftpb.Log_LOG_CONFIGURATION, Data: conf}), true},
		{"no header", &raftpb.AppendEntriesRequest{Term: 5}, false},
		{"unknown type", entries(&raftpb.Log{Index: 10, Term: 5, Type: 6}), false},
		{"bad configuration", entries(&raftpb.Log{Index: 10, Term: 5, Type: raftpb.Log_LOG_CONFIGURATION, Data: []byte{0xc1}}), false},
		{"gap", entries(&raftpb.Log{Index: 10, Term: 5}, &raftpb.Log{Index: 12, Term: 5}), false},
		{"not after prev", entries(&raftpb.Log{Index: 9, Term: 5}), false},
		{"future term", entries(&raftpb.Log{Index: 10, Term: 6}), false},
		{"vote", &raftpb.RequestVoteRequest{RpcHeader: h}, true},
		{"vote without header", &raftpb.RequestVoteRequest{}, false},
		{"snapshot", &raftpb.InstallSnapshotRequest{RpcHeader: h, SnapshotVersion: 1, Configuration: conf}, true},
		{"snapshot with bad configuration", &raftpb.InstallSnapshotRequest{RpcHeader: h, SnapshotVersion: 1, Configuration: []byte("x")}, false},
	}
	for _, tc := range cases {
		err := validateRaftRequest(tc.msg, true)
		if (err == nil) != tc.ok {
			t.Errorf("%s: validateRaftRequest = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v does not match ErrInvalidArgument", tc.name, err)
		}
	}
	// The data-only messages after a snapshot's first one carry no header.
	if err := validateRaftRequest(&raftpb.InstallSnapshotRequest{Data: []byte("x")}, false); err != nil {
		t.Errorf("snapshot data message: %v", err)
	}
}

// FuzzValidateRaftRequest feeds arbitrary bytes to the Raft transport's
// request types. Whatever validation lets through must survive what the
// transport's decoding and hashicorp/raft do with it without a panic.
func FuzzValidateRaftRequest(f *testing.F) {
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a:1"}}})
	seed := func(kind byte, m proto.Message) {
		b, _ := proto.Marshal(m)
		f.Add(kind, b)
	}
	h := &raftpb.RPCHeader{ProtocolVersion: 3, Id: []byte("a"), Addr: []byte("a:1")}
	seed(0, &raftpb.AppendEntriesRequest{RpcHeader: h, Term: 2, PrevLogEntry: 4, Entries: []*raftpb.Log{
		{Index: 5, Term: 2}, {Index: 6, Term: 2, Type: raftpb.Log_LOG_CONFIGURATION, Data: conf}}})
	seed(0, &raftpb.AppendEntriesRequest{})
	seed(1, &raftpb.RequestVoteRequest{RpcHeader: h, Term: 3})
	seed(2, &raftpb.RequestPreVoteRequest{RpcHeader: h, Term: 3})
	seed(3, &raftpb.TimeoutNowRequest{RpcHeader: h})
	seed(4, &raftpb.InstallSnapshotRequest{RpcHeader: h, SnapshotVersion: 1, Configuration: conf, Size: 10})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var m proto.Message
		switch kind % 5 {
		case 0:
			m = new(raftpb.AppendEntriesRequest)
		case 1:
			m = new(raftpb.RequestVoteRequest)
		case 2:
			m = new(raftpb.RequestPreVoteRequest)
		case 3:
			m = new(raftpb.TimeoutNowRequest)
		default:
			m = new(raftpb.InstallSnapshotRequest)
		}
		if proto.Unmarshal(data, m) != nil || validateRaftRequest(m, true) != nil {
			return
		}
		decodeAsTransport(m)
	})
}

// decodeAsTransport does what Jille/raft-grpc-transport's decoding and
// hashicorp/raft do with a request that could panic: dereference the
// header, map each entry type (the transport panics on an unknown one),
// decode configurations.
func decodeAsTransport(m proto.Message) {
	type withHeader interface{ GetRpcHeader() *raftpb.RPCHeader }
	_ = m.(withHeader).GetRpcHeader().ProtocolVersion
	switch r := m.(type) {
	case *raftpb.AppendEntriesRequest:
		for _, e := range r.Entries {
			if _, ok := raftpb.Log_LogType_name[int32(e.Type)]; !ok {
				panic("invalid LogType")
			}
			_ = e.AppendedAt.AsTime()
			if e.Type == raftpb.Log_LOG_CONFIGURATION {
				raft.DecodeConfiguration(e.Data)
			}
		}
	case *raftpb.InstallSnapshotRequest:
		if r.SnapshotVersion > 0 {
			raft.DecodeConfiguration(r.Configuration)
		}
	}
}
