package skiff_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiffkv/skiff/skifftest"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWriteThroughFollowerReadOnAnother(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	l := c.WaitForLeader()
	f1, f2 := (l+1)%3, (l+2)%3
	rev, err := c.Node(f1).Put(ctx, "users/alice", []byte("admin"))
	if err != nil {
		t.Fatalf("Put via follower: %v", err)
	}
	kv, err := c.Node(f2).Get(ctx, "users/alice")
	if err != nil {
		t.Fatalf("Get on other follower: %v", err)
	}
	if string(kv.Value) != "admin" || kv.ModRevision != rev {
		t.Fatalf("Get = %q@%d, want %q@%d", kv.Value, kv.ModRevision, "admin", rev)
	}
}
