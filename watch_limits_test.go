package skiff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// A node serves at most Config.MaxWatches watches over the network; past
// it a new watch fails with ErrTooManyWatches and leaves nothing behind,
// and once a watch closes there is room again. Watches on the embedded
// Node are not counted. There used to be no bound.
func TestMaxWatches(t *testing.T) {
	c := skifftest.NewCluster(t, 1, &skifftest.Options{Configure: func(_ int, cfg *skiff.Config) { cfg.MaxWatches = 3 }})
	n, cl, ctx := c.Node(0), c.Client(nil), testCtx(t)
	var open []*skiff.Watcher
	for i := 0; i < 3; i++ {
		w, err := cl.Watch(ctx, "x")
		if err != nil {
			t.Fatalf("watch %d: %v", i+1, err)
		}
		open = append(open, w)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if w, err := cl.Watch(wctx, "x"); !errors.Is(err, skiff.ErrTooManyWatches) {
		t.Fatalf("fourth watch: err = %v, want ErrTooManyWatches", err)
	} else if w != nil {
		t.Fatal("fourth watch returned a Watcher with its error")
	}
	if got := n.Status().Watchers; got != 3 {
		t.Fatalf("%d watchers on the node after the refusal, want 3", got)
	}
	local, err := n.Watch(ctx, "x")
	if err != nil {
		t.Fatalf("Node.Watch at the network bound: %v", err)
	}
	defer local.Close()

	open[0].Close()
	var w *skiff.Watcher
	eventually(t, 5*time.Second, func() error {
		w, err = cl.Watch(wctx, "x")
		return err
	})
	defer w.Close()
	rev, err := n.Put(ctx, "x/1", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w); ev.Key != "x/1" || ev.Revision != rev {
		t.Fatalf("new watch got %+v, want the put of x/1 at %d", ev, rev)
	}
}
