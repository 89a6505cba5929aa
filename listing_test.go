package skiff_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/skifftest"
	"google.golang.org/grpc"
)

// putMany writes count keys prefix/00000… with the values value(i).
func putMany(t testing.TB, kv skiff.KV, prefix string, count int, value func(i int) []byte) {
	t.Helper()
	putKeys(t, kv, count, func(i int) string { return fmt.Sprintf("%s/%05d", prefix, i) }, value)
}

// putKeys writes count keys key(i) with the values value(i), from several
// goroutines so that Raft commits them in large appends.
func putKeys(t testing.TB, kv skiff.KV, count int, key func(i int) string, value func(i int) []byte) {
	t.Helper()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, count)
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, err := kv.Put(ctx, key(i), value(i)); err != nil {
					errs <- fmt.Errorf("Put(%s): %w", key(i), err)
				}
			}
		}()
	}
	for i := 0; i < count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// bigCall lets a raw call receive answers up to the message limit.
var bigCall = grpc.MaxCallRecvMsgSize(1 << 30)

func listKeys(resp *skiffpb.ListResponse) []string {
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, kv.Key)
	}
	return out
}

// Over the wire a listing comes in pages: 1000 entries when the request
// sets no limit, fewer when the next entry would take the answer past
// 4 MiB. A page with more pins its state, so that the continuation reads
// the same revision whatever was written since. A listing used to answer
// everything at once, however large.
func TestWireListingPages(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	ctx := testCtx(t)
	putMany(t, n, "small", 2000, func(i int) []byte { return []byte("v") })
	putMany(t, n, "big", 8, maxValue)
	kv := skiffpb.NewKVClient(rawConn(t, n.Addr()))

	first, err := kv.List(ctx, &skiffpb.ListRequest{Prefix: "small"}, bigCall)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Kvs) != 1000 || !first.More {
		t.Fatalf("List(small, limit 0) = %d keys, more=%v; want 1000, more=true", len(first.Kvs), first.More)
	}
	// Change the listing's state: the continuation must not see it.
	if err := n.Delete(ctx, "small/01999"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "small/02000", []byte("new")); err != nil {
		t.Fatal(err)
	}
	rest, err := kv.List(ctx, &skiffpb.ListRequest{Prefix: "small", After: first.Kvs[999].Key, Revision: first.Revision}, bigCall)
	if err != nil {
		t.Fatal(err)
	}
	keys := listKeys(rest)
	if rest.Revision != first.Revision || rest.More || len(keys) != 1000 || keys[999] != "small/01999" {
		t.Fatalf("continuation at %d = %d keys ending %q at revision %d, more=%v; want the 1000 keys up to small/01999 at %d",
			first.Revision, len(keys), keys[len(keys)-1], rest.Revision, rest.More, first.Revision)
	}

	page, err := kv.List(ctx, &skiffpb.ListRequest{Prefix: "big"}, bigCall)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, kv := range page.Kvs {
		size += len(kv.Key) + len(kv.Value)
	}
	if !page.More || size > 4<<20 || size < 3<<20 {
		t.Fatalf("List(big) = %d keys, %d bytes, more=%v; want 3 to 4 MiB and more", len(page.Kvs), size, page.More)
	}

	children, err := kv.Children(ctx, &skiffpb.ChildrenRequest{Prefix: "small"}, bigCall)
	if err != nil || len(children.Children) != 1000 || !children.More {
		t.Fatalf("Children(small, limit 0) = %d, more=%v, %v; want 1000 and more", len(children.GetChildren()), children.GetMore(), err)
	}
	prefixes, err := kv.Prefixes(ctx, &skiffpb.PrefixesRequest{Limit: 1})
	if err != nil || fmt.Sprint(prefixes.Prefixes) != "[big]" || !prefixes.More {
		t.Fatalf("Prefixes(limit 1) = %v, more=%v, %v; want [big] and more", prefixes.GetPrefixes(), prefixes.GetMore(), err)
	}
	prefixes, err = kv.Prefixes(ctx, &skiffpb.PrefixesRequest{After: "big", Revision: prefixes.Revision})
	if err != nil || fmt.Sprint(prefixes.Prefixes) != "[small]" || prefixes.More {
		t.Fatalf("Prefixes(after big) = %v, more=%v, %v; want [small] and no more", prefixes.GetPrefixes(), prefixes.GetMore(), err)
	}

	_, err = kv.List(ctx, &skiffpb.ListRequest{Prefix: "small", After: "small/00001", Revision: 3})
	err = skiff.ErrorFromStatus(err)
	if !errors.Is(err, skiff.ErrCompacted) || !strings.Contains(err.Error(), "start the listing again") {
		t.Fatalf("continuation at a revision never pinned: err = %v, want ErrCompacted saying to start again", err)
	}
}

// write is one acknowledged write.
type write struct {
	key   string
	value []byte
	rev   uint64
}

