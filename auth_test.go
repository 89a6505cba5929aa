package skiff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/skifftest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

const testSecret = "correct horse battery staple"

// A node that authenticates no peers must not listen beyond loopback
// unless the Config insists, and then it says so.
func TestOpenPortIsRefusedBeyondLoopback(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.BindAddr = "0.0.0.0:0"
	cfg.AdvertiseAddr = "192.0.2.10:7400"
	_, err := skiff.Open(testCtx(t), cfg)
	if !errors.Is(err, skiff.ErrConfig) || !strings.Contains(err.Error(), "ClusterSecret") {
		t.Fatalf("Open on 0.0.0.0 without peer authentication: err = %v, want ErrConfig saying what to set", err)
	}

	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.InsecureOpen = true
	n, err := skiff.Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open with InsecureOpen: %v", err)
	}
	n.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "open port") {
		t.Fatalf("InsecureOpen logged no warning:\n%s", logs.String())
	}

	cfg = testConfig(t.TempDir())
	cfg.BindAddr = "0.0.0.0:0"
	cfg.AdvertiseAddr = "192.0.2.10:7400"
	cfg.ClusterSecret = testSecret
	n, err = skiff.Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open with a cluster secret: %v", err)
	}
	n.Close()
}

func TestTrustConfigIsValidated(t *testing.T) {
	cases := map[string]func(*skiff.Config){
		"short secret":        func(c *skiff.Config) { c.ClusterSecret = "short" },
		"roles without peers": func(c *skiff.Config) { c.ClientTokens = map[string]skiff.Role{"t": skiff.RoleAdmin} },
		"names without mTLS":  func(c *skiff.Config) { c.PeerNames = []string{"a.example"} },
		"unknown role": func(c *skiff.Config) {
			c.ClusterSecret = testSecret
			c.ClientTokens = map[string]skiff.Role{"t": "root"}
		},
		"empty token": func(c *skiff.Config) {
			c.ClusterSecret = testSecret
			c.ClientTokens = map[string]skiff.Role{"": skiff.RoleAdmin}
		},
		"unknown anonymous":    func(c *skiff.Config) { c.ClusterSecret = testSecret; c.AnonymousRole = "guest" },
		"anonymous with peers": func(c *skiff.Config) { c.AnonymousRole = skiff.RoleReadOnly },
	}
	for name, change := range cases {
		cfg := testConfig(t.TempDir())
		change(&cfg)
		if _, err := skiff.Open(testCtx(t), cfg); !errors.Is(err, skiff.ErrConfig) {
			t.Errorf("%s: Open = %v, want ErrConfig", name, err)
		}
	}
}

// withSecret returns a context whose calls carry the cluster secret, as a
// peer's do.
func withSecret(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "skiff-cluster-secret", secret)
}

