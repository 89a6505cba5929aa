package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

func TestWriteThroughFollowerReadOnAnother(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	l := c.WaitForLeader()
	f1, f2 := (l+1)%3, (l+2)%3
	for i := 0; i < 20; i++ {
		key, val := fmt.Sprintf("users/u%d", i), fmt.Sprintf("v%d", i)
		rev, err := c.Node(f1).Put(ctx, key, []byte(val))
		if err != nil {
			t.Fatalf("Put(%q) via follower: %v", key, err)
		}
		// Linearizable: the other follower must see the write at once.
		kv, err := c.Node(f2).Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q) on other follower: %v", key, err)
		}
		if string(kv.Value) != val || kv.ModRevision != rev {
			t.Fatalf("Get(%q) = %q@%d, want %q@%d", key, kv.Value, kv.ModRevision, val, rev)
		}
	}
	res, err := c.Node(l).List(ctx, "users")
	if err != nil || len(res.KVs) != 20 {
		t.Fatalf("List(users) on leader = %v, %v; want 20 keys", res, err)
	}
}

func TestReelectionAfterLeaderStops(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	old := c.WaitForLeader()
	oldID := c.Node(old).ID()
	if _, err := c.Node(old).Put(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	c.Stop(old)
	nl := c.WaitForLeader()
	if nl == old || c.Node(nl).ID() == oldID {
		t.Fatalf("leader after stop = %d, want another node than %d", nl, old)
	}
	follower := (nl + 1) % 3
	if follower == old {
		follower = (nl + 2) % 3
	}
	if _, err := c.Node(follower).Put(ctx, "k", []byte("after")); err != nil {
		t.Fatalf("Put after re-election: %v", err)
	}
	c.Restart(old)
	eventually(t, 10*time.Second, func() error {
		kv, err := c.Node(old).Get(ctx, "k", skiff.Stale())
		if err != nil {
			return err
		}
		if string(kv.Value) != "after" {
			return fmt.Errorf("restarted old leader has %q", kv.Value)
		}
		return nil
	})
}

func TestPartitionedLeaderCannotServe(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	old := c.WaitForLeader()
	oldNode := c.Node(old)
	if _, err := oldNode.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	c.Partition(old)

	// The majority elects a new leader and accepts writes.
	nl := newLeader(t, c, old)
	if _, err := c.Node(nl).Put(ctx, "k", []byte("v2")); err != nil {
		t.Fatalf("Put on new leader: %v", err)
	}

	// The old leader must neither acknowledge a write nor serve a
	// linearizable read (which would return the stale v1).
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := oldNode.Put(short, "k", []byte("lost")); err == nil {
		t.Fatalf("Put on partitioned old leader succeeded")
	}
	short2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if kv, err := oldNode.Get(short2, "k"); err == nil {
		t.Fatalf("linearizable Get on partitioned old leader = %q, want an error", kv.Value)
	}
	// A stale read is allowed and shows the old value.
	if kv, err := oldNode.Get(ctx, "k", skiff.Stale()); err != nil || string(kv.Value) != "v1" {
		t.Fatalf("stale Get on old leader = %v, %v; want v1", kv, err)
	}

	c.Heal()
	eventually(t, 10*time.Second, func() error {
		kv, err := oldNode.Get(ctx, "k")
		if err != nil {
			return err
		}
		if string(kv.Value) != "v2" {
			return fmt.Errorf("healed old leader reads %q, want v2", kv.Value)
		}
		return nil
	})
}

func TestConcurrentCompareAndSwapOneWinner(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	rev, err := c.Node(0).Put(ctx, "lock", []byte("free"))
	if err != nil {
		t.Fatal(err)
	}
	const racers = 12
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Node(i%3).CompareAndSwap(ctx, "lock", []byte(fmt.Sprintf("owner-%d", i)), rev)
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, skiff.ErrRevisionMismatch):
			t.Errorf("racer %d: err = %v, want nil or ErrRevisionMismatch", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d CompareAndSwap winners, want exactly 1", winners)
	}
	kv, err := c.Node(1).Get(ctx, "lock")
	if err != nil || kv.Version != 2 {
		t.Fatalf("Get(lock) = %+v, %v; want version 2", kv, err)
	}
}

func TestNoLeaderErrorWithinDeadline(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	l := c.WaitForLeader()
	c.Stop((l + 1) % 3)
	c.Stop((l + 2) % 3)
	n := c.Node(l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := n.Put(ctx, "k", []byte("v"))
	if err == nil {
		t.Fatalf("Put without a quorum succeeded")
	}
	if !errors.Is(err, skiff.ErrIndeterminate) && !errors.Is(err, skiff.ErrNoLeader) {
		t.Fatalf("Put without quorum: err = %v, want ErrIndeterminate or ErrNoLeader", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Put without quorum took %v, want it bounded by the context", d)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, err := n.Get(ctx2, "k"); !errors.Is(err, skiff.ErrNoLeader) && !errors.Is(err, skiff.ErrTimeout) {
		t.Fatalf("Get without quorum: err = %v, want ErrNoLeader or ErrTimeout", err)
	}
}