// A List through the client of more than one message can hold (100 keys
// of 1 MiB) returns every key, as of one revision, while writes go on:
// the pages of one listing all read the state its first page read. It
// used to fail with ErrInvalidArgument, the answer being too large to
// send.
func TestClientListsMoreThanOneMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 100 MiB through one node; runs without -short")
	}
	c := skifftest.NewCluster(t, 1, nil)
	n, cl, ctx := c.Node(0), c.Client(nil), testCtx(t)
	putMany(t, n, "big", 100, maxValue)
	before, err := n.List(ctx, "big", skiff.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var writes []write
	put := func(key string, value []byte) error {
		rev, err := n.Put(ctx, key, value)
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, write{key, value, rev})
		return err
	}
	stop := inBackground(func(i int) error { return put(fmt.Sprintf("big/%05d", i%20), []byte(fmt.Sprint("small ", i))) })
	pages := 0
	defer skiff.SetListPageHook(func(page int) {
		pages = page + 1
		if page == 1 { // a write the rest of the listing must not see
			if err := put("big/00099", []byte("after the first page")); err != nil {
				t.Error(err)
			}
		}
	})()
	res, err := cl.List(ctx, "big")
	if werr := stop(); werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("List(big): %v", err)
	}
	t.Logf("%d pages at revision %d, %d writes meanwhile", pages, res.Revision, len(writes))
	if len(res.KVs) != 100 || pages < 25 {
		t.Fatalf("List(big) = %d keys in %d pages, want 100 keys in at least 25 pages", len(res.KVs), pages)
	}
	for i, kv := range res.KVs {
		want := write{before.KVs[i].Key, maxValue(i), before.KVs[i].ModRevision}
		for _, w := range writes {
			if w.key == want.key && w.rev <= res.Revision {
				want = w
			}
		}
		if kv.Key != want.key || kv.ModRevision != want.rev || !bytes.Equal(kv.Value, want.value) {
			t.Fatalf("List(big)[%d] = %q at %d (%d bytes), want %q at %d (%d bytes) as of revision %d",
				i, kv.Key, kv.ModRevision, len(kv.Value), want.key, want.rev, len(want.value), res.Revision)
		}
	}
}

// inBackground calls f(0), f(1), … on another goroutine until stop is
// called or f fails; stop returns f's error.
func inBackground(f func(i int) error) (stop func() error) {
	quit, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-quit:
				done <- nil
				return
			default:
			}
			if err := f(i); err != nil {
				done <- err
				return
			}
		}
	}()
	return func() error {
		close(quit)
		return <-done
	}
}

// A node that no longer holds a listing's state refuses its continuation;
// the client then starts the listing again, and the caller gets the same
// result as from Node: everything, in order, once, from one revision.
// When every attempt is refused, the caller gets ErrCompacted.
func TestClientListStartsAgainWhenItsStateIsGone(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	n, cl, ctx := c.Node(0), c.Client(nil), testCtx(t)
	// 2500 namespaces of one key each: three pages of every listing.
	putKeys(t, n, 2500, func(i int) string { return fmt.Sprintf("d%05d/x", i) }, func(int) []byte { return nil })
	want, err := n.Prefixes(ctx)
	if err != nil || len(want) != 2500 {
		t.Fatalf("Node.Prefixes = %d, %v; want 2500", len(want), err)
	}
	drops := 0
	restore := skiff.SetListPageHook(func(page int) {
		if page == 0 && drops < 2 {
			drops++
			skiff.DropListingPins(n)
		}
	})
	defer restore()
	for _, tc := range []struct {
		name string
		list func() ([]string, error)
	}{
		{"List", func() ([]string, error) {
			res, err := cl.List(ctx, "", skiff.WithKeysOnly())
			var names []string
			for _, kv := range res.KVs {
				names = append(names, strings.TrimSuffix(kv.Key, "/x"))
			}
			return names, err
		}},
		{"Children", func() ([]string, error) {
			cs, err := cl.Children(ctx, "")
			var names []string
			for _, c := range cs {
				names = append(names, c.Name)
			}
			return names, err
		}},
		{"Prefixes", func() ([]string, error) { return cl.Prefixes(ctx) }},
	} {
		drops = 0
		got, err := tc.list()
		if err != nil || drops != 2 || !slices.Equal(got, want) {
			t.Fatalf("%s after %d refusals = %d names, %v; want the node's %d", tc.name, drops, len(got), err, len(want))
		}
	}
	restore()
	defer skiff.SetListPageHook(func(page int) {
		if page == 0 {
			skiff.DropListingPins(n)
		}
	})()
	_, err = cl.List(ctx, "")
	if !errors.Is(err, skiff.ErrCompacted) || !strings.Contains(err.Error(), "start the listing again") {
		t.Fatalf("List refused every time: err = %v, want ErrCompacted saying to start again", err)
	}
}
