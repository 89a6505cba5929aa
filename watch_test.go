package skiff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// next receives one event or fails the test.
func next(t testing.TB, w *skiff.Watcher) skiff.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10s")
	}
	return skiff.Event{}
}

type evSummary struct {
	Type  skiff.EventType
	Key   string
	Value string
	Rev   uint64
}

func summary(ev skiff.Event) evSummary {
	return evSummary{ev.Type, ev.Key, string(ev.Value), ev.Revision}
}

func TestWatchPrefixDeliversPutsAndDeletes(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	for _, via := range []struct {
		name string
		kv   skiff.KV
	}{{"node", c.Follower()}, {"client", c.Client(nil)}} {
		t.Run(via.name, func(t *testing.T) {
			p := "parent-" + via.name
			w, err := via.kv.Watch(ctx, p, skiff.WithPrevValue())
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			defer w.Close()
			exact, err := via.kv.Watch(ctx, p+"/a", skiff.WatchKey())
			if err != nil {
				t.Fatalf("Watch(key): %v", err)
			}
			defer exact.Close()
			leader := c.Leader()
			r1, _ := leader.Put(ctx, p+"/a", []byte("1"))
			leader.Put(ctx, p+"s/x", []byte("no")) // a sibling subtree
			leader.Put(ctx, p, []byte("no"))       // the prefix's own key
			r2, _ := leader.Put(ctx, p+"/b/c", []byte("2"))
			r3, _ := leader.Put(ctx, p+"/a", []byte("3"))
			if err := leader.Delete(ctx, p+"/a"); err != nil {
				t.Fatal(err)
			}
			want := []evSummary{
				{skiff.EventPut, p + "/a", "1", r1},
				{skiff.EventPut, p + "/b/c", "2", r2},
				{skiff.EventPut, p + "/a", "3", r3},
				{skiff.EventDelete, p + "/a", "", r3 + 1},
			}
			var got []evSummary
			var last skiff.Event
			for range want {
				last = next(t, w)
				got = append(got, summary(last))
			}
			// The delete's revision is whatever index it got; check the rest.
			got[3].Rev = r3 + 1
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("events = %+v, want %+v", got, want)
			}
			if last.Prev == nil || string(last.Prev.Value) != "3" {
				t.Fatalf("delete's Prev = %+v, want value 3", last.Prev)
			}
			for _, wantVal := range []string{"1", "3", ""} {
				if ev := next(t, exact); string(ev.Value) != wantVal || ev.Key != p+"/a" {
					t.Fatalf("exact-key event = %+v, want %s=%q", ev, p+"/a", wantVal)
				}
			}
		})
	}
}

func TestWatchInitialStateThenChanges(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	want := putAll(t, c.Leader(), "init", 600) // more than one page
	for _, kv := range []skiff.KV{c.Follower(), c.Client(nil)} {
		w, err := kv.Watch(ctx, "init", skiff.WithInitialState())
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		var ev skiff.Event
		for ev = next(t, w); ev.Type != skiff.EventSynced; ev = next(t, w) {
			seen[ev.Key] = string(ev.Value)
		}
		if !reflect.DeepEqual(seen, want) {
			t.Fatalf("initial state has %d keys, want %d", len(seen), len(want))
		}
		key := fmt.Sprintf("init/new-%d", len(want))
		rev, err := c.Leader().Put(ctx, key, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		want[key] = "x"
		if got := next(t, w); got.Key != key || got.Revision != rev || got.Revision <= ev.Revision {
			t.Fatalf("first change = %+v, want %s at %d after synced revision %d", got, key, rev, ev.Revision)
		}
		w.Close()
		if err := w.Err(); err != nil {
			t.Fatalf("Err after Close = %v, want nil", err)
		}
	}
}

func TestWatchResumesOnAnotherNode(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	a, b := c.Node(0), c.Node(1)
	w, err := a.Watch(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, c.Leader(), "r", 5)
	for i := 0; i < 5; i++ {
		next(t, w)
	}
	resume := w.Revision()
	w.Close()
	more := putAll(t, c.Leader(), "r/more", 5)
	w2, err := b.Watch(ctx, "r", skiff.WatchFrom(resume))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	got := map[string]string{}
	prev := resume
	for i := 0; i < 5; i++ {
		ev := next(t, w2)
		if ev.Revision <= prev {
			t.Fatalf("event %+v not after revision %d", ev, prev)
		}
		prev = ev.Revision
		got[ev.Key] = string(ev.Value)
	}
	if !reflect.DeepEqual(got, more) {
		t.Fatalf("resumed events = %v, want %v", got, more)
	}
}

func TestWatchCompacted(t *testing.T) {
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.WatchHistory = 10
	}})
	ctx := testCtx(t)
	putAll(t, c.Leader(), "c", 50)
	f := (c.WaitForLeader() + 1) % 3 // histories differ a little between nodes: ask one
	for _, kv := range []skiff.KV{c.Node(f), c.Client([]int{f}, skiff.WithDialer(onlyTo(c.Dialer(), c.Addr(f))))} {
		_, err := kv.Watch(ctx, "c", skiff.WatchFrom(1))
		var ce *skiff.CompactedError
		if !errors.Is(err, skiff.ErrCompacted) || !errors.As(err, &ce) || ce.Oldest <= 2 {
			t.Fatalf("Watch from revision 1: err = %v, want *CompactedError with Oldest > 2", err)
		}
		// From the oldest available revision on, it works.
		w, err := kv.Watch(ctx, "c", skiff.WatchFrom(ce.Oldest-1))
		if err != nil {
			t.Fatalf("Watch from %d: %v", ce.Oldest-1, err)
		}
		if ev := next(t, w); ev.Revision != ce.Oldest {
			t.Fatalf("first event at %d, want %d", ev.Revision, ce.Oldest)
		}
		w.Close()
	}
}