// Without the cluster secret a caller used to be able to forge Raft
// messages, add a voter (a one-node cluster then lost its quorum for
// good), remove members and move leadership. Every one of these is now
// refused, and nothing changes.
func TestPeersNeedTheClusterSecret(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ClusterSecret = testSecret
	n := openNode(t, cfg)
	idx, term := skiff.LastLog(n)
	cc := rawConn(t, n.Addr())
	calls := []struct {
		method string
		req    any
	}{
		{"/RaftTransport/AppendEntries", &raftpb.AppendEntriesRequest{RpcHeader: header, Term: term + 1, Leader: []byte("127.0.0.1:1"),
			PrevLogEntry: idx, PrevLogTerm: term, LeaderCommitIndex: idx + 1,
			Entries: []*raftpb.Log{{Index: idx + 1, Term: term + 1, Type: raftpb.Log_LOG_COMMAND}}}},
		{"/RaftTransport/RequestVote", &raftpb.RequestVoteRequest{RpcHeader: header, Term: term + 1, LastLogIndex: idx + 1, LastLogTerm: term + 1}},
		{"/RaftTransport/TimeoutNow", &raftpb.TimeoutNowRequest{RpcHeader: header}},
		{"/skiff.v1.Cluster/AddMember", &skiffpb.AddMemberRequest{Id: "bogus", Address: "192.0.2.1:7400", Voter: true}},
		{"/skiff.v1.Cluster/RemoveMember", &skiffpb.RemoveMemberRequest{Id: n.ID()}},
		{"/skiff.v1.Cluster/TransferLeadership", &skiffpb.TransferLeadershipRequest{}},
		{"/skiff.v1.Cluster/ReadIndex", &skiffpb.ReadIndexRequest{}},
		{"/skiff.v1.KV/Put", &skiffpb.PutRequest{Key: "k", Value: []byte("forged")}},
		{"/skiff.v1.Cluster/Status", &skiffpb.StatusRequest{}},
	}
	for _, secret := range []string{"", "wrong secret, long enough"} {
		ctx := testCtx(t)
		if secret != "" {
			ctx = withSecret(ctx, secret)
		}
		for _, c := range calls {
			err := cc.Invoke(ctx, c.method, c.req, new(rawMsg))
			wantCode(t, c.method, err, codes.PermissionDenied)
			if !errors.Is(skiff.ErrorFromStatus(err), skiff.ErrPermissionDenied) {
				t.Fatalf("%s: %v does not match ErrPermissionDenied", c.method, err)
			}
		}
	}
	// A forwarded request must come from a member too.
	fctx := metadata.AppendToOutgoingContext(testCtx(t), "skiff-forwarded", "x")
	err := cc.Invoke(fctx, "/skiff.v1.KV/Put", &skiffpb.PutRequest{Key: "k", Value: []byte("v")}, new(rawMsg))
	wantCode(t, "forwarded Put", err, codes.PermissionDenied)

	if !n.IsLeader() {
		t.Fatal("the node lost leadership to refused calls")
	}
	if ms := members(t, n); len(ms) != 1 {
		t.Fatalf("members after refused calls = %v", ms)
	}
	if _, err := n.Get(testCtx(t), "k"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(k) after a refused Put = %v, want ErrNotFound", err)
	}
	// With the secret, a caller is a member.
	err = cc.Invoke(withSecret(testCtx(t), testSecret), "/skiff.v1.Cluster/Status", &skiffpb.StatusRequest{}, new(rawMsg))
	if err != nil {
		t.Fatalf("Status with the secret: %v", err)
	}
}

// Members with the same secret form a cluster, forward to each other and
// take joins; a node with another secret cannot join.
func TestClusterWithSecret(t *testing.T) {
	nodes, _ := staticCluster(t, 3, func(i int, cfg *skiff.Config) { cfg.ClusterSecret = testSecret })
	if _, err := nodes[0].WaitForLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var follower *skiff.Node
	for _, n := range nodes {
		if !n.IsLeader() {
			follower = n
		}
	}
	want := putAll(t, follower, "fwd", 5) // forwarded to the leader
	checkAll(t, follower, want)

	cfg := testConfig(t.TempDir())
	cfg.Join = []string{nodes[0].Addr()}
	cfg.ClusterSecret = "another secret of enough bytes"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := skiff.Open(ctx, cfg); !errors.Is(err, skiff.ErrPermissionDenied) {
		t.Fatalf("join with the wrong secret: err = %v, want ErrPermissionDenied", err)
	}
	cfg = testConfig(t.TempDir())
	cfg.Join = []string{follower.Addr()}
	cfg.ClusterSecret = testSecret
	joined := openNode(t, cfg)
	checkAll(t, joined, want)
}

