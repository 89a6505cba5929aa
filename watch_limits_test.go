package skiff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// A watch's registration on the node may trail its start on the client.
	eventually(t, 5*time.Second, func() error {
		if got := n.Status().Watchers; got != 3 {
			return fmt.Errorf("%d watchers on the node after the refusal, want 3", got)
		}
		return nil
	})
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

// A client watch delivers states and catch-ups far larger than one message
// (80 keys of 1 MiB): the node sends them in pages of at most 4 MiB. Such
// a watch used to deliver nothing, its first message being too large to
// send.
func TestClientWatchOfLargeChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 100 MiB through one node; runs without -short")
	}
	c := skifftest.NewCluster(t, 1, &skifftest.Options{Configure: func(_ int, cfg *skiff.Config) {
		cfg.WatchHistoryBytes = 256 << 20 // holds the 80 MiB written below
	}})
	n, cl, ctx := c.Node(0), c.Client(nil), testCtx(t)
	start, err := n.Put(ctx, "start", nil)
	if err != nil {
		t.Fatal(err)
	}
	live, err := cl.Watch(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	putMany(t, n, "big", 80, maxValue)

	t.Run("live", func(t *testing.T) { wantBigEvents(t, live, skiff.EventPut) })
	t.Run("catches up 80 MiB from a revision", func(t *testing.T) {
		w, err := cl.Watch(ctx, "big", skiff.WatchFrom(start))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wantBigEvents(t, w, skiff.EventPut)
	})
	t.Run("initial state", func(t *testing.T) {
		w, err := cl.Watch(ctx, "big", skiff.WithInitialState())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wantBigEvents(t, w, skiff.EventPut)
		if ev := next(t, w); ev.Type != skiff.EventSynced {
			t.Fatalf("after the initial state: %v event, want EventSynced", ev.Type)
		}
	})
}

// wantBigEvents reads the 80 events of putMany(…, "big", 80, maxValue),
// in any order (concurrent puts commit in any order), each once.
func wantBigEvents(t *testing.T, w *skiff.Watcher, typ skiff.EventType) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < 80 {
		ev := next(t, w)
		var i int
		if _, err := fmt.Sscanf(ev.Key, "big/%05d", &i); err != nil || ev.Type != typ || seen[ev.Key] || !bytes.Equal(ev.Value, maxValue(i)) {
			t.Fatalf("event %d: %v %q (%d bytes), want a %v of a big/ key not seen yet with its value", len(seen), ev.Type, ev.Key, len(ev.Value), typ)
		}
		seen[ev.Key] = true
	}
}