func TestStalledWatcherDoesNotBlockOthers(t *testing.T) {
	c := skifftest.NewCluster(t, 1, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.WatchHistory = 100
	}})
	ctx := testCtx(t)
	n := c.Node(0)
	stalled, err := n.Watch(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := n.Watch(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	const writes = 1000
	got := make(chan int)
	go func() {
		count := 0
		for range reader.Events() {
			if count++; count == writes {
				break
			}
		}
		got <- count
	}()
	var lastRev uint64
	for i := 0; i < writes; i++ {
		rev, err := n.Put(ctx, fmt.Sprintf("s/%d", i%50), []byte("v"))
		if err != nil {
			t.Fatalf("Put %d with a stalled watcher: %v", i, err)
		}
		lastRev = rev
	}
	if count := <-got; count != writes {
		t.Fatalf("reading watcher got %d events, want %d", count, writes)
	}
	reader.Close()
	// The stalled watcher held its buffer, then fell out of the history.
	delivered := 0
	var last uint64
	for ev := range stalled.Events() {
		delivered++
		last = ev.Revision
	}
	var ce *skiff.CompactedError
	if err := stalled.Err(); !errors.Is(err, skiff.ErrWatchLagged) || !errors.As(err, &ce) || ce.Revision != last {
		t.Fatalf("stalled watcher ended with %v after %d events (last %d), want ErrWatchLagged at %d", err, delivered, last, last)
	}
	if delivered >= writes || last >= lastRev {
		t.Fatalf("stalled watcher got %d events up to %d; it should have fallen behind", delivered, last)
	}
}

func TestWatchCancelReleasesServerResources(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	cl := c.Client(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var ws []*skiff.Watcher
	for i := 0; i < 4; i++ {
		w, err := cl.Watch(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		w2, err := c.Node(i%3).Watch(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w2)
	}
	total := func() int {
		sum := 0
		for i := 0; i < 3; i++ {
			sum += c.Node(i).Status().Watchers
		}
		return sum
	}
	eventually(t, 5*time.Second, func() error {
		if n := total(); n != 8 {
			return fmt.Errorf("%d watchers on the nodes, want 8", n)
		}
		return nil
	})
	cancel()
	for _, w := range ws {
		for range w.Events() {
		}
		if err := w.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err after cancel = %v, want context.Canceled", err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		if n := total(); n != 0 {
			return fmt.Errorf("%d watchers left on the nodes after cancel", n)
		}
		return nil
	})
}

// TestWatchGapFreeUnderChurn checks a client watch against the committed
// history while writers run and every node restarts in turn (so the node
// serving the watch restarts too) and leadership moves.
func TestWatchGapFreeUnderChurn(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	cl := c.Client(nil)
	start, err := cl.Put(ctx, "churn/start", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := cl.Watch(ctx, "churn", skiff.WatchFrom(start))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	var mu sync.Mutex
	acked := map[uint64]string{} // revision -> key=value
	attempted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("churn/%d/%d", g, i%20), fmt.Sprintf("%d-%d", g, i)
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				rev, err := cl.Put(wctx, k, []byte(v))
				cancel()
				mu.Lock()
				attempted[k+"="+v] = true
				if err == nil {
					acked[rev] = k + "=" + v
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 3; i++ {
		c.Stop(i)
		c.Restart(i)
		c.WaitForLeader()
	}
	if err := c.Leader().TransferLeadership(ctx, ""); err != nil {
		t.Logf("TransferLeadership: %v", err)
	}
	c.WaitForLeader()
	close(stop)
	wg.Wait()
	end, err := cl.Put(ctx, "churn/end", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}

	prev := start
	seen := map[uint64]string{}
	for {
		ev := next(t, w)
		if ev.Revision <= prev {
			t.Fatalf("event %s at %d after %d: out of order or repeated", ev.Key, ev.Revision, prev)
		}
		prev = ev.Revision
		seen[ev.Revision] = ev.Key + "=" + string(ev.Value)
		if ev.Revision == end {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for rev, kv := range acked {
		if seen[rev] != kv {
			t.Fatalf("acknowledged write %s at %d: watch saw %q", kv, rev, seen[rev])
		}
	}
	for rev, kv := range seen {
		if rev != end && !attempted[kv] {
			t.Fatalf("watch delivered %s at %d, which nobody wrote", kv, rev)
		}
	}
	t.Logf("%d acknowledged writes, %d events, all in order", len(acked), len(seen))
}

func TestWatchHistoryAcrossRestartAndRestore(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	l := c.WaitForLeader()
	f := (l + 1) % 3
	putAll(t, c.Leader(), "h", 20)
	// A linearizable read makes the follower apply every write first.
	if _, err := c.Node(f).Get(ctx, "h/00019"); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(f).Snapshot(); err != nil {
		t.Fatal(err)
	}
	snap := c.Node(f).Status().LastSnapshotIndex
	after := putAll(t, c.Leader(), "h/after", 5)
	c.Stop(f)
	c.Restart(f)
	n := c.Node(f)
	// Before the snapshot it loaded, the restarted node has no history.
	_, err := n.Watch(ctx, "h", skiff.WatchFrom(snap-5))
	wantErr(t, "Watch from before the snapshot", err, skiff.ErrCompacted)
	// From the snapshot on, it replays the log: every later change, once.
	w, err := n.Watch(ctx, "h", skiff.WatchFrom(snap))
	if err != nil {
		t.Fatalf("Watch from the snapshot: %v", err)
	}
	got := map[string]string{}
	prev := snap
	for len(got) < len(after) {
		ev := next(t, w)
		if ev.Revision <= prev {
			t.Fatalf("event at %d after %d", ev.Revision, prev)
		}
		prev = ev.Revision
		got[ev.Key] = string(ev.Value)
	}
	if !reflect.DeepEqual(got, after) {
		t.Fatalf("replayed events = %v, want %v", got, after)
	}

	// Restoring a backup replaces the state: running watches end with
	// ErrCompacted rather than miss the jump.
	var backup bytes.Buffer
	if err := c.Leader().Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if err := c.Leader().Restore(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	var ce *skiff.CompactedError
	if err := w.Err(); !errors.As(err, &ce) || !ce.Reset {
		t.Fatalf("watch across a restore ended with %v, want a reset *CompactedError", err)
	}
}

// WatchFrom a revision the cluster has not reached used to wait, silent,
// until it had; it is refused, on a node and through the client. A
// revision a lagging node has not applied yet, but the cluster has, is
// fine.
func TestWatchFromTheFutureIsRefused(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	rev, err := c.Leader().Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []skiff.KV{c.Follower(), c.Client(nil)} {
		if _, err := kv.Watch(ctx, "", skiff.WatchFrom(rev+1000)); !errors.Is(err, skiff.ErrInvalidArgument) {
			t.Fatalf("WatchFrom(%d) with the cluster at %d: err = %v, want ErrInvalidArgument", rev+1000, rev, err)
		}
		w, err := kv.Watch(ctx, "", skiff.WatchFrom(rev))
		if err != nil {
			t.Fatalf("WatchFrom(%d): %v", rev, err)
		}
		w.Close()
	}
}
