package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// onlyTo wraps a dialer so it reaches the given address and nothing else.
func onlyTo(d func(context.Context, string) (net.Conn, error), allowed string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if addr != allowed {
			return nil, fmt.Errorf("test network: %s is not reachable", addr)
		}
		return d(ctx, addr)
	}
}

func TestClientThroughFollowerOnly(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	l := c.WaitForLeader()
	f := (l + 1) % 3
	cl := c.Client([]int{f}, skiff.WithDialer(onlyTo(c.Dialer(), c.Addr(f))))

	rev, err := cl.Put(ctx, "svc/a", []byte("1"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if kv, err := cl.Get(ctx, "svc/a"); err != nil || string(kv.Value) != "1" || kv.ModRevision != rev {
		t.Fatalf("Get = %+v, %v; want 1@%d", kv, err, rev)
	}
	if _, err := cl.Create(ctx, "svc/a", nil); !errors.Is(err, skiff.ErrExists) {
		t.Fatalf("Create(existing): err = %v, want ErrExists", err)
	}
	rev2, err := cl.CompareAndSwap(ctx, "svc/a", []byte("2"), rev)
	if err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	if _, err := cl.Create(ctx, "svc/b/c", []byte("3")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	res, err := cl.List(ctx, "svc")
	if err != nil || !reflect.DeepEqual(keys(res), []string{"svc/a", "svc/b/c"}) {
		t.Fatalf("List(svc) = %v, %v", res, err)
	}
	ch, err := cl.Children(ctx, "svc")
	if want := []skiff.Child{{Name: "a", IsKey: true}, {Name: "b", HasChildren: true}}; err != nil || !reflect.DeepEqual(ch, want) {
		t.Fatalf("Children(svc) = %+v, %v; want %+v", ch, err, want)
	}
	if ps, err := cl.Prefixes(ctx, skiff.Stale()); err != nil || !reflect.DeepEqual(ps, []string{"svc"}) {
		t.Fatalf("Prefixes = %v, %v", ps, err)
	}
	if err := cl.DeleteIf(ctx, "svc/a", rev); !errors.Is(err, skiff.ErrRevisionMismatch) {
		t.Fatalf("DeleteIf(old revision): err = %v, want ErrRevisionMismatch", err)
	}
	if err := cl.DeleteIf(ctx, "svc/a", rev2); err != nil {
		t.Fatalf("DeleteIf: %v", err)
	}
	if err := cl.Delete(ctx, "svc/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := cl.Get(ctx, "svc/a"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(deleted): err = %v, want ErrNotFound", err)
	}
	ms, err := cl.Members(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("Members = %v, %v", ms, err)
	}
	if id, _, err := cl.Leader(ctx); err != nil || id != c.Node(l).ID() {
		t.Fatalf("Leader = %q, %v; want %q", id, err, c.Node(l).ID())
	}
	// The leader's own node sees everything the client wrote.
	if res, err := c.Node(l).List(ctx, ""); err != nil || len(res.KVs) != 0 {
		t.Fatalf("leader List after deletes = %v, %v", res, err)
	}
}

func TestClientErrorsMatchTheNodes(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.MaxKeySize, cfg.MaxValueSize, cfg.QuotaBytes = 32, 64, 200
	}})
	ctx := testCtx(t)
	cl := c.Client(nil)
	node := c.Follower()
	type op func(kv skiff.KV) error
	long := string(make([]byte, 40))
	for i := range long {
		_ = i
	}
	cases := []struct {
		name string
		op   op
		want error
	}{
		{"not found", func(kv skiff.KV) error { _, err := kv.Get(ctx, "missing"); return err }, skiff.ErrNotFound},
		{"exists", func(kv skiff.KV) error { _, err := kv.Create(ctx, "x", nil); return err }, skiff.ErrExists},
		{"revision mismatch", func(kv skiff.KV) error { _, err := kv.CompareAndSwap(ctx, "x", nil, 999999); return err }, skiff.ErrRevisionMismatch},
		{"invalid key", func(kv skiff.KV) error { _, err := kv.Put(ctx, "a//b", nil); return err }, skiff.ErrInvalidKey},
		{"key too large", func(kv skiff.KV) error { _, err := kv.Put(ctx, fmt.Sprintf("%040d", 1), nil); return err }, skiff.ErrKeyTooLarge},
		{"value too large", func(kv skiff.KV) error { _, err := kv.Put(ctx, "v", make([]byte, 65)); return err }, skiff.ErrValueTooLarge},
		{"quota", func(kv skiff.KV) error {
			for i := 0; ; i++ {
				if _, err := kv.Put(ctx, fmt.Sprintf("q%d", i), make([]byte, 60)); err != nil {
					return err
				}
			}
		}, skiff.ErrQuotaExceeded},
		{"invalid argument", func(kv skiff.KV) error { return kv.DeleteIf(ctx, "x", 0) }, skiff.ErrInvalidArgument},
		{"bad limit", func(kv skiff.KV) error { _, err := kv.List(ctx, "", skiff.WithLimit(-2)); return err }, skiff.ErrInvalidArgument},
	}
	if _, err := node.Put(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, kv := range map[string]skiff.KV{"node": node, "client": cl} {
				if err := tc.op(kv); !errors.Is(err, tc.want) {
					t.Errorf("%s: err = %v, want %v", name, err, tc.want)
				}
			}
		})
	}
	if err := cl.RemoveServer(ctx, "nobody"); !errors.Is(err, skiff.ErrNotMember) {
		t.Errorf("RemoveServer(unknown): err = %v, want ErrNotMember", err)
	}
	if err := cl.AddVoter(ctx, "impostor", c.Addr(0)); !errors.Is(err, skiff.ErrMemberConflict) {
		t.Errorf("AddVoter(taken address): err = %v, want ErrMemberConflict", err)
	}
	cl.Close()
	if _, err := cl.Get(ctx, "x"); !errors.Is(err, skiff.ErrClosed) {
		t.Errorf("Get on closed client: err = %v, want ErrClosed", err)
	}
}

