package skiff_test

import (
	"errors"
	"io"
	"testing"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawCodec sends and receives message bytes as they are, so that a test
// can put anything on the wire: garbage, unknown fields, empty messages.
// It names itself "proto" so that the server decodes with its usual codec.
type rawCodec struct{}

type rawMsg struct{ b []byte }

var _ encoding.Codec = rawCodec{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*rawMsg); ok {
		return m.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(*rawMsg); ok {
		m.b = append([]byte(nil), data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// rawConn dials a node the way an attacker would: no skiff client, no
// credentials, any bytes.
func rawConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// stillServes fails the test unless the node accepts and reads back a
// write.
func stillServes(t *testing.T, n *skiff.Node, after string) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := n.Put(ctx, "alive", []byte(after)); err != nil {
		t.Fatalf("after %s: Put: %v", after, err)
	}
	if kv, err := n.Get(ctx, "alive"); err != nil || string(kv.Value) != after {
		t.Fatalf("after %s: Get = %v, %v", after, kv, err)
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("%s: err = %v, want code %v", what, err, want)
	}
}

var header = &raftpb.RPCHeader{ProtocolVersion: 3, Id: []byte("intruder"), Addr: []byte("127.0.0.1:1")}

// Each of these requests used to panic in the Raft transport's decoding,
// or in hashicorp/raft itself, and take the whole process down. Now each
// is refused with InvalidArgument and the node carries on.
func TestMalformedRaftRequestsAreRefused(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	cc := rawConn(t, n.Addr())
	ctx := testCtx(t)
	unary := []struct {
		name   string
		method string
		req    proto.Message
	}{
		{"empty TimeoutNow", "TimeoutNow", &raftpb.TimeoutNowRequest{}},
		{"empty AppendEntries", "AppendEntries", &raftpb.AppendEntriesRequest{}},
		{"empty RequestVote", "RequestVote", &raftpb.RequestVoteRequest{}},
		{"empty RequestPreVote", "RequestPreVote", &raftpb.RequestPreVoteRequest{}},
		{"unknown entry type", "AppendEntries", &raftpb.AppendEntriesRequest{RpcHeader: header, Term: 1 << 30,
			Entries: []*raftpb.Log{{Index: 1, Term: 1, Type: 99}}}},
		{"undecodable configuration", "AppendEntries", &raftpb.AppendEntriesRequest{RpcHeader: header, Term: 1 << 30,
			Entries: []*raftpb.Log{{Index: 1 << 40, Term: 1, Type: raftpb.Log_LOG_CONFIGURATION, Data: []byte("garbage")}}}},
	}
	for _, tc := range unary {
		err := cc.Invoke(ctx, "/RaftTransport/"+tc.method, tc.req, new(rawMsg))
		wantCode(t, tc.name, err, codes.InvalidArgument)
		stillServes(t, n, tc.name)
	}

	pipe, err := raftpb.NewRaftTransportClient(cc).AppendEntriesPipeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipe.Send(&raftpb.AppendEntriesRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = pipe.Recv()
	wantCode(t, "empty pipelined AppendEntries", err, codes.InvalidArgument)
	stillServes(t, n, "empty pipelined AppendEntries")

	snap, err := raftpb.NewRaftTransportClient(cc).InstallSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Send(&raftpb.InstallSnapshotRequest{SnapshotVersion: 1}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, err = snap.CloseAndRecv()
	wantCode(t, "empty InstallSnapshot", err, codes.InvalidArgument)
	stillServes(t, n, "empty InstallSnapshot")
}

// Bytes that are not a protobuf message get a typed InvalidArgument on
// every method, not gRPC's Internal.
func TestUndecodableRequestsAreInvalidArgument(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	cc := rawConn(t, n.Addr())
	ctx := testCtx(t)
	garbage := &rawMsg{b: []byte{0xff, 0xff, 0xff, 0xff, 0x0f}}
	methods := []string{
		"/skiff.v1.KV/Put", "/skiff.v1.KV/Get", "/skiff.v1.KV/Batch", "/skiff.v1.KV/List",
		"/skiff.v1.Cluster/AddMember", "/skiff.v1.Cluster/Status",
		"/RaftTransport/AppendEntries", "/RaftTransport/RequestVote",
	}
	for _, m := range methods {
		err := cc.Invoke(ctx, m, garbage, new(rawMsg))
		wantCode(t, m, err, codes.InvalidArgument)
		if m[1] == 's' && !errors.Is(skiff.ErrorFromStatus(err), skiff.ErrInvalidArgument) {
			t.Fatalf("%s: err = %v, want it to match ErrInvalidArgument", m, err)
		}
	}
	stillServes(t, n, "garbage requests")
}

// Conditions that mean nothing used to be accepted (a delete on condition
// that the key is absent, a revision with no revision condition); they
// are refused before anything is proposed.
func TestMeaninglessConditionsAreRefused(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	cc := rawConn(t, n.Addr())
	ctx := testCtx(t)
	if _, err := n.Get(ctx, "settled"); !errors.Is(err, skiff.ErrNotFound) { // the first commit is behind us
		t.Fatal(err)
	}
	before := n.Status().CommitIndex
	cases := map[string]struct {
		method string
		req    proto.Message
	}{
		"delete if absent": {"/skiff.v1.KV/Delete", &skiffpb.DeleteRequest{Key: "k", Condition: &skiffpb.Condition{Kind: skiffpb.Condition_ABSENT}}},
		"put, no condition, a revision": {"/skiff.v1.KV/Put", &skiffpb.PutRequest{Key: "k", Value: []byte("v"),
			Condition: &skiffpb.Condition{Kind: skiffpb.Condition_NONE, ModRevision: 7}}},
		"create with a revision": {"/skiff.v1.KV/Put", &skiffpb.PutRequest{Key: "k", Value: []byte("v"),
			Condition: &skiffpb.Condition{Kind: skiffpb.Condition_ABSENT, ModRevision: 7}}},
		"compare with revision 0": {"/skiff.v1.KV/Put", &skiffpb.PutRequest{Key: "k", Value: []byte("v"),
			Condition: &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION}}},
		"unknown condition": {"/skiff.v1.KV/Delete", &skiffpb.DeleteRequest{Key: "k", Condition: &skiffpb.Condition{Kind: 9}}},
	}
	for name, c := range cases {
		err := cc.Invoke(ctx, c.method, c.req, new(rawMsg))
		if !errors.Is(skiff.ErrorFromStatus(err), skiff.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	if after := n.Status().CommitIndex; after != before {
		t.Fatalf("refused writes moved the commit index from %d to %d", before, after)
	}
}