// Network clients get the role their token names; a refused call changes
// nothing.
func TestClientRoles(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.ClusterSecret = testSecret
		cfg.ClientTokens = map[string]skiff.Role{"ro": skiff.RoleReadOnly, "rw": skiff.RoleReadWrite, "adm": skiff.RoleAdmin}
	}})
	ctx := testCtx(t)
	dial := func(opts ...skiff.ClientOption) (*skiff.Client, error) {
		return skiff.Dial(ctx, []string{c.Addr(0), c.Addr(1), c.Addr(2)}, append(opts, skiff.WithDialer(c.Dialer()))...)
	}
	for name, opts := range map[string][]skiff.ClientOption{"no token": nil, "unknown token": {skiff.WithToken("guess")}} {
		if _, err := dial(opts...); !errors.Is(err, skiff.ErrPermissionDenied) {
			t.Fatalf("Dial with %s: err = %v, want ErrPermissionDenied", name, err)
		}
	}
	rw := c.Client(nil, skiff.WithToken("rw"))
	ro := c.Client(nil, skiff.WithToken("ro"))
	adm := c.Client(nil, skiff.WithToken("adm"))
	if _, err := rw.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatalf("readwrite Put: %v", err)
	}
	if kv, err := ro.Get(ctx, "k"); err != nil || string(kv.Value) != "v1" {
		t.Fatalf("readonly Get = %v, %v", kv, err)
	}
	w, err := ro.Watch(ctx, "")
	if err != nil {
		t.Fatalf("readonly Watch: %v", err)
	}
	w.Close()
	refused := map[string]error{}
	_, refused["readonly Put"] = ro.Put(ctx, "k", []byte("v2"))
	refused["readonly Delete"] = ro.Delete(ctx, "k")
	refused["readwrite AddNonvoter"] = rw.AddNonvoter(ctx, "bogus", "192.0.2.1:7400")
	refused["readwrite RemoveServer"] = rw.RemoveServer(ctx, c.Node(0).ID())
	refused["readwrite TransferLeadership"] = rw.TransferLeadership(ctx, "")
	for what, err := range refused {
		if !errors.Is(err, skiff.ErrPermissionDenied) {
			t.Errorf("%s: err = %v, want ErrPermissionDenied", what, err)
		}
	}
	if kv, err := rw.Get(ctx, "k"); err != nil || string(kv.Value) != "v1" {
		t.Fatalf("Get after refused writes = %v, %v", kv, err)
	}
	if ms, err := rw.Members(ctx); err != nil || len(ms) != 3 {
		t.Fatalf("Members after refused changes = %v, %v", ms, err)
	}
	if err := adm.AddNonvoter(ctx, "extra", "node-9:7400"); err != nil {
		t.Fatalf("admin AddNonvoter: %v", err)
	}
	if err := adm.RemoveServer(ctx, "extra"); err != nil {
		t.Fatalf("admin RemoveServer: %v", err)
	}
}

// AnonymousRole lets clients without credentials read.
func TestAnonymousRole(t *testing.T) {
	c := skifftest.NewCluster(t, 1, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.ClusterSecret = testSecret
		cfg.AnonymousRole = skiff.RoleReadOnly
	}})
	cl := c.Client(nil)
	ctx := testCtx(t)
	if _, err := c.Node(0).Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, "k"); err != nil {
		t.Fatalf("anonymous Get: %v", err)
	}
	if _, err := cl.Put(ctx, "k", []byte("w")); !errors.Is(err, skiff.ErrPermissionDenied) {
		t.Fatalf("anonymous Put: err = %v, want ErrPermissionDenied", err)
	}
}

// With a port of their own, clients use it and only it: the peer port
// refuses them, and leader hints name client ports.
func TestSeparateClientPort(t *testing.T) {
	clientAddrs := make([]string, 3)
	nodes, _ := staticCluster(t, 3, func(i int, cfg *skiff.Config) {
		cfg.ClusterSecret = testSecret
		cfg.ClientTokens = map[string]skiff.Role{"rw": skiff.RoleReadWrite}
		cfg.ClientBindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		clientAddrs[i] = cfg.ClientBindAddr
	})
	ctx := testCtx(t)
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if st := n.Status(); st.ClientAddress != clientAddrs[i] || n.ClientAddr() != clientAddrs[i] || st.Address == st.ClientAddress {
			t.Fatalf("Status() = %+v, want client address %s", st, clientAddrs[i])
		}
	}
	if _, err := skiff.Dial(ctx, []string{nodes[0].Addr()}, skiff.WithToken("rw")); !errors.Is(err, skiff.ErrPermissionDenied) {
		t.Fatalf("Dial on the peer port: err = %v, want ErrPermissionDenied", err)
	}
	cl, err := skiff.Dial(ctx, clientAddrs, skiff.WithToken("rw"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := putAll(t, cl, "c", 10)
	checkAll(t, cl, want)
	var leaderClientAddr string
	for i, n := range nodes {
		if n.IsLeader() {
			leaderClientAddr = clientAddrs[i]
		}
	}
	eventually(t, 10*time.Second, func() error {
		_, addr, err := cl.Leader(ctx)
		if err != nil || addr != leaderClientAddr {
			return fmt.Errorf("Leader() = %q, %v, want %s", addr, err, leaderClientAddr)
		}
		return nil
	})
}
