package skiff_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/skifftest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// keysOf returns every key and value of kv.
func keysOf(t testing.TB, kv skiff.KV) map[string]string {
	t.Helper()
	res, err := kv.List(testCtx(t), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := map[string]string{}
	for _, e := range res.KVs {
		out[e.Key] = string(e.Value)
	}
	return out
}

func sameKeys(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		g, w := sortedKeys(got), sortedKeys(want)
		t.Fatalf("%s: keys = %v, want %v", what, g, w)
	}
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A backup taken through a client dialed to one follower equals the
// node's own backup, and a restore through it replaces the cluster's
// state with exactly the backup's keys, on every member.
func TestClientBackupRestore(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	f := follower(t, []*skiff.Node{c.Node(0), c.Node(1), c.Node(2)})
	cl := c.Client([]int{f})
	want := putAll(t, cl, "app", 50)

	var remote bytes.Buffer
	if err := cl.Backup(ctx, &remote); err != nil {
		t.Fatalf("Client.Backup: %v", err)
	}
	var local bytes.Buffer
	if err := c.Node(f).Backup(ctx, &local); err != nil {
		t.Fatalf("Node.Backup: %v", err)
	}
	if !bytes.Equal(remote.Bytes(), local.Bytes()) {
		t.Fatalf("Client.Backup gave %d bytes that differ from Node.Backup's %d", remote.Len(), local.Len())
	}

	putAll(t, cl, "later", 5)
	if err := cl.Delete(ctx, "app/00007"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Restore(ctx, bytes.NewReader(remote.Bytes())); err != nil {
		t.Fatalf("Client.Restore: %v", err)
	}
	sameKeys(t, "after Restore", keysOf(t, cl), want)
	for i := 0; i < c.Len(); i++ {
		eventually(t, 10*time.Second, func() error {
			if got := keysOf(t, c.Node(i)); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("node %d holds %d keys, want %d", i, len(got), len(want))
			}
			return nil
		})
	}
	if _, err := cl.Put(ctx, "after/restore", []byte("x")); err != nil {
		t.Fatalf("Put after Restore: %v", err)
	}
}

// A damaged or truncated backup is refused whole, and nothing changes; a
// reader that cannot seek still restores when nothing goes wrong.
func TestClientRestoreChecksFirst(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	putAll(t, cl, "old", 20)
	var backup bytes.Buffer
	if err := cl.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	b := backup.Bytes()
	putAll(t, cl, "new", 3)
	now := keysOf(t, cl)
	flipped := bytes.Clone(b)
	flipped[len(flipped)/2] ^= 0x40
	for name, data := range map[string][]byte{"flipped": flipped, "truncated": b[:len(b)-3], "empty": nil, "garbage": []byte("not a backup")} {
		err := cl.Restore(ctx, bytes.NewReader(data))
		wantErr(t, "Restore of a "+name+" backup", err, skiff.ErrCorrupt)
		sameKeys(t, "after refusing a "+name+" backup", keysOf(t, cl), now)
	}
	// io.MultiReader hides the Seek method.
	if err := cl.Restore(ctx, io.MultiReader(bytes.NewReader(b[:7]), bytes.NewReader(b[7:]))); err != nil {
		t.Fatalf("Restore from a reader that cannot seek: %v", err)
	}
	if got := keysOf(t, cl); len(got) != 20 {
		t.Fatalf("after Restore: %d keys, want 20", len(got))
	}
}

// moveLeader is a backup reader whose first Read moves leadership away
// from the node the restore was sent to, so that node refuses the restore
// once it has read it all, and the client must send it again.
type moveLeader struct {
	*bytes.Reader
	c       *skifftest.Cluster
	moved   bool
	err     error
	rewound int // seeks back to the start
}

func (m *moveLeader) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		m.rewound++
	}
	return m.Reader.Seek(off, whence)
}

func (m *moveLeader) Read(p []byte) (int, error) {
	if !m.moved {
		m.moved = true
		m.err = m.c.Leader().TransferLeadership(context.Background(), "")
	}
	return m.Reader.Read(p)
}

func TestClientRestoreFollowsLeaderMove(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	want := putAll(t, cl, "k", 10)
	var backup bytes.Buffer
	if err := cl.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	putAll(t, cl, "extra", 3)
	r := &moveLeader{Reader: bytes.NewReader(backup.Bytes()), c: c}
	if err := cl.Restore(ctx, r); err != nil {
		t.Fatalf("Restore across a leadership move: %v", err)
	}
	if r.err != nil {
		t.Fatalf("TransferLeadership: %v", r.err)
	}
	if r.rewound == 0 {
		t.Fatalf("Restore never sent the backup again after leadership moved")
	}
	sameKeys(t, "after Restore", keysOf(t, cl), want)
}