func TestClientFailsOverWhenLeaderStops(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	if _, err := cl.Put(ctx, "k", []byte("0")); err != nil {
		t.Fatal(err)
	}
	old := c.WaitForLeader()
	stopped := time.Now()
	c.Stop(old)
	var recovered time.Duration
	for i := 1; i <= 20; i++ {
		_, err := cl.Put(ctx, "k", []byte(fmt.Sprint(i)))
		if err != nil && !errors.Is(err, skiff.ErrIndeterminate) {
			t.Fatalf("Put %d after leader stop: %v", i, err)
		}
		if err == nil && recovered == 0 {
			recovered = time.Since(stopped)
		}
	}
	t.Logf("first write acknowledged %v after the leader stopped", recovered)
	if kv, err := cl.Get(ctx, "k"); err != nil || string(kv.Value) != "20" {
		t.Fatalf("Get(k) = %v, %v; want 20", kv, err)
	}
}

func TestClientAllNodesDown(t *testing.T) {
	// Nothing listens on these ports: Dial fails within its deadline.
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	start := time.Now()
	_, err := skiff.Dial(context.Background(), addrs, skiff.WithDialTimeout(time.Second))
	if !errors.Is(err, skiff.ErrUnavailable) {
		t.Fatalf("Dial to dead addresses: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Dial took %v with a 1s dial timeout", d)
	}

	// A connected client whose nodes all stop gets an error by its deadline.
	c := skifftest.NewCluster(t, 3, nil)
	cl := c.Client(nil)
	for i := 0; i < 3; i++ {
		c.Stop(i)
	}
	for _, op := range []func(context.Context) error{
		func(ctx context.Context) error { _, err := cl.Put(ctx, "k", nil); return err },
		func(ctx context.Context) error { _, err := cl.Get(ctx, "k"); return err },
		func(ctx context.Context) error { _, err := cl.Get(ctx, "k", skiff.Stale()); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := op(ctx)
		cancel()
		if !errors.Is(err, skiff.ErrUnavailable) && !errors.Is(err, skiff.ErrTimeout) {
			t.Fatalf("call with every node down: err = %v, want ErrUnavailable or ErrTimeout", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("call with every node down took %v, deadline 1s", d)
		}
	}
}

func TestClientReportsIndeterminateWrite(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	l := c.WaitForLeader()
	cl := c.Client([]int{l}, skiff.WithDialer(onlyTo(c.Dialer(), c.Addr(l))))
	if _, err := cl.Put(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The leader is cut off from its followers: it appends the write but
	// cannot commit it, and nobody can tell whether it ever will.
	c.Partition(l)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := cl.Put(ctx, "k", []byte("maybe"))
	if !errors.Is(err, skiff.ErrIndeterminate) {
		t.Fatalf("Put on a cut-off leader: err = %v, want ErrIndeterminate", err)
	}
}

func TestClientOverLoopback(t *testing.T) {
	ctx := testCtx(t)
	first := openNode(t, testConfig(t.TempDir()))
	nodes := []*skiff.Node{first}
	for i := 0; i < 2; i++ {
		cfg := testConfig(t.TempDir())
		cfg.Join = []string{first.Addr()}
		nodes = append(nodes, openNode(t, cfg))
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	cl, err := skiff.Dial(ctx, addrs)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer cl.Close()
	want := putAll(t, cl, "net", 30)
	checkAll(t, cl, want)
	checkAll(t, nodes[2], want)
	// Stop the leader process's node; the client carries on.
	for _, n := range nodes {
		if n.IsLeader() {
			n.Close()
		}
	}
	// A write in flight when the leader went away may be reported as
	// indeterminate; after that the client reaches the new leader.
	for i := 0; i < 10; i++ {
		k := fmt.Sprintf("after/%d", i)
		_, err := cl.Put(ctx, k, []byte("v"))
		if errors.Is(err, skiff.ErrIndeterminate) && i == 0 {
			_, err = cl.Put(ctx, k, []byte("v"))
		}
		if err != nil {
			t.Fatalf("Put(%q) after the leader stopped: %v", k, err)
		}
		want[k] = "v"
	}
	checkAll(t, cl, want)
	ms, err := cl.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	if len(ids) != 3 {
		t.Fatalf("Members = %v, want 3", ids)
	}
}

func TestClientConcurrentCallsKeepTheirOwnResults(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	const workers = 64
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		go func() {
			errs <- func() error {
				for i := 0; i < 10; i++ {
					key, val := fmt.Sprintf("conc/%d/%d", g, i), fmt.Sprintf("%d-%d", g, i)
					rev, err := cl.Put(ctx, key, []byte(val))
					if err != nil {
						return fmt.Errorf("Put(%q): %w", key, err)
					}
					kv, err := cl.Get(ctx, key)
					if err != nil || string(kv.Value) != val || kv.ModRevision != rev {
						return fmt.Errorf("Get(%q) = %v, %v; want %q@%d", key, kv, err, val, rev)
					}
					if _, err := cl.Create(ctx, key, nil); !errors.Is(err, skiff.ErrExists) {
						return fmt.Errorf("Create(%q): err = %v, want ErrExists", key, err)
					}
					if _, err := cl.Get(ctx, key+"/missing", skiff.Stale()); !errors.Is(err, skiff.ErrNotFound) {
						return fmt.Errorf("stale Get(missing): err = %v, want ErrNotFound", err)
					}
					if _, err := cl.Put(ctx, key+"//bad", nil); !errors.Is(err, skiff.ErrInvalidKey) {
						return fmt.Errorf("Put(bad key): err = %v, want ErrInvalidKey", err)
					}
				}
				return nil
			}()
		}()
	}
	for g := 0; g < workers; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Leader().List(ctx, "conc", skiff.WithKeysOnly())
	if err != nil || len(res.KVs) != workers*10 {
		t.Fatalf("List(conc) = %d keys, %v; want %d", len(res.KVs), err, workers*10)
	}
}

// A client learns a new leader from the answers to its calls and goes
// straight to it: after a leadership change its writes went to the old
// leader, which forwarded them without saying who leads, so every write
// took an extra hop for good.
func TestClientLearnsTheLeaderFromAnswers(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	if _, err := cl.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	old := c.WaitForLeader()
	if err := c.Node(old).TransferLeadership(ctx, ""); err != nil {
		t.Fatal(err)
	}
	l := newLeader(t, c, old)
	if _, err := cl.Put(ctx, "k", []byte("w")); err != nil {
		t.Fatal(err)
	}
	if got := skiff.ClientLeader(cl); got != c.Addr(l) {
		t.Fatalf("after the leader moved to %s, the client goes to %q first", c.Addr(l), got)
	}
}