// rawCluster dials node i of c with plain gRPC, no skiff client.
func rawCluster(t testing.TB, c *skifftest.Cluster, i int) skiffpb.ClusterClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+c.Addr(i),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(c.Dialer()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return skiffpb.NewClusterClient(cc)
}

func reasonOf(err error) (string, map[string]string) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason, info.Metadata
		}
	}
	return "", nil
}

// followerRefusesRestore checks that node f refuses a restore without
// sending headers, naming leader.
func followerRefusesRestore(t *testing.T, c *skifftest.Cluster, f int, leader string) error {
	st, err := rawCluster(t, c, f).Restore(testCtx(t))
	if err != nil {
		return err
	}
	if md, err := st.Header(); err == nil && md != nil {
		t.Fatalf("a follower sent restore headers: %v", md)
	}
	_, err = st.CloseAndRecv()
	if reason, meta := reasonOf(err); reason != "NOT_LEADER" || meta["leader"] != leader {
		return fmt.Errorf("Restore on a follower: err = %v (reason %q, %v), want NOT_LEADER naming %s", err, reason, meta, leader)
	}
	return nil
}

// leaderRefusesLargeChunk checks that leader l refuses a 5 MiB chunk.
func leaderRefusesLargeChunk(t *testing.T, c *skifftest.Cluster, l int) error {
	st, err := rawCluster(t, c, l).Restore(testCtx(t))
	if err != nil {
		return err
	}
	if err := st.Send(&skiffpb.RestoreChunk{Data: make([]byte, 5<<20)}); err != nil && err != io.EOF {
		return err
	}
	if _, err = st.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("Restore with a 5 MiB chunk: err = %v, want InvalidArgument", err)
	}
	return nil
}

// On the wire: a follower refuses a restore before it reads a chunk,
// naming the leader; the leader refuses a chunk over the limit; a backup
// comes in chunks of at most 1 MiB, a large value included.
func TestBackupRestoreWire(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.MaxValueSize = 2 << 20
		// skifftest's short timeouts let a leader lose its lease while a
		// large write replicates under the race detector.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	}})
	ctx := testCtx(t)
	big := bytes.Repeat([]byte("v"), 3<<19) // more than a chunk
	// A large write may outlast a leadership on a slow machine; a Put can
	// be repeated.
	eventually(t, 20*time.Second, func() error {
		_, err := c.Leader().Put(ctx, "big", big)
		return err
	})
	// Leadership may move under the race detector too: each check is
	// made against the leader of the moment, until one holds still.
	var f int
	eventually(t, 20*time.Second, func() error {
		l := c.WaitForLeader()
		f = (l + 1) % 3
		if err := followerRefusesRestore(t, c, f, c.Addr(l)); err != nil {
			return err
		}
		return leaderRefusesLargeChunk(t, c, l)
	})
	if kv, err := c.Leader().Get(ctx, "big"); err != nil || len(kv.Value) != len(big) {
		t.Fatalf("Get(big) after refused restores = %v, %v", kv, err)
	}

	bs, err := rawCluster(t, c, f).Backup(ctx, &skiffpb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for {
		chunk, err := bs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Backup stream: %v", err)
		}
		if len(chunk.Data) > 1<<20 {
			t.Fatalf("a backup chunk of %d bytes, want at most 1 MiB", len(chunk.Data))
		}
		total += len(chunk.Data)
	}
	if total < len(big) {
		t.Fatalf("backup of %d bytes, want more than the %d-byte value", total, len(big))
	}
}

// Backup and restore over the network are for admins.
func TestBackupRestoreNeedAdmin(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.ClusterSecret = testSecret
		cfg.ClientTokens = map[string]skiff.Role{"rw": skiff.RoleReadWrite, "adm": skiff.RoleAdmin}
	}})
	ctx := testCtx(t)
	rw := c.Client(nil, skiff.WithToken("rw"))
	adm := c.Client(nil, skiff.WithToken("adm"))
	want := putAll(t, rw, "k", 5)
	var b bytes.Buffer
	wantErr(t, "readwrite Backup", rw.Backup(ctx, &b), skiff.ErrPermissionDenied)
	if b.Len() != 0 {
		t.Fatalf("a refused Backup wrote %d bytes", b.Len())
	}
	if err := adm.Backup(ctx, &b); err != nil {
		t.Fatalf("admin Backup: %v", err)
	}
	putAll(t, rw, "more", 2)
	wantErr(t, "readwrite Restore", rw.Restore(ctx, bytes.NewReader(b.Bytes())), skiff.ErrPermissionDenied)
	if err := adm.Restore(ctx, bytes.NewReader(b.Bytes())); err != nil {
		t.Fatalf("admin Restore: %v", err)
	}
	sameKeys(t, "after admin Restore", keysOf(t, rw), want)
}
